"""Omniglot 28x28: inversion, resize, drawer split, caching, and the real split sizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from bench_datasets import omniglot

from bench import plugins
from bench.data import data_dir
from bench.errors import ConfigError, DataError
from bench.testing import check_dataset


def _fake_source(first: int, n_chars: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """An npz like the real ones: bool (chars, 20, 105, 105), True = background, with a
    vertical stroke whose column encodes the character's global index (``first + c``)."""
    rng = np.random.default_rng(seed)
    images = np.ones((n_chars, 20, 105, 105), dtype=bool)
    for c in range(n_chars):
        col = 10 + 8 * (first + c)
        images[c, :, 20:80, col : col + 8] = False
        images[c, :, rng.integers(0, 100), rng.integers(0, 100)] = False  # a stray dot
    labels = np.repeat(np.arange(n_chars)[:, None], 20, axis=1)
    return images, labels


@pytest.fixture
def fake_data(tmp_path, monkeypatch):
    root = tmp_path / "data"
    (root / "omniglot").mkdir(parents=True)
    for name, first, n in [("images_background.npz", 0, 3), ("images_evaluation.npz", 3, 2)]:
        images, labels = _fake_source(first, n, seed=first)
        np.savez_compressed(root / "omniglot" / name, images=images, labels=labels)
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    return root


def test_split_by_drawer_with_strokes_as_ones(fake_data):
    check_dataset(plugins.registries().datasets.get("omniglot"), fake_data, n_valid=10)
    check_dataset(omniglot.load_omniglot(fake_data, n_valid=10, labels=True))
    splits = omniglot.load_omniglot(fake_data, n_valid=10, labels=True)
    assert splits.info.shape == (1, 28, 28)
    assert len(splits.train) + len(splits.valid) == 5 * 15
    assert len(splits.valid) == 10
    assert len(splits.test) == 5 * 5
    assert splits.num_classes == 5
    # Grey levels before binarization: strokes near 1, background 0, ink a minority.
    train = splits.train.x
    assert train.max() > 0.99 and train.min() == 0.0 and train.mean() < 0.2
    # Character c's stroke: rows 20-80, columns 10+8c .. 18+8c of 105 (rows 8-18 of 28).
    for c in range(5):
        idx = (splits.train.labels == c).nonzero().flatten()
        col = int(train[idx, 0, 8:18].mean(dim=(0, 1)).argmax())
        assert abs(col - (14 + 8 * c) * 28 / 105) <= 1.5
    # Evaluation splits are binarized once; the test split has exactly drawers 15-19.
    assert set(splits.test.x.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(torch.bincount(splits.test.labels), torch.full((5,), 5))


def test_resize_is_cached_and_reused(fake_data, monkeypatch, tmp_path):
    first = omniglot.load_omniglot(fake_data, n_valid=10)
    cached = list((tmp_path / "cache").rglob("omniglot28-*.npz"))
    assert len(cached) == 1

    def boom(images):
        raise AssertionError("resize ran again")

    monkeypatch.setattr(omniglot, "_resize", boom)
    second = omniglot.load_omniglot(fake_data, n_valid=10)
    assert torch.equal(first.train.x, second.train.x)
    assert first.train.labels is None  # labels are opt-in


def test_missing_files_and_bad_params_are_user_errors(tmp_path, fake_data):
    with pytest.raises(DataError, match="images_background.npz"):
        omniglot.load_omniglot(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="n_valid"):
        omniglot.load_omniglot(fake_data, n_valid=75)


def test_registered_with_documented_sizes():
    spec = plugins.registries().datasets.get("omniglot")
    n_train = omniglot.N_CHARACTERS * omniglot.TRAIN_DRAWERS
    n_test = omniglot.N_CHARACTERS * (omniglot.DRAWERS - omniglot.TRAIN_DRAWERS)
    expected = f"{n_train - omniglot.DEFAULT_VALID:,} / {omniglot.DEFAULT_VALID:,} / {n_test:,}"
    assert spec.sizes == expected
    assert spec.params["n_valid"].default == omniglot.DEFAULT_VALID


def test_real_omniglot_has_the_documented_split_sizes():
    root = data_dir()
    if not all((root / "omniglot" / f).exists() for f in omniglot.SOURCE_FILES):
        pytest.skip(f"Omniglot npz files not in {root / 'omniglot'} (set BENCH_DATA_DIR)")
    splits = omniglot.load_omniglot(root)
    assert len(splits.train) + len(splits.valid) == 24_345  # 1,623 characters x drawers 0-14
    assert len(splits.valid) == omniglot.DEFAULT_VALID
    assert len(splits.test) == 8_115  # drawers 15-19; Burda's chardata.mat has 8,070
    assert splits.info.shape == (1, 28, 28)
    ink = splits.train.x.mean().item()
    assert 0.02 < ink < 0.3  # strokes are 1 and a minority of pixels
