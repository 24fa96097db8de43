"""Tiny data sets of each kind, and the pytest fixtures that hand them to tests.

They need no files and load in milliseconds, so a plugin's tests can train and evaluate for
real. ``tiny_image_data`` is built here; ``tiny_text_data`` comes from the registered
``text-synthetic`` data set, so it has exactly the batches a text model meets in a run.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from bench.data import DataInfo, DataSplits


def tiny_image_data(n: int = 240, size: int = 8, seed: int = 0) -> DataSplits:
    """Binary ``[1, size, size]`` images of one horizontal or vertical bar (labels: the bar's
    orientation and position, ``2 * size`` classes), grey levels blurred so that dynamic
    binarization has something to resample. Split 60/20/20 with a seeded permutation.
    """
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2 * size, (n,), generator=g)
    x = torch.full((n, 1, size, size), 0.05)
    pos = labels % size
    vertical = labels >= size
    rows = torch.arange(n)
    x[rows[~vertical], 0, pos[~vertical], :] = 0.95
    x[rows[vertical], 0, :, pos[vertical]] = 0.95
    return DataSplits.from_tensors(
        DataInfo("image", (1, size, size)),
        x,
        labels,
        n_valid=n // 5,
        n_test=n // 5,
        seed=seed,
        dynamic_binarization=True,
        num_classes=2 * size,
        notes="bench.testing tiny bars",
    )


def tiny_text_data(train: int = 64, valid: int = 16, test: int = 16, seed: int = 0) -> DataSplits:
    """The registered ``text-synthetic`` corpus at a small size (token batches as text models
    see them in runs). Skips the test if the first-party text plugin is disabled."""
    from bench import plugins

    regs = plugins.registries()
    if "text-synthetic" not in regs.datasets:
        pytest.skip("the text-synthetic data set is not registered (text plugin disabled?)")
    spec = regs.datasets.get("text-synthetic")
    return spec.load(None, train=train, valid=valid, test=test, seed=seed)


def first_batch(data: DataSplits, batch_size: int = 8) -> Any:
    """The first (unshuffled) training batch's ``x``."""
    x, _ = next(iter(data.train.batches(batch_size)))
    return x


@pytest.fixture
def bench_image_data() -> DataSplits:
    """:func:`tiny_image_data`: labelled binary images ``[1, 8, 8]``, 144 / 48 / 48."""
    return tiny_image_data()


@pytest.fixture
def bench_text_data() -> DataSplits:
    """:func:`tiny_text_data`: the synthetic topic corpus, 64 / 16 / 16 sentences."""
    return tiny_text_data()


@pytest.fixture
def bench_image_batch(bench_image_data: DataSplits) -> Any:
    """One training batch of 8 images ``[8, 1, 8, 8]`` from ``bench_image_data``."""
    return first_batch(bench_image_data)


@pytest.fixture
def bench_text_batch(bench_text_data: DataSplits) -> Any:
    """One training batch of 8 sentences (a token batch) from ``bench_text_data``."""
    return first_batch(bench_text_data)


@pytest.fixture
def bench_registries():
    """Every registered item, loaded afresh (installed plugins included), and forgotten after
    the test so that plugins a test registers do not leak into the next."""
    from bench import plugins

    plugins.reset()
    yield plugins.registries()
    plugins.reset()
