"""What a run's model draws, for its run page: image sample and reconstruction grids, or sampled
and reconstructed sentences.

A plugin may have written ``samples.png`` and ``reconstructions.png`` into the run folder (the
PixelCNN plugin does, in ``on_run_end``): those are used as they are. Otherwise the model is
built from the registries with the record's resolved parameters, ``best.pt`` (the evaluated
weights) is loaded with ``torch.load(weights_only=True)`` (a checkpoint is untrusted input: no
pickled code runs), and the model contract draws:

- images: ``decode_mean(sample_prior(n))``, and test images above ``decode_mean(mu)`` of their
  posterior means;
- text: greedy decoding from z drawn from the prior, and from the posterior means of test
  sentences. A model may define ``greedy_decode(z, max_len)`` (token ids ``[B, L]``); else a
  ``decoder`` with ``embed`` and ``decoder(embedded, z)`` giving logits ``[B, L, V]`` (the text
  plugin's LSTM decoders) is used.

Results are kept beside the site's media (``<stem>.media.json``) and made again only when
``best.pt`` is newer. Whatever cannot be drawn becomes a one-line note on the page.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from bench.data import DataSplits
    from bench.records import RunRecord

PLUGIN_FILES = (
    ("samples.png", "Samples from the prior"),
    ("reconstructions.png", "Test images (odd rows) and their reconstructions (even rows)"),
)
BEST = "best.pt"
GRID_ROW = 8
IMAGE_SAMPLES, IMAGE_RECONS = 32, 16
TEXT_SAMPLES, TEXT_RECONS, MAX_WORDS = 6, 6, 30


@dataclass
class Media:
    """What a run page shows of a model's draws; file names are relative to the media folder."""

    seed: int | None = None
    images: list[list[str]] = field(default_factory=list)  # [caption, file name]
    samples: list[str] = field(default_factory=list)
    reconstructions: list[list[str]] = field(default_factory=list)  # [original, reconstruction]
    note: str = ""


# (dataset, its parameters, data folder) -> loaded splits, for one build of the site.
DataCache = dict[tuple[str, str], "DataSplits"]


def run_media(record: RunRecord, media_dir: Path, stem: str, cache: DataCache) -> Media:
    """The draws of ``record``'s model, written under ``media_dir`` as ``<stem>.*``."""
    seed = int(record.cell.get("seed", 0))
    run_dir = record.run_dir
    if run_dir is None:
        return Media(seed, note="no run folder: nothing to draw")
    copied = _copy_plugin_files(run_dir, media_dir, stem)
    if copied:
        return Media(seed, images=copied)
    best = run_dir / BEST
    if not best.exists():
        return Media(seed, note=f"no {BEST} in {run_dir.name}: nothing to draw")
    kept = media_dir / f"{stem}.media.json"
    if kept.exists() and kept.stat().st_mtime >= best.stat().st_mtime:
        try:
            return Media(**json.loads(kept.read_text(encoding="utf-8")))
        except (ValueError, TypeError):
            pass  # made again below
    try:
        media = _draw(record, best, media_dir, stem, cache)
    except Exception as exc:  # a plugin's model or data: the page says why, the site is built
        media = Media(seed, note=f"could not draw from {BEST}: {type(exc).__name__}: {exc}")
    media_dir.mkdir(parents=True, exist_ok=True)
    kept.write_text(json.dumps(asdict(media)), encoding="utf-8")
    return media


def _copy_plugin_files(run_dir: Path, media_dir: Path, stem: str) -> list[list[str]]:
    out = []
    for name, caption in PLUGIN_FILES:
        source = run_dir / name
        if not source.is_file():
            continue
        target = media_dir / f"{stem}.{name}"
        if not target.exists() or target.stat().st_mtime < source.stat().st_mtime:
            media_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        out.append([caption, target.name])
    return out


def _draw(record: RunRecord, best: Path, media_dir: Path, stem: str, cache: DataCache) -> Media:
    import torch

    seed = int(record.cell.get("seed", 0))
    data = _data(record, cache)
    model = _model(record, data, best)
    kind = data.info.kind
    with torch.no_grad():
        if kind == "image":
            return _image_grids(model, data, seed, media_dir, stem)
        if kind == "text":
            return _sentences(model, data, seed)
    return Media(seed, note=f"data of kind {kind!r}: the report draws images and text only")


def _data(record: RunRecord, cache: DataCache) -> DataSplits:
    from bench import plugins
    from bench.data import data_dir
    from bench.specs import resolve_params

    name = record.cell["dataset"]
    given = record.resolved.get("dataset") or record.cell.get("dataset_params") or {}
    key = (name, json.dumps(given, sort_keys=True, default=str) + str(data_dir()))
    if key not in cache:
        spec = plugins.registries().datasets.get(name)
        params = resolve_params(spec.params, given, f"dataset {name!r}")
        cache[key] = spec.load(data_dir(), **params)
    return cache[key]


