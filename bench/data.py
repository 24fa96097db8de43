"""Data splits the runner can iterate on the device without a DataLoader in the hot path.

Image sets keep grey levels in [0, 1] on the device and binarize each batch as it is drawn
(dynamic binarization, so every epoch sees fresh samples); evaluation splits are binarized
once with a fixed seed so every model is scored on the same pixels.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from platformdirs import user_cache_dir

if TYPE_CHECKING:  # torch is imported where a split is made or used: plugins register without it
    import torch
    from torch import Tensor

DATA_DIR_ENV = "BENCH_DATA_DIR"
EVAL_BINARIZATION_SEED = 1234  # every model is scored on the same binarized pixels
# Seeds every subset (``Split.subset``): one fixed value, so every model, objective and seed of
# a data set gets the same examples at a given size and rows compare pairwise.
SUBSET_SEED = 2718
MAX_CLASS_COUNTS = 100  # a record lists each class's count up to this many classes
CACHE_DIR_ENV = "BENCH_CACHE_DIR"
OFFLINE_ENV = "BENCH_OFFLINE"


def data_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Where raw data sets are read from: flag, then ``BENCH_DATA_DIR``, then the user cache."""
    if explicit:
        return Path(explicit).expanduser()
    if env := os.environ.get(DATA_DIR_ENV):
        return Path(env).expanduser()
    return Path(user_cache_dir("collapse-bench")) / "data"


DATA_DOCS = "docs/data.md"  # the data folder's layout and where each data set comes from


def data_hint() -> str:
    """How every missing-data message ends: the flag, the variable, where to get the files."""
    return (
        f"point --data-dir or {DATA_DIR_ENV} at a folder that has them (its layout and where "
        f"to get each data set: {DATA_DOCS})"
    )


def missing_data_message(errors: Mapping[str, str], folder: Path) -> str:
    """One line for every data set of a suite that cannot be read (``name -> message``), the
    hint said once at its end."""
    hint = "; " + data_hint()
    parts = [f"{name}: {message.removesuffix(hint)}" for name, message in errors.items()]
    count = f"{len(errors)} data set{'s' if len(errors) != 1 else ''}"
    return f"{count} cannot be read from {folder}: " + " | ".join(parts) + hint


def cache_dir() -> Path:
    """Where derived arrays (resized Omniglot, token ids) are cached; data dirs may be read-only."""
    root = os.environ.get(CACHE_DIR_ENV) or user_cache_dir("collapse-bench")
    path = Path(root).expanduser() / "derived"
    path.mkdir(parents=True, exist_ok=True)
    return path


def source_identity(path: Path) -> str:
    """What keys a cache derived from ``path``: its resolved path, size and modification
    time, so a cache is never used for another folder's file or a file replaced in place."""
    st = path.stat()
    return f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"


def offline() -> bool:
    """``BENCH_OFFLINE=1``: loaders never try the network (missing data is an error at once)."""
    return os.environ.get(OFFLINE_ENV, "").lower() in {"1", "true", "yes"}


