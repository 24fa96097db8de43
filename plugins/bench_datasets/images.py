"""Image data sets: scikit-learn digits (no files), MNIST dynamic and static binarization."""

from __future__ import annotations

import contextlib
import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from bench.data import DataInfo, DataSplits, TensorSplit, data_hint, offline, reachable
from bench.errors import DataError

MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def load_digits(data_dir: Path) -> DataSplits:
    """scikit-learn's 8x8 digits (1,797 images, shipped with the package): smoke runs."""
    from sklearn.datasets import load_digits as sk_digits

    bunch = sk_digits()
    x = torch.tensor(bunch.images / 16.0, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(bunch.target, dtype=torch.long)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    x, y = x[perm], y[perm]
    return DataSplits.from_tensors(
        DataInfo("image", (1, 8, 8)),
        x[:1497],
        y[:1497],
        n_valid=297,
        test_x=x[1497:],
        test_labels=y[1497:],
        dynamic_binarization=True,
        num_classes=10,
        notes="sklearn digits, grey levels / 16, dynamically binarized",
    )


# Each IDX file's dimensions; the header and the length are checked against them on reading.
MNIST_SHAPES = {
    "train-images-idx3-ubyte": (60000, 28, 28),
    "train-labels-idx1-ubyte": (60000,),
    "t10k-images-idx3-ubyte": (10000, 28, 28),
    "t10k-labels-idx1-ubyte": (10000,),
}
MNIST_HOST = "ossci-datasets.s3.amazonaws.com"  # torchvision's first mirror


def read_idx(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    """An IDX file of unsigned bytes (gzipped if it ends in ``.gz``), checked for its magic
    number, its dimensions and its length; a DataError naming the file otherwise."""

    def bad(what: str) -> DataError:
        return DataError(
            f"{path}: {what}; copy the file again (MNIST needs {', '.join(MNIST_FILES)})"
        )

    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                raw = fh.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise bad(f"cannot be read, the file is damaged or truncated ({exc})") from None
    ndim = len(shape)
    # Magic number: two zero bytes, 0x08 (unsigned byte data), then the number of dimensions.
    if len(raw) < 4 or raw[:3] != b"\x00\x00\x08" or raw[3] != ndim:
        raise bad(f"not an IDX file of {ndim}-D unsigned bytes (magic number {raw[:4].hex()})")
    header = 4 + 4 * ndim
    dims = struct.unpack(f">{ndim}I", raw[4:header]) if len(raw) >= header else ()
    if dims != shape:
        raise bad(f"holds an array of shape {dims}, expected {shape}")
    expected = header + math.prod(shape)
    if len(raw) != expected:
        raise bad(f"holds {len(raw):,} bytes once unpacked, expected {expected:,} (truncated?)")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _download_mnist(data_dir: Path) -> None:
    """One attempt at torchvision's download into ``data_dir/MNIST/raw`` (when online)."""
    from torchvision.datasets import MNIST

    if offline() or not reachable(MNIST_HOST):
        return
    with contextlib.suppress(Exception):  # what is still missing is reported by the caller
        MNIST(str(data_dir), train=True, download=True)


def find_mnist(data_dir: Path) -> dict[str, Path] | None:
    """MNIST's four IDX files in ``<data_dir>/mnist/*-ubyte.gz`` (the shared layout) or
    torchvision's ``<data_dir>/MNIST/raw``; None when neither holds them (nothing is
    downloaded here), a DataError when a folder holds some of them only."""
    layouts = [(data_dir / "mnist", ".gz"), (data_dir / "MNIST" / "raw", "")]
    for folder, suffix in layouts:
        paths = {name: folder / f"{name}{suffix}" for name in MNIST_FILES}
        present = [p for p in paths.values() if p.exists()]
        if len(present) == len(paths):
            return paths
        if present:
            missing = [str(p) for p in paths.values() if not p.exists()]
            raise DataError(f"MNIST is incomplete in {folder}: {', '.join(missing)} missing")
    return None


def _read_mnist(data_dir: Path) -> tuple[torch.Tensor, ...]:
    """MNIST from :func:`find_mnist`'s files (downloaded by torchvision when absent and
    online), read straight from the files (no derived cache to go stale)."""
    found = find_mnist(data_dir)
    if found is None:
        _download_mnist(data_dir)
        found = find_mnist(data_dir)
    if found is None:
        how = "BENCH_OFFLINE is set" if offline() else "could not download it"
        raise DataError(
            f"MNIST not found in {data_dir}: looked for {data_dir / 'mnist'}/"
            f"{{{','.join(MNIST_FILES)}}}.gz and {data_dir / 'MNIST' / 'raw'}, and {how} (the "
            f"four IDX files go in {data_dir / 'mnist'}); {data_hint()}"
        )
    return read_mnist_files(found)


def read_mnist_files(found: dict[str, Path]) -> tuple[torch.Tensor, ...]:
    """``(train images, train labels, test images, test labels)`` from the four IDX files;
    images ``[N, 1, 28, 28]`` in [0, 1]."""
    arrays = {name: read_idx(path, MNIST_SHAPES[name]) for name, path in found.items()}

    def images(name: str) -> torch.Tensor:
        return torch.from_numpy(arrays[name].copy()).float().div(255).unsqueeze(1)

    def labels(name: str) -> torch.Tensor:
        return torch.from_numpy(arrays[name].astype(np.int64))

    return (
        images("train-images-idx3-ubyte"),
        labels("train-labels-idx1-ubyte"),
        images("t10k-images-idx3-ubyte"),
        labels("t10k-labels-idx1-ubyte"),
    )


def load_mnist(data_dir: Path) -> DataSplits:
    tx, ty, sx, sy = _read_mnist(data_dir)
    return DataSplits.from_tensors(
        DataInfo("image", (1, 28, 28)),
        tx,
        ty,
        n_valid=10000,
        test_x=sx,
        test_labels=sy,
        dynamic_binarization=True,
        num_classes=10,
        notes="MNIST, dynamically binarized each batch; 10k validation carved from train",
    )


MAT_HEADER = b"MATLAB"  # MATLAB v5 files open with a text header naming the format
AMAT_TEXT_BYTES = frozenset(b"01 \t\r\n")


def read_amat(path: Path, features: int = 784) -> np.ndarray:
    """One ``.amat`` file of binarized MNIST as ``[N, features]`` float32 in {0, 1}.

    Two forms carry this name: Larochelle's original text files (one image a line, pixels as
    space-separated ``0``/``1``) and MATLAB v5 files holding an ``X`` array (the copy in the
    shared data folder). The form is read from the file's first bytes, not its suffix.
    """
    with open(path, "rb") as fh:
        head = fh.read(len(MAT_HEADER))
    if head == MAT_HEADER:
        from scipy.io import loadmat

        x = np.asarray(loadmat(str(path))["X"], dtype=np.float32)
    else:
        raw = path.read_bytes()
        if AMAT_TEXT_BYTES.issuperset(raw):
            # Single-digit tokens: the digits themselves are the pixels (fast, no parsing).
            codes = np.frombuffer(raw, dtype=np.uint8)
            x = (codes[(codes == 48) | (codes == 49)] - 48).astype(np.float32)
            lines = sum(1 for line in raw.splitlines() if line.strip())
            if lines == 0 or x.size != lines * features:
                raise DataError(
                    f"{path}: expected {features} pixels on each of {lines} lines, "
                    f"read {x.size} in all"
                )
            x = x.reshape(lines, features)
        else:
            x = np.loadtxt(path, dtype=np.float32, ndmin=2)
    if x.ndim != 2 or x.shape[1] != features:
        raise DataError(f"{path}: expected images of {features} pixels, got shape {x.shape}")
    if not np.isin(x, (0.0, 1.0)).all():
        raise DataError(f"{path}: pixels must be 0 or 1 (a statically binarized data set)")
    return x


STATIC_NOTE = (
    "statically binarized MNIST (binarized_mnist/*.amat), 50k / 10k / 10k; one fixed "
    "binarization for every split, as in the skip-VAE reference"
)


def load_mnist_static(data_dir: Path, recover_labels: bool = True) -> DataSplits:
    """Statically binarized MNIST (Larochelle's 50k/10k/10k split). Labelled when MNIST's IDX
    files are in ``data_dir`` too (:mod:`bench_datasets.static_labels`, cached), else not."""
    folder = data_dir / "binarized_mnist"
    paths = {name: folder / f"binarized_mnist_{name}.amat" for name in ("train", "valid", "test")}
    arrays = {}
    for name, path in paths.items():
        if not path.exists():
            raise DataError(
                f"statically binarized MNIST not found: {path} is missing "
                f"(binarized_mnist_{{train,valid,test}}.amat go in {folder}); {data_hint()}"
            )
        arrays[name] = read_amat(path)
    labels, note = _static_labels(data_dir, list(paths.values()), arrays, recover_labels)

    def split(name: str) -> TensorSplit:
        y = None if labels is None else torch.from_numpy(labels[name])
        return TensorSplit(torch.from_numpy(arrays[name].reshape(-1, 1, 28, 28)), y)

    return DataSplits(
        DataInfo("image", (1, 28, 28)),
        split("train"),
        split("valid"),
        split("test"),
        None if labels is None else 10,
        f"{STATIC_NOTE}; {note}",
    )


def _static_labels(
    data_dir: Path, static_paths: list[Path], arrays: dict[str, np.ndarray], recover: bool
) -> tuple[dict[str, np.ndarray] | None, str]:
    """The recovered labels (None without MNIST) and what the data notes say about them."""
    from bench_datasets import static_labels

    try:
        mnist = find_mnist(data_dir) if recover else None
    except DataError as exc:  # an incomplete copy of MNIST: the binarized set still loads
        return None, f"unlabelled: {exc}"
    if mnist is None:
        return None, (
            "unlabelled: put MNIST's four IDX files in <data-dir>/mnist to recover the labels "
            "(each image's most likely MNIST image), which gives the probe columns"
        )
    sources = static_paths + [mnist[name] for name in MNIST_FILES]

    def compute() -> static_labels.Recovered:
        train_x, train_y, test_x, test_y = read_mnist_files(mnist)
        grey = (train_x.flatten(1), train_y, test_x.flatten(1), test_y)
        return static_labels.recover(arrays, grey)

    try:
        recovered = static_labels.cached_recovery(sources, compute)
    except DataError as exc:  # the class counts disagree: unlabelled, and the note says why
        return None, f"unlabelled: {exc}"
    note = (
        "labels recovered from MNIST (each image's most likely MNIST image under a Bernoulli "
        f"model, class counts checked against MNIST's; {recovered.summary()})"
    )
    return recovered.labels, note
