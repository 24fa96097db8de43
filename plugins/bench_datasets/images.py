"""Image data sets: scikit-learn digits (no files), MNIST dynamic and static binarization."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import torch

from bench.data import DataInfo, DataSplits, TensorSplit, cache_dir, offline
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


def _mnist_root(data_dir: Path) -> Path:
    """A torchvision MNIST root holding ``MNIST/raw``; the shared layout (gzipped IDX files in
    ``<data_dir>/mnist/``) is unpacked into the cache once since data dirs may be read-only."""
    if (data_dir / "MNIST" / "raw" / MNIST_FILES[0]).exists():
        return data_dir
    gz_dir = data_dir / "mnist"
    if all((gz_dir / f"{name}.gz").exists() for name in MNIST_FILES):
        root = cache_dir() / "torchvision"
        raw = root / "MNIST" / "raw"
        raw.mkdir(parents=True, exist_ok=True)
        for name in MNIST_FILES:
            target = raw / name
            if not target.exists():
                tmp = raw / f".{name}.tmp"
                with gzip.open(gz_dir / f"{name}.gz") as src, open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                tmp.replace(target)
        return root
    return data_dir


def _read_mnist(data_dir: Path) -> tuple[torch.Tensor, ...]:
    from torchvision.datasets import MNIST

    root = _mnist_root(data_dir)
    try:
        train = MNIST(str(root), train=True, download=not offline())
        test = MNIST(str(root), train=False, download=not offline())
    except Exception as exc:
        raise DataError(
            f"MNIST not found: looked for {data_dir / 'mnist'}/*-ubyte.gz and "
            f"{data_dir / 'MNIST' / 'raw'}, and could not download it "
            f"({type(exc).__name__}); put the four IDX files in {data_dir / 'mnist'} or point "
            "--data-dir / BENCH_DATA_DIR at a folder that has them"
        ) from None
    return (
        train.data.float().div(255).unsqueeze(1),
        train.targets.long(),
        test.data.float().div(255).unsqueeze(1),
        test.targets.long(),
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


def load_mnist_static(data_dir: Path) -> DataSplits:
    """Statically binarized MNIST (Larochelle's 50k/10k/10k split), no labels."""
    folder = data_dir / "binarized_mnist"
    arrays = {}
    for split in ("train", "valid", "test"):
        path = folder / f"binarized_mnist_{split}.amat"
        if not path.exists():
            raise DataError(
                f"statically binarized MNIST not found: {path} is missing; put "
                "binarized_mnist_{train,valid,test}.amat there or set --data-dir / BENCH_DATA_DIR"
            )
        arrays[split] = torch.from_numpy(read_amat(path).reshape(-1, 1, 28, 28))
    return DataSplits(
        DataInfo("image", (1, 28, 28)),
        TensorSplit(arrays["train"]),
        TensorSplit(arrays["valid"]),
        TensorSplit(arrays["test"]),
        None,
        "statically binarized MNIST (binarized_mnist/*.amat), 50k / 10k / 10k, unlabelled; one "
        "fixed binarization for every split, as in the skip-VAE reference",
    )
