"""Statically binarized MNIST: both forms of the ``.amat`` files read to the same arrays."""

from __future__ import annotations

import numpy as np
import pytest
from bench_datasets.images import load_mnist_static, read_amat
from scipy.io import savemat

from bench.errors import DataError
from tests.helpers.data import real_data_dir


def _images(n: int, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).random((n, 784)) < 0.3).astype(np.uint8)


def _write_text(path, x: np.ndarray) -> None:
    path.write_text("".join(" ".join(str(int(v)) for v in row) + "\n" for row in x))


def test_text_and_matlab_amat_files_read_to_the_same_images(tmp_path):
    folder = tmp_path / "text" / "binarized_mnist"
    mat_folder = tmp_path / "mat" / "binarized_mnist"
    folder.mkdir(parents=True)
    mat_folder.mkdir(parents=True)
    sizes = {"train": 7, "valid": 3, "test": 4}
    for i, (split, n) in enumerate(sizes.items()):
        x = _images(n, i)
        _write_text(folder / f"binarized_mnist_{split}.amat", x)
        savemat(mat_folder / f"binarized_mnist_{split}.amat", {"X": x})
    text = load_mnist_static(tmp_path / "text")
    mat = load_mnist_static(tmp_path / "mat")
    for split, n in sizes.items():
        a, b = getattr(text, split).x, getattr(mat, split).x
        assert a.shape == (n, 1, 28, 28)
        assert a.equal(b)
        assert a.equal(getattr(mat, split).x)
    assert text.train.x.flatten(1).numpy().astype(np.uint8).tolist() == _images(7, 0).tolist()


def test_text_amat_with_decimal_tokens_and_bad_files(tmp_path):
    x = _images(2, 5)
    path = tmp_path / "decimals.amat"
    path.write_text("".join(" ".join(f"{v:.1f}" for v in row) + "\n" for row in x))
    assert read_amat(path).tolist() == x.astype(np.float32).tolist()
    short = tmp_path / "short.amat"
    short.write_text("0 1 1\n1 0 0\n")
    with pytest.raises(DataError, match="784 pixels"):
        read_amat(short)
    grey = tmp_path / "grey.amat"
    grey.write_text(" ".join(["0.5"] * 784) + "\n")
    with pytest.raises(DataError, match="0 or 1"):
        read_amat(grey)


def test_shared_static_mnist_split_sizes():
    root = real_data_dir()
    if root is None or not (root / "binarized_mnist").is_dir():
        pytest.skip("static MNIST not in the data folder")
    data = load_mnist_static(root)
    assert (len(data.train), len(data.valid), len(data.test)) == (50000, 10000, 10000)
    assert set(data.test.x.unique().tolist()) == {0.0, 1.0}
