"""Statically binarized MNIST: both forms of the ``.amat`` files read to the same arrays, and
its labels recovered from MNIST by Bernoulli likelihood."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from bench_datasets import images, static_labels
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
    data = load_mnist_static(root, recover_labels=False)
    assert (len(data.train), len(data.valid), len(data.test)) == (50000, 10000, 10000)
    assert set(data.test.x.unique().tolist()) == {0.0, 1.0}


# ---- labels recovered from MNIST ------------------------------------------------------------


def _grey(n: int, seed: int) -> torch.Tensor:
    """Digit-like grey images: mostly black, a blob of strokes."""
    g = torch.Generator().manual_seed(seed)
    grey = torch.rand(n, 784, generator=g) ** 3
    return grey * (torch.rand(n, 784, generator=g) < 0.3)


def _draw(grey: torch.Tensor, seed: int) -> np.ndarray:
    return torch.bernoulli(grey, generator=torch.Generator().manual_seed(seed)).numpy()


def test_each_binarized_image_is_matched_to_the_image_it_was_drawn_from():
    grey = _grey(300, 0)
    order = torch.randperm(300, generator=torch.Generator().manual_seed(1))
    m = static_labels.bernoulli_matches(torch.from_numpy(_draw(grey[order], 2)), grey, chunk=64)
    assert m.best.tolist() == order.tolist()
    assert (m.runner_up != m.best).all() and (m.gap > 0).all()
    labels = np.arange(300) % 10
    stats = static_labels.match_stats(m, labels)
    assert stats["images"] == 300 and stats["distinct"] == 300
    # The runner-up of an exact duplicate is a tie at 0 nats with the same label.
    twin = torch.cat([grey, grey[:1]])
    tied = static_labels.bernoulli_matches(torch.from_numpy(_draw(grey[:1], 3)), twin)
    assert tied.gap[0] == pytest.approx(0.0, abs=1e-3)
    assert static_labels.match_stats(tied, np.arange(301) % 300 % 10)["near_ties"] == 1


def _fake_mnist() -> tuple[tuple[torch.Tensor, ...], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """A small MNIST (60 training and 20 test images, labels 0-9) and a static binarization
    of it with train / valid drawn from its training images at random, and its true labels."""
    train, test = _grey(60, 10), _grey(20, 11)
    train_y, test_y = torch.arange(60) % 10, torch.arange(20) % 10
    perm = torch.randperm(60, generator=torch.Generator().manual_seed(12))
    static = {
        "train": _draw(train[perm[:45]], 13),
        "valid": _draw(train[perm[45:]], 14),
        "test": _draw(test, 15),
    }
    truth = {"train": train_y[perm[:45]], "valid": train_y[perm[45:]], "test": test_y}
    return (train, train_y, test, test_y), static, {k: v.numpy() for k, v in truth.items()}


def test_recovery_finds_the_labels_and_checks_class_counts():
    mnist, static, truth = _fake_mnist()
    recovered = static_labels.recover(static, mnist)
    for split in static_labels.SPLITS:
        assert recovered.labels[split].tolist() == truth[split].tolist()
    assert recovered.stats["test"]["distinct"] == 20
    assert recovered.stats["train+valid"]["images"] == 60
    assert "test: 20 distinct best matches of 20" in recovered.summary()
    # A test set that draws one image twice and another not at all is not MNIST's: its class
    # counts disagree, and the recovery refuses.
    twice = torch.tensor([0, 0, *range(2, 20)])
    other = {**static, "test": _draw(mnist[2][twice], 16)}
    with pytest.raises(DataError, match="class counts"):
        static_labels.recover(other, mnist)


def _static_folder(tmp_path, static: dict[str, np.ndarray]):
    folder = tmp_path / "binarized_mnist"
    folder.mkdir()
    for split, x in static.items():
        savemat(folder / f"binarized_mnist_{split}.amat", {"X": x.astype(np.uint8)})
    return tmp_path


def test_loader_labels_from_mnist_once_then_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    mnist, static, truth = _fake_mnist()
    root = _static_folder(tmp_path, static)
    without = load_mnist_static(root)
    assert without.test.labels is None and without.num_classes is None
    assert "put MNIST's four IDX files in <data-dir>/mnist" in without.notes
    (root / "mnist").mkdir()
    for name in images.MNIST_FILES:
        (root / "mnist" / f"{name}.gz").write_bytes(b"stand-in")
    monkeypatch.setattr(images, "read_mnist_files", lambda found: mnist)
    calls = []
    real_recover = static_labels.recover
    monkeypatch.setattr(static_labels, "recover", lambda *a: calls.append(1) or real_recover(*a))
    data = load_mnist_static(root)
    assert data.num_classes == 10 and data.test.labels.tolist() == truth["test"].tolist()
    assert data.valid.labels.tolist() == truth["valid"].tolist()
    assert "labels recovered from MNIST" in data.notes and "20 distinct" in data.notes
    again = load_mnist_static(root)
    assert len(calls) == 1 and again.train.labels.equal(data.train.labels)
    # A source replaced in place is another key: the match runs again.
    (root / "mnist" / f"{images.MNIST_FILES[0]}.gz").write_bytes(b"replaced, longer")
    load_mnist_static(root)
    assert len(calls) == 2
    assert load_mnist_static(root, recover_labels=False).test.labels is None


@pytest.mark.slow
def test_shared_static_mnist_labels_match_mnist():
    root = real_data_dir()
    if root is None or not (root / "binarized_mnist").is_dir():
        pytest.skip("static MNIST not in the data folder")
    data = load_mnist_static(root)  # the match runs once per machine (minutes), then cached
    mnist_test = images.read_mnist_files(images.find_mnist(root))[3]
    assert data.num_classes == 10
    assert torch.bincount(data.test.labels).tolist() == torch.bincount(mnist_test).tolist()
    assert data.test.labels[:1].tolist() == [0]  # test image 0 is MNIST test image 3, a zero
    assert "test: 9,991 distinct best matches of 10,000, 110 near-ties" in data.notes
    assert "110 with the runner-up's label" in data.notes
    assert "train+valid: 59,714 distinct best matches of 60,000, 1,883 near-ties" in data.notes
    mnist_train = images.read_mnist_files(images.find_mnist(root))[1]
    train_valid = torch.cat([data.train.labels, data.valid.labels])
    assert torch.bincount(train_valid).tolist() == torch.bincount(mnist_train).tolist()
