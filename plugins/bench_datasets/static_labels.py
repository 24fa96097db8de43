"""Labels for statically binarized MNIST, recovered from MNIST itself.

The shared ``binarized_mnist/*.amat`` files carry no labels, but each image is one Bernoulli
draw of one MNIST image's grey levels: the test split draws MNIST's 10,000 test images, the
training and validation splits its 60,000 training images (split at random). Each binarized
image ``x`` is matched to the MNIST image ``p`` under which it is most likely,

    log p(x | p) = x · log p + (1 - x) · log(1 - p) = x · logit(p) + sum(log(1 - p)),

with grey levels clipped to ``[CLIP, 1 - CLIP]`` (a pixel that is black in MNIST may still be
drawn as 1), and takes that image's label. All candidates are scored at once as a matrix
product, a chunk of binarized images at a time.

The match is checked before it is used: the recovered class counts must equal MNIST's (the
test split's its test set's, the training and validation splits' together its training
set's). What the match found is kept beside the labels: how many distinct MNIST images were
best matches, how many images had a runner-up within ``NEAR_TIE_NATS`` of the best, and how
many of those near-ties share their runner-up's label. The result is cached, keyed by both
sources (see :func:`cache_path`), so the matching (minutes on two cores) runs once.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bench.data import cache_dir, source_identity
from bench.errors import DataError
from bench.records import atomic_write

CLIP = 1e-3  # grey levels are clipped to [CLIP, 1 - CLIP] before their logs are taken
NEAR_TIE_NATS = 5.0  # a runner-up this close to the best match makes a near-tie
CHUNK = 1000  # binarized images scored at once: [CHUNK, 60,000] float32 is 240 MB
CACHE_VERSION = 1
SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class Matches:
    """Per binarized image: its most likely source image, the runner-up, and the gap
    between their log-likelihoods (nats)."""

    best: np.ndarray
    runner_up: np.ndarray
    gap: np.ndarray


@dataclass(frozen=True)
class Recovered:
    """The labels of each split and, per matched pool (``test``; ``train+valid``), what the
    match found: ``images``, ``distinct`` best matches, ``near_ties``, and
    ``near_ties_runner_up_agrees`` (same label as the runner-up)."""

    labels: dict[str, np.ndarray]
    stats: dict[str, dict[str, int]]

    def summary(self) -> str:
        """One line for the data set's notes."""
        parts = [
            f"{pool}: {s['distinct']:,} distinct best matches of {s['images']:,}, "
            f"{s['near_ties']:,} near-ties (< {NEAR_TIE_NATS:g} nats), "
            f"{s['near_ties_runner_up_agrees']:,} with the runner-up's label"
            for pool, s in self.stats.items()
        ]
        return "; ".join(parts)


def bernoulli_matches(x: torch.Tensor, grey: torch.Tensor, chunk: int = CHUNK) -> Matches:
    """For each row of ``x`` (``[N, D]`` in {0, 1}) the two rows of ``grey`` (``[M, D]`` in
    [0, 1]) that give it the highest Bernoulli log-likelihood."""
    p = grey.flatten(1).double().clamp(CLIP, 1 - CLIP)
    log_not = torch.log1p(-p)
    # Computed in float64 and stored in float32: ~1e-4 nats of rounding, far below any gap.
    weights = (torch.log(p) - log_not).T.contiguous().float()  # [D, M]
    bias = log_not.sum(1).float()  # [M]
    x = x.flatten(1).float()
    best, runner_up, gap = [], [], []
    for start in range(0, len(x), chunk):
        scores = torch.addmm(bias, x[start : start + chunk], weights)
        top, idx = scores.topk(2, dim=1)
        best.append(idx[:, 0])
        runner_up.append(idx[:, 1])
        gap.append(top[:, 0] - top[:, 1])
    return Matches(torch.cat(best).numpy(), torch.cat(runner_up).numpy(), torch.cat(gap).numpy())


def match_stats(m: Matches, source_labels: np.ndarray) -> dict[str, int]:
    """What a match found (see :class:`Recovered`)."""
    near = m.gap < NEAR_TIE_NATS
    agrees = source_labels[m.best[near]] == source_labels[m.runner_up[near]]
    return {
        "images": len(m.best),
        "distinct": len(np.unique(m.best)),
        "near_ties": int(near.sum()),
        "near_ties_runner_up_agrees": int(agrees.sum()),
    }


def recover(static: dict[str, np.ndarray], mnist: tuple[torch.Tensor, ...]) -> Recovered:
    """Labels for the three binarized splits (``[N, 784]`` each) from MNIST's ``(train
    images, train labels, test images, test labels)``; a DataError when the recovered class
    counts differ from MNIST's (the files are not a binarization of this MNIST)."""
    train_x, train_y, test_x, test_y = (t.numpy() for t in mnist)
    n_train = len(static["train"])
    pools = {
        "test": (static["test"], test_x, test_y),
        "train+valid": (np.concatenate([static["train"], static["valid"]]), train_x, train_y),
    }
    labels, stats = {}, {}
    for pool, (x, grey, source_labels) in pools.items():
        m = bernoulli_matches(torch.from_numpy(x), torch.from_numpy(grey))
        found = source_labels[m.best]
        _check_counts(pool, found, source_labels)
        labels[pool] = found
        stats[pool] = match_stats(m, source_labels)
    out = {
        "train": labels["train+valid"][:n_train],
        "valid": labels["train+valid"][n_train:],
        "test": labels["test"],
    }
    return Recovered(out, stats)


def _check_counts(pool: str, found: np.ndarray, source_labels: np.ndarray) -> None:
    want = np.bincount(source_labels, minlength=10)
    got = np.bincount(found, minlength=len(want))
    if len(found) != len(source_labels) or not np.array_equal(got, want):
        raise DataError(
            f"static MNIST labels: the {pool} images matched to MNIST give class counts "
            f"{got.tolist()}, MNIST's are {want.tolist()}; these files are not a binarization "
            "of this MNIST, so the data set stays unlabelled"
        )


def cache_path(sources: list[Path]) -> Path:
    """Where the labels recovered from ``sources`` (the binarized files and MNIST's) are
    kept: keyed by each file's identity, the clip and the cache version, so a replaced file
    or another folder's copy never gets them."""
    key = "|".join(source_identity(p) for p in sources)
    digest = hashlib.sha256(f"{key}|{CLIP}|v{CACHE_VERSION}".encode()).hexdigest()[:12]
    return cache_dir() / f"mnist-static-labels-{digest}.npz"


def cached_recovery(
    sources: list[Path], compute: Callable[[], Recovered], cache: Path | None = None
) -> Recovered:
    """The recovery of ``sources`` from the cache, else ``compute()``'s, written atomically
    to the cache (a damaged cache is computed again)."""
    path = cache or cache_path(sources)
    if path.exists():
        try:
            with np.load(path) as saved:
                labels = {name: saved[name].astype(np.int64) for name in SPLITS}
                stats = json.loads(str(saved["stats"]))
            return Recovered(labels, stats)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            path.unlink(missing_ok=True)
    recovered = compute()
    atomic_write(path, lambda tmp: _save(tmp, recovered))
    return recovered


def _save(tmp: Path, recovered: Recovered) -> None:
    arrays = {name: recovered.labels[name].astype(np.uint8) for name in SPLITS}
    with open(tmp, "wb") as fh:  # a file object: numpy would append .npz to a path
        np.savez_compressed(fh, stats=np.array(json.dumps(recovered.stats)), **arrays)
