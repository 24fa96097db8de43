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
EVAL_BINARIZATION_SEED = 1234  # every model is scored on the same binarized pixels


def _split_train_valid(
    x: torch.Tensor, y: torch.Tensor | None, n_valid: int, seed: int = 0
) -> tuple[TensorSplit, TensorSplit]:
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    tr, va = perm[n_valid:], perm[:n_valid]
    return (
        TensorSplit(x[tr], None if y is None else y[tr], dynamic_binarization=True),
        TensorSplit(x[va], None if y is None else y[va], dynamic_binarization=True),
    )


def dynamic_splits(
    info: DataInfo,
    train_x: torch.Tensor,
    train_y: torch.Tensor | None,
    test_x: torch.Tensor,
    test_y: torch.Tensor | None,
    n_valid: int,
    num_classes: int | None,
    notes: str,
) -> DataSplits:
    """Grey-level images in [0, 1]: training is resampled each batch; validation and test get
    one fixed binarization."""
    train, valid = _split_train_valid(train_x, train_y, n_valid)
    test = TensorSplit(test_x, test_y, dynamic_binarization=True)
    return DataSplits(
        info,
        train,
        valid.binarized(EVAL_BINARIZATION_SEED),
        test.binarized(EVAL_BINARIZATION_SEED + 1),
        num_classes,
        notes,
    )


def load_digits(data_dir: Path) -> DataSplits:
    """scikit-learn's 8x8 digits (1,797 images, shipped with the package): smoke runs."""
    from sklearn.datasets import load_digits as sk_digits

    bunch = sk_digits()
    x = torch.tensor(bunch.images / 16.0, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(bunch.target, dtype=torch.long)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    x, y = x[perm], y[perm]
    return dynamic_splits(
        DataInfo("image", (1, 8, 8)),
        x[:1497],
        y[:1497],
        x[1497:],
        y[1497:],
        297,
        10,
        "sklearn digits, grey levels / 16, dynamically binarized",
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
    return dynamic_splits(
        DataInfo("image", (1, 28, 28)),
        tx,
        ty,
        sx,
        sy,
        10000,
        10,
        "MNIST, dynamically binarized each batch; 10k validation carved from train",
    )


def load_mnist_static(data_dir: Path) -> DataSplits:
    """Statically binarized MNIST (Larochelle's 50k/10k/10k split), no labels."""
    from scipy.io import loadmat

    folder = data_dir / "binarized_mnist"
    arrays = {}
    for split in ("train", "valid", "test"):
        path = folder / f"binarized_mnist_{split}.amat"
        if not path.exists():
            raise DataError(
                f"statically binarized MNIST not found: {path} is missing; put "
                "binarized_mnist_{train,valid,test}.amat there or set --data-dir / BENCH_DATA_DIR"
            )
        # The files are MATLAB v5 despite the .amat suffix (see the data README).
        x = np.asarray(loadmat(str(path))["X"], dtype=np.float32).reshape(-1, 1, 28, 28)
        arrays[split] = torch.from_numpy(x)
    return DataSplits(
        DataInfo("image", (1, 28, 28)),
        TensorSplit(arrays["train"]),
        TensorSplit(arrays["valid"]),
        TensorSplit(arrays["test"]),
        None,
        "statically binarized MNIST, 50k / 10k / 10k, unlabelled",
    )