def _model(record: RunRecord, data: DataSplits, best: Path) -> Any:
    """The model as the run trained it (a method's posterior transform included), holding
    ``best.pt``'s weights, in eval mode on the CPU."""
    import torch

    from bench import plugins
    from bench.methods import Method, PosteriorTransformed, TrainingBudget, build_objective
    from bench.specs import resolve_params

    regs = plugins.registries()
    name = record.cell["model"]
    spec = regs.models.get(name)
    params = resolve_params(spec.params, record.resolved.get("model") or {}, f"model {name!r}")
    model = spec.build(data.info, **params)
    objective = regs.objectives.get(record.cell["objective"])
    given = resolve_params(objective.params, record.resolved.get("objective") or {}, "objective")
    built = build_objective(objective, TrainingBudget(max(1, record.epochs_trained), 1), given)
    if isinstance(built, Method):
        transform = built.posterior_transform(model.latent_dim)
        if transform is not None:
            model = PosteriorTransformed(model, transform)
    state = torch.load(best, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval()


def _generator(seed: int) -> torch.Generator:
    import torch

    return torch.Generator().manual_seed(seed)


def _save_grid(images: Any, target: Path) -> None:
    """A grid of images in [0, 1] as a PNG: one grey channel where the images have one (a
    third of the bytes of the RGB that ``torchvision.utils.save_image`` writes), compressed."""
    from PIL import Image
    from torchvision.utils import make_grid

    grid = make_grid(images, nrow=GRID_ROW, pad_value=0.5)  # [3, H, W]: grey images repeated
    pixels = grid.mul(255).add(0.5).clamp(0, 255).byte().permute(1, 2, 0).numpy()
    grey = images.shape[1] == 1
    picture = Image.fromarray(pixels[:, :, 0] if grey else pixels, mode="L" if grey else "RGB")
    picture.save(target, optimize=True)


def _image_grids(model: Any, data: DataSplits, seed: int, media_dir: Path, stem: str) -> Media:
    z = model.sample_prior(IMAGE_SAMPLES, generator=_generator(seed))
    drawn = model.decode_mean(z)
    if drawn is None or drawn.dim() != 4:
        return Media(seed, note="the model has no decode_mean for image grids")
    media_dir.mkdir(parents=True, exist_ok=True)
    images = []
    target = media_dir / f"{stem}.samples.png"
    _save_grid(drawn.float().clamp(0, 1), target)
    images.append(["Means of p(x|z) for z from the prior", target.name])
    x, _ = next(iter(data.test.batches(IMAGE_RECONS)))
    mu, _ = model.encode(x)
    recon = model.decode_mean(mu).float().clamp(0, 1)
    rows = []
    for start in range(0, len(x), GRID_ROW):
        rows += [x[start : start + GRID_ROW].float(), recon[start : start + GRID_ROW]]
    target = media_dir / f"{stem}.reconstructions.png"
    import torch

    _save_grid(torch.cat(rows), target)
    images.append(["Test images (odd rows) and the means of p(x|z = posterior mean)", target.name])
    return Media(seed, images=images)


def _sentences(model: Any, data: DataSplits, seed: int) -> Media:
    info = data.info
    vocab = list(info.extra.get("vocab") or [])
    if not vocab or info.bos_id is None or info.eos_id is None:
        return Media(seed, note="the data set names no vocabulary: sentences cannot be shown")

    def words(ids: Any) -> str:
        out = []
        for i in ids.tolist():
            if i == info.eos_id:
                break
            if i not in (info.bos_id, info.pad_id):
                out.append(vocab[i] if 0 <= i < len(vocab) else "<?>")
        return " ".join(out)

    z = model.sample_prior(TEXT_SAMPLES, generator=_generator(seed))
    decoded = greedy(model, z, info.bos_id, info.eos_id)
    if decoded is None:
        return Media(seed, note="the model has no decoder the report can run greedily")
    x, _ = next(iter(data.test.batches(TEXT_RECONS)))
    mu, _ = model.encode(x)
    recon = greedy(model, mu, info.bos_id, info.eos_id)
    pairs = [[words(a), words(b)] for a, b in zip(getattr(x, "ids", []), recon, strict=False)]
    return Media(seed, samples=[words(s) for s in decoded], reconstructions=pairs)


def greedy(model: Any, z: Any, bos: int, eos: int, max_len: int = MAX_WORDS) -> Any:
    """Token ids ``[B, L]`` decoded greedily from ``z [B, D]``, or None when the model offers
    no way to; see the module's docstring."""
    import torch

    own = getattr(model, "greedy_decode", None)
    if callable(own):
        return own(z, max_len)
    decoder = getattr(model, "decoder", None)
    embed = getattr(decoder, "embed", None)
    if decoder is None or not callable(embed):
        return None
    ids = torch.full((z.shape[0], 1), bos, dtype=torch.long)
    done = torch.zeros(z.shape[0], dtype=torch.bool)
    for _ in range(max_len + 1):
        logits = decoder(embed(ids), z)[:, -1]
        nxt = logits.argmax(-1)
        ids = torch.cat([ids, nxt.unsqueeze(1)], dim=1)
        done |= nxt == eos
        if bool(done.all()):
            break
    return ids