def reachable(host: str, port: int = 443, timeout: float = 3.0) -> bool:
    """One quick TCP connection attempt: whether a download from ``host`` is worth trying
    (without one, download libraries retry for tens of seconds)."""
    import socket

    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class Split(Protocol):
    """One split of a data set, iterable in batches of ``(x, y)``; ``y`` may be ``None``."""

    labels: Tensor | None

    def __len__(self) -> int: ...

    def to(self, device: torch.device | str) -> Split: ...

    def subset(self, n: int, seed: int = SUBSET_SEED) -> Split:
        """``n`` examples drawn at random with ``seed`` (see :func:`subset_indices`):
        stratified by label where the split has labels, never a prefix, since data sets are
        often stored in order (by class, by character, by article)."""
        ...

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

    def subset(self, n: int, seed: int = SUBSET_SEED) -> TensorSplit:
        idx = subset_indices(len(self), n, self.labels, seed).to(self.x.device)
        labels = None if self.labels is None else self.labels[idx]
        return TensorSplit(self.x[idx], labels, self.dynamic_binarization)

    def binarized(self, seed: int) -> TensorSplit:
        """A fixed binarization, used for evaluation splits."""
        if not self.dynamic_binarization:
            return self
        import torch

        g = torch.Generator(device=self.x.device).manual_seed(seed)
        x = torch.bernoulli(self.x, generator=g)
        return TensorSplit(x, self.labels, dynamic_binarization=False)

    def batches(
        self, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None
    ) -> Iterator[tuple[Tensor, Tensor | None]]:
        import torch

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
    """What a model builder needs to know about a data set; ``ModelSpec.build(info, ...)``
    receives it.

    Attributes:
        kind: the data kind, matched against ``ModelSpec.kinds`` before anything trains:
            ``"image"`` (tensor batches) or ``"text"`` (token batches); a plugin may introduce
            its own kind for its own models.
        shape: one example's tensor shape, e.g. ``(1, 28, 28)``; empty for text.
        vocab_size: text: number of token ids, specials included.
        pad_id, bos_id, eos_id: text: ids of padding, ``<s>`` and ``</s>``.
        extra: anything else a data set wants its models to know (free-form).
    """

    kind: str
    shape: tuple[int, ...] = ()
    vocab_size: int | None = None
    pad_id: int | None = None
    bos_id: int | None = None
    eos_id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class DataSplits:
    """What a data set's ``load(data_dir, **params)`` returns.

    Attributes:
        info: what models need to know (:class:`DataInfo`).
        train, valid, test: the splits, each a :class:`Split` (:class:`TensorSplit` for
            tensors). Validation is used per epoch (early stopping, per-epoch metrics); reported
            figures come from test. Evaluation splits should be fixed (binarized once), so
            every model is scored on the same data.
        num_classes: label classes when the splits carry labels (linear probe), else None.
        notes: one line on the source and any deviation from the usual version; printed with
            leaderboards.
    """

    info: DataInfo
    train: Split
    valid: Split
    test: Split
    num_classes: int | None = None
    notes: str = ""

    @classmethod
    def from_tensors(
        cls,
        info: DataInfo,
        x: Tensor,
        labels: Tensor | None = None,
        *,
        n_valid: int,
        n_test: int = 0,
        test_x: Tensor | None = None,
        test_labels: Tensor | None = None,
        seed: int = 0,
        dynamic_binarization: bool = False,
        num_classes: int | None = None,
        notes: str = "",
    ) -> DataSplits:
        """Three :class:`TensorSplit` s from tensors, split at random with a seeded permutation.

        Args:
            info: the data set's :class:`DataInfo` (``shape`` is one example's shape).
            x: ``[N, *shape]`` examples; for images, grey levels in [0, 1] or binary values.
            labels: ``[N]`` class ids, or None for unlabelled data.
            n_valid: examples drawn (without replacement) from ``x`` for validation.
            n_test: examples drawn from ``x`` for the test split; must be 0 when ``test_x``
                is given.
            test_x: a separate test set ``[M, *shape]``, such as a data set's official test
                split; then ``x`` holds training and validation examples only.
            test_labels: ``[M]`` labels of ``test_x``.
            seed: seeds the permutation, so the same seed always gives the same splits.
            dynamic_binarization: ``x`` holds grey levels; training batches are resampled as
                Bernoulli draws every time they are drawn, while the validation and test
                splits are binarized once with fixed seeds (``EVAL_BINARIZATION_SEED`` and
                ``+ 1``) so every model is scored on the same pixels.
            num_classes: copied to the result (set it when there are labels).
            notes: copied to the result.

        The permutation ``perm`` of ``range(N)`` gives validation ``perm[:n_valid]``, test
        ``perm[n_valid:n_valid + n_test]`` and training the rest, each in permuted order.
        """
        _require_splittable(len(x), labels, n_valid, n_test, test_x, test_labels)
        train, valid, test = _permuted_splits(
            x, labels, n_valid, n_test, seed, dynamic_binarization
        )
        if test_x is not None:  # the official test set, in place of the empty drawn one
            test = TensorSplit(test_x, test_labels, dynamic_binarization)
        valid = valid.binarized(EVAL_BINARIZATION_SEED)
        test = test.binarized(EVAL_BINARIZATION_SEED + 1)
        return cls(info, train, valid, test, num_classes, notes)

    def to(self, device: torch.device | str) -> DataSplits:
        return DataSplits(
            self.info,
            self.train.to(device),
            self.valid.to(device),
            self.test.to(device),
            self.num_classes,
            self.notes,
        )


