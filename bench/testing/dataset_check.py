""":func:`check_dataset`: a data set's splits, their batches and what they tell models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from bench.data import DataInfo, DataSplits, Split
from bench.specs import DatasetSpec, resolve_params
from bench.testing.violations import ViolationReport


def check_dataset(
    dataset: DatasetSpec | DataSplits,
    data_dir: str | Path | None = None,
    *,
    batch_size: int = 7,
    **params: Any,
) -> DataSplits:
    """Load a data set (a spec, with its default parameters overlaid by ``params``) or take
    loaded splits, and check them:

    - ``load`` returns :class:`~bench.data.DataSplits` whose ``info`` is a
      :class:`~bench.data.DataInfo` of the spec's ``kind``;
    - every split is non-empty, ``subset(n)`` has n examples and ``to("cpu")`` keeps them;
    - ``batches`` covers the split exactly, shuffled or not, in batches of at most
      ``batch_size``; labels, when present, come one per example;
    - image batches are tensors of shape ``[b, *info.shape]`` with finite values; text data
      sets give ``vocab_size`` and ``pad_id``;
    - labels lie in ``[0, num_classes)``;
    - the validation and test splits give the same batches every time (fixed evaluation data:
      no per-batch binarization there).

    Args:
        dataset: a registered spec (loaded here) or splits already loaded.
        data_dir: the folder a spec's loader reads from (default: the working folder).
        batch_size: the batch size the batches are drawn with.
        **params: the loader's parameters, over its defaults.

    Returns:
        The splits.

    Raises:
        ContractCheckError: listing every violation.
    """
    report = ViolationReport()
    spec = dataset if isinstance(dataset, DatasetSpec) else None
    subject = "data set" if spec is None else f"data set {spec.name!r}"
    splits = dataset if spec is None else _load(report, spec, data_dir, params, subject)
    _require_info(report, splits, spec, subject)
    for split_name in ("train", "valid", "test"):
        _check_split(report, splits, split_name, batch_size)
    report.raise_if_any(subject)
    return splits


def _load(
    report: ViolationReport,
    spec: DatasetSpec,
    data_dir: str | Path | None,
    params: dict[str, Any],
    subject: str,
) -> Any:
    """What ``spec.load`` returns with its parameters resolved; the check stops if it raises."""
    values = resolve_params(spec.params, params, subject)
    root = Path(data_dir or ".")
    splits = report.call("load(data_dir, **params)", lambda: spec.load(root, **values))[1]
    report.raise_if_any(subject)
    return splits


def _require_info(
    report: ViolationReport, splits: Any, spec: DatasetSpec | None, subject: str
) -> None:
    """DataSplits with a DataInfo (the check stops otherwise), of the spec's kind; text data
    sets name their vocabulary size and padding id."""
    if not isinstance(splits, DataSplits):
        report.add("load(data_dir)", "a bench.data.DataSplits", type(splits).__name__)
        report.raise_if_any(subject)
    info = splits.info
    if not isinstance(info, DataInfo):
        report.add("info", "a bench.data.DataInfo", type(info).__name__)
        report.raise_if_any(subject)
    if spec is not None and info.kind != spec.kind:
        report.add("info.kind", f"the spec's kind {spec.kind!r}", repr(info.kind))
    if info.kind == "text" and (info.vocab_size is None or info.pad_id is None):
        report.add("info (text)", "vocab_size and pad_id", f"{info.vocab_size}, {info.pad_id}")


def _check_split(report: ViolationReport, splits: DataSplits, name: str, batch_size: int) -> None:
    """One split's checks; a broken batch ends them (the rest would repeat it)."""
    split = getattr(splits, name)
    if not _check_size(report, split, name):
        return
    if split.labels is not None:
        _check_labels(report, split.labels, len(split), name, splits.num_classes)
    for shuffle in (False, True):
        if not _check_batches(report, split, name, batch_size, shuffle, splits.info):
            return
    if name != "train":
        _check_fixed_batches(report, split, name, batch_size)


def _check_size(report: ViolationReport, split: Split, name: str) -> bool:
    """Non-empty, with ``subset(n)`` and ``to("cpu")`` keeping the right number of examples;
    False when empty (nothing else to check)."""
    n = len(split)
    if n < 1:
        report.add(f"len({name})", ">= 1", n)
        return False
    m = min(n, 3)
    if len(split.subset(m)) != m:
        report.add(f"{name}.subset({m})", f"{m} examples", len(split.subset(m)))
    if len(split.to("cpu")) != n:
        report.add(f"{name}.to('cpu')", f"{n} examples", len(split.to("cpu")))
    return True


def _check_labels(
    report: ViolationReport, labels: Tensor, n: int, name: str, num_classes: int | None
) -> None:
    """One label per example, each in ``[0, num_classes)``."""
    if len(labels) != n:
        report.add(f"{name}.labels", f"{n} labels", len(labels))
    k = num_classes
    if k is None:
        report.add("num_classes", "the number of classes of a labelled data set", None)
    elif bool((labels < 0).any()) or bool((labels >= k).any()):
        report.add(f"{name}.labels", f"values in [0, {k})", f"{labels.min()}..{labels.max()}")


def _check_batches(
    report: ViolationReport,
    split: Split,
    name: str,
    batch_size: int,
    shuffle: bool,
    info: DataInfo,
) -> bool:
    """The batches cover the split exactly, each of 1..``batch_size`` examples with a label
    per example, image batches of the data set's shape and finite; False at a broken batch."""
    g = torch.Generator().manual_seed(0) if shuffle else None
    seen = 0
    for x, y in split.batches(batch_size, shuffle=shuffle, generator=g):
        where = f"{name}.batches({batch_size}, shuffle={shuffle})"
        if not 0 < len(x) <= batch_size:
            report.add(where, f"batches of 1..{batch_size} examples", len(x))
            return False
        if y is not None and len(y) != len(x):
            report.add(where, f"{len(x)} labels for {len(x)} examples", len(y))
            return False
        if info.kind == "image" and isinstance(x, Tensor):
            if not report.shape(f"{where} x", x, (len(x), *info.shape)):
                return False
            report.finite(f"{where} x", x)
        seen += len(x)
    if seen != len(split):
        report.add(f"{name}.batches(shuffle={shuffle})", f"{len(split)} examples in all", seen)
    return True


def _check_fixed_batches(report: ViolationReport, split: Split, name: str, batch_size: int) -> None:
    """An evaluation split gives the same batches every time: every model is scored on the
    same data."""
    first = [x for x, _ in split.batches(batch_size)]
    second = [x for x, _ in split.batches(batch_size)]
    same = all(
        torch.equal(a, b) if isinstance(a, Tensor) else True
        for a, b in zip(first, second, strict=True)
    )
    if not same:
        report.add(
            f"{name}.batches() twice",
            "the same batches (fixed evaluation data)",
            "different values: binarize evaluation splits once",
        )
