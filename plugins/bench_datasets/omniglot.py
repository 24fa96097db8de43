"""Omniglot 28x28, derived from the original 105x105 images (Lake et al. 2015).

A stand-in for Burda et al.'s ``chardata.mat`` (24,345 train / 8,070 test), which these
machines do not have: the same recipe (invert so strokes are 1, resize to 28x28, split by
drawer) applied to all 1,623 characters x 20 drawers of ``images_background.npz`` and
``images_evaluation.npz``. Drawers 0-14 of each character train (24,345 images) and drawers
15-19 test (8,115, not 8,070: Burda's file drops some images, which are not identified), so
numbers are close to, not identical with, the literature's. The grey levels come from area
averaging during the resize and are binarized dynamically; validation images are carved from
the training drawers at random (seeded) and, like the test images, binarized once with a
fixed seed. The resized arrays are cached in :func:`bench.data.cache_dir` so the resize runs
once per machine.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from bench.data import DataInfo, DataSplits, cache_dir, data_hint, source_identity
from bench.errors import ConfigError, DataError
from bench.records import atomic_write

SOURCE_FILES = ("images_background.npz", "images_evaluation.npz")
SIZE = 28
DRAWERS = 20
TRAIN_DRAWERS = 15  # drawers 0-14 train, 15-19 test
N_CHARACTERS = 1623
DEFAULT_VALID = 1345  # leaves 23,000 training images
CACHE_VERSION = 1
RESIZE_CHUNK = 1024  # characters are resized in chunks to bound memory (105x105 float32)


def _sources(data_dir: Path) -> list[Path]:
    folder = data_dir / "omniglot"
    paths = [folder / name for name in SOURCE_FILES]
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise DataError(
            f"Omniglot not found: {', '.join(str(p) for p in missing)} missing "
            f"({' and '.join(SOURCE_FILES)}, numpy archives with an 'images' array of 105x105 "
            f"bool images, True = background, go in {folder}); {data_hint()}"
        )
    return paths


def _cache_path(sources: list[Path]) -> Path:
    # Keyed by each source file's identity (resolved path, size, modification time): another
    # folder's copy, or a file replaced in place, never gets this cache.
    key = "-".join(source_identity(p) for p in sources)
    digest = hashlib.sha256(f"{key}|{SIZE}|v{CACHE_VERSION}".encode()).hexdigest()[:12]
    return cache_dir() / f"omniglot{SIZE}-{digest}.npz"


def _read_source(src: Path) -> np.ndarray:
    try:
        with np.load(src) as arch:
            return arch["images"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(
            f"{src}: cannot be read as a numpy archive with an 'images' array "
            f"({type(exc).__name__}: {exc}); the file is damaged or truncated, copy it again"
        ) from None


def _resize(images: np.ndarray) -> np.ndarray:
    """``[N, 105, 105]`` bool (True = background) -> ``[N, 28, 28]`` uint8 grey, strokes high."""
    out = np.empty((len(images), SIZE, SIZE), dtype=np.uint8)
    for start in range(0, len(images), RESIZE_CHUNK):
        chunk = torch.from_numpy(~images[start : start + RESIZE_CHUNK]).float().unsqueeze(1)
        # Area averaging is the antialiased downsample: each output pixel is the ink fraction.
        small = F.interpolate(chunk, size=(SIZE, SIZE), mode="area")
        out[start : start + len(chunk)] = (small[:, 0] * 255).round().to(torch.uint8).numpy()
    return out


def derived_arrays(data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(images [1623, 20, 28, 28] uint8, character ids [1623])``, from the cache if present."""
    sources = _sources(data_dir)
    path = _cache_path(sources)
    if path.exists():
        try:
            with np.load(path) as cached:
                return cached["images"], cached["labels"]
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            path.unlink(missing_ok=True)  # a damaged cache is rebuilt from the sources
    parts, labels, offset = [], [], 0
    for src in sources:
        raw = _read_source(src)
        if raw.ndim != 4 or raw.shape[1] != DRAWERS:
            raise DataError(
                f"{src}: expected images of shape (characters, 20, H, W), got {raw.shape}"
            )
        n_chars = raw.shape[0]
        flat = _resize(raw.reshape(-1, *raw.shape[2:]))
        parts.append(flat.reshape(n_chars, DRAWERS, SIZE, SIZE))
        labels.append(np.arange(offset, offset + n_chars))
        offset += n_chars
    images = np.concatenate(parts)
    ids = np.concatenate(labels)
    atomic_write(path, lambda tmp: _save_npz(tmp, images, ids))
    return images, ids


def _save_npz(tmp: Path, images: np.ndarray, ids: np.ndarray) -> None:
    with open(tmp, "wb") as fh:  # a file object: numpy would append .npz to a path
        np.savez_compressed(fh, images=images, labels=ids)


def load_omniglot(data_dir: Path, n_valid: int = DEFAULT_VALID, labels: bool = False) -> DataSplits:
    images, ids = derived_arrays(data_dir)
    n_chars = images.shape[0]
    n_train = n_chars * TRAIN_DRAWERS
    if not 0 < n_valid < n_train:
        raise ConfigError(f"dataset 'omniglot': n_valid must be in 1..{n_train - 1}, got {n_valid}")
    grey = torch.from_numpy(images).float().div_(255)  # [C, 20, 28, 28]
    train_x = grey[:, :TRAIN_DRAWERS].reshape(-1, 1, SIZE, SIZE)
    test_x = grey[:, TRAIN_DRAWERS:].reshape(-1, 1, SIZE, SIZE)
    train_y = test_y = None
    if labels:
        char = torch.from_numpy(ids).long()
        train_y = char.repeat_interleave(TRAIN_DRAWERS)
        test_y = char.repeat_interleave(DRAWERS - TRAIN_DRAWERS)
    return DataSplits.from_tensors(
        DataInfo("image", (1, SIZE, SIZE)),
        train_x,
        train_y,
        n_valid=n_valid,
        test_x=test_x,
        test_labels=test_y,
        dynamic_binarization=True,
        num_classes=n_chars if labels else None,
        notes=f"Omniglot 28x28 from the 105x105 originals (area resize), drawers 0-14 train / "
        f"15-19 test of all {n_chars} characters, {n_valid} validation images from train; a "
        "stand-in for Burda et al.'s chardata.mat (24,345 / 8,070), not its pixels",
    )