def _require_splittable(
    n: int,
    labels: Tensor | None,
    n_valid: int,
    n_test: int,
    test_x: Tensor | None,
    test_labels: Tensor | None,
) -> None:
    """:class:`~bench.errors.ConfigError` unless :meth:`DataSplits.from_tensors` can make
    three non-empty splits of ``n`` examples with these sizes and labels."""
    from bench.errors import ConfigError

    if labels is not None and len(labels) != n:
        raise ConfigError(f"labels has {len(labels)} entries for {n} examples")
    if test_x is not None and n_test:
        raise ConfigError("give n_test or test_x, not both")
    if test_x is None and test_labels is not None:
        raise ConfigError("test_labels needs test_x")
    if test_x is None and n_test < 1:
        raise ConfigError("the test split needs n_test >= 1 or a separate test_x")
    if test_x is not None and test_labels is not None and len(test_labels) != len(test_x):
        raise ConfigError(f"test_labels has {len(test_labels)} entries for {len(test_x)}")
    if n_valid < 1 or n_test < 0 or n_valid + n_test >= n:
        raise ConfigError(
            f"cannot split {n} examples into {n_valid} validation and {n_test} test "
            "examples and a non-empty training set"
        )


def _permuted_splits(
    x: Tensor, labels: Tensor | None, n_valid: int, n_test: int, seed: int, dynamic: bool
) -> tuple[TensorSplit, TensorSplit, TensorSplit]:
    """Training, validation and test splits of ``x`` drawn with a permutation seeded by
    ``seed``: validation ``perm[:n_valid]``, test the next ``n_test``, training the rest."""
    import torch

    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    parts = (perm[n_valid + n_test :], perm[:n_valid], perm[n_valid : n_valid + n_test])
    train, valid, test = (
        TensorSplit(x[idx], None if labels is None else labels[idx], dynamic) for idx in parts
    )
    return train, valid, test


def channels_last_split(split: Split) -> Split:
    """Store 4-D image tensors NHWC; slicing a batch keeps the layout, so no copy per batch."""
    if isinstance(split, TensorSplit) and split.x.dim() == 4:
        import torch

        x = split.x.contiguous(memory_format=torch.channels_last)
        return TensorSplit(x, split.labels, split.dynamic_binarization)
    return split


def without_labels(split: Split) -> Split:
    """Training batches never use labels; dropping them saves one gather per step. The
    permutation and Bernoulli draws are unchanged, so so are the batches."""
    if isinstance(split, TensorSplit) and split.labels is not None:
        return TensorSplit(split.x, None, split.dynamic_binarization)
    return split


# ---- subsets ------------------------------------------------------------------------------


def subset_indices(
    total: int, n: int, labels: Tensor | None = None, seed: int = SUBSET_SEED
) -> Tensor:
    """Which ``n`` of ``total`` examples a subset keeps, in their stored order (a CPU tensor).

    Unlabelled: a seeded random sample. Labelled: a stratified one, where each class gets its
    share of ``n`` to within one example. Both come from one seeded order of all examples, so
    a smaller subset is part of every larger one, and the sample depends on nothing but the
    split, ``n`` and ``seed``: every model, objective and training seed sees the same
    examples. ``n >= total`` keeps everything.
    """
    import torch

    if n >= total:
        return torch.arange(total)
    order = torch.randperm(total, generator=torch.Generator().manual_seed(seed))
    if labels is not None:
        order = order[_stratified_order(labels.detach().cpu()[order])]
    return order[:n].sort().values


def _stratified_order(labels: Tensor) -> Tensor:
    """An order of examples (already in random order) in which every prefix holds each class
    in proportion: the r-th example of a class of size m is ranked at (r + 1/2) / m."""
    import torch

    _, classes, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    by_class = torch.argsort(classes, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(classes)
    rank[by_class] = torch.arange(len(classes)) - starts[classes[by_class]]
    position = (rank.double() + 0.5) / counts[classes].double()
    return torch.argsort(position, stable=True)


def class_counts(labels: Tensor | None) -> dict[str, int] | None:
    """Examples per class (keys are the class ids as text, for JSON), None without labels."""
    if labels is None:
        return None
    import torch

    values, counts = torch.unique(labels.detach().cpu(), return_counts=True)
    return {str(int(v)): int(c) for v, c in zip(values, counts, strict=True)}


def subset_record(full: Split, part: Split, seed: int = SUBSET_SEED) -> dict[str, Any]:
    """What a run's record says about one split it used: its size, the split's size, and
    for a subset how it was drawn and (labelled) its class counts."""
    out: dict[str, Any] = {"size": len(part), "of": len(full)}
    if len(part) < len(full):
        out["seed"] = seed
        out["sample"] = "random, stratified by label" if part.labels is not None else "random"
        counts = class_counts(part.labels)
        if counts is not None and len(counts) <= MAX_CLASS_COUNTS:
            out["class_counts"] = counts
        elif counts is not None:  # Omniglot's characters: a summary, not 1,623 entries
            out["classes"] = len(counts)
            out["per_class"] = [min(counts.values()), max(counts.values())]
    return out
