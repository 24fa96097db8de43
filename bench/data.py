"""Data splits the runner can iterate on the device without a DataLoader in the hot path.

Image sets keep grey levels in [0, 1] on the device and binarize each batch as it is drawn
(dynamic binarization, so every epoch sees fresh samples); evaluation splits are binarized
once with a fixed seed so every model is scored on the same pixels.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from platformdirs import user_cache_dir
from torch import Tensor

DATA_DIR_ENV = "BENCH_DATA_DIR"
CACHE_DIR_ENV = "BENCH_CACHE_DIR"
OFFLINE_ENV = "BENCH_OFFLINE"


def data_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Where raw data sets are read from: flag, then ``BENCH_DATA_DIR``, then the user cache."""
    if explicit:
        return Path(explicit).expanduser()
    if env := os.environ.get(DATA_DIR_ENV):
        return Path(env).expanduser()
    return Path(user_cache_dir("collapse-bench")) / "data"


def cache_dir() -> Path:
    """Where derived arrays (resized Omniglot, token ids) are cached; data dirs may be read-only."""
    root = os.environ.get(CACHE_DIR_ENV) or user_cache_dir("collapse-bench")
    path = Path(root).expanduser() / "derived"
    path.mkdir(parents=True, exist_ok=True)
    return path


def offline() -> bool:
    return os.environ.get(OFFLINE_ENV, "").lower() in {"1", "true", "yes"}


class Split(Protocol):
    """One split of a data set, iterable in batches of ``(x, y)``; ``y`` may be ``None``."""

    labels: Tensor | None

    def __len__(self) -> int: ...

    def to(self, device: torch.device | str) -> Split: ...

    def subset(self, n: int) -> Split: ...

    def batches(
        self, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None
    ) -> Iterator[tuple[Any, Tensor | None]]: ...


@dataclass
class TensorSplit:
    """Images as a float tensor ``[N, C, H, W]`` (or ``[N, F]``), optionally binarized per batch."""

    x: Tensor
    labels: Tensor | None = None
    dynamic_binarization: bool = False

    def __len__(self) -> int:
        return self.x.shape[0]

    def to(self, device: torch.device | str) -> TensorSplit:
        labels = None if self.labels is None else self.labels.to(device)
        return TensorSplit(self.x.to(device), labels, self.dynamic_binarization)

    def subset(self, n: int) -> TensorSplit:
        labels = None if self.labels is None else self.labels[:n]
        return TensorSplit(self.x[:n], labels, self.dynamic_binarization)

    def binarized(self, seed: int) -> TensorSplit:
        """A fixed binarization, used for evaluation splits."""
        if not self.dynamic_binarization:
            return self
        g = torch.Generator(device=self.x.device).manual_seed(seed)
        x = torch.bernoulli(self.x, generator=g)
        return TensorSplit(x, self.labels, dynamic_binarization=False)

    def batches(
        self, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None
    ) -> Iterator[tuple[Tensor, Tensor | None]]:
        n = len(self)
        order = torch.randperm(n, device=self.x.device, generator=generator) if shuffle else None
        for start in range(0, n, batch_size):
            if order is None:
                x = self.x[start : start + batch_size]
                y = None if self.labels is None else self.labels[start : start + batch_size]
            else:
                idx = order[start : start + batch_size]
                x = self.x[idx]
                y = None if self.labels is None else self.labels[idx]
            if self.dynamic_binarization:
                x = torch.bernoulli(x, generator=generator)
            yield x, y


@dataclass
class DataInfo:
    """What a model builder needs to know about a data set."""

    kind: str  # "image" or "text"
    shape: tuple[int, ...] = ()  # per-example tensor shape for images
    vocab_size: int | None = None
    pad_id: int | None = None
    bos_id: int | None = None
    eos_id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class DataSplits:
    """What a dataset loader returns: train, validation and test splits plus their info."""

    info: DataInfo
    train: Split
    valid: Split
    test: Split
    num_classes: int | None = None
    notes: str = ""

    def to(self, device: torch.device | str) -> DataSplits:
        return DataSplits(
            self.info,
            self.train.to(device),
            self.valid.to(device),
            self.test.to(device),
            self.num_classes,
            self.notes,
        )


def channels_last_split(split: Split) -> Split:
    """Store 4-D image tensors NHWC; slicing a batch keeps the layout, so no copy per batch."""
    if isinstance(split, TensorSplit) and split.x.dim() == 4:
        x = split.x.contiguous(memory_format=torch.channels_last)
        return TensorSplit(x, split.labels, split.dynamic_binarization)
    return split


def without_labels(split: Split) -> Split:
    """Training batches never use labels; dropping them saves one gather per step. The
    permutation and Bernoulli draws are unchanged, so so are the batches."""
    if isinstance(split, TensorSplit) and split.labels is not None:
        return TensorSplit(split.x, None, split.dynamic_binarization)
    return split
