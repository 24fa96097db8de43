"""Sample and reconstruction grids for PixelCNN runs, written into the run folder.

Sampling an autoregressive decoder takes one decoder pass per pixel (784 for MNIST), so the
grids are small: draws from the prior, and test images each above a draw from
``p(x | z = posterior mean)``; fewer on a CPU, where the pixel loop costs seconds per run.
Test images are reloaded through the dataset's loader (the hook does not receive the
runner's copy) from :func:`bench.data.data_dir`, i.e. ``BENCH_DATA_DIR``; when that fails only
the sample grid is written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from bench import plugins
from bench.data import SUBSET_SEED, data_dir
from bench.errors import BenchError
from bench.specs import resolve_params
from bench.suites import Cell
from bench_pixelcnn.model import PixelCNNVAE

GRID_SIZES = {"cuda": (64, 32), "cpu": (16, 8)}  # (prior samples, reconstructions)
ROW = 8
SAMPLES_FILE = "samples.png"
RECON_FILE = "reconstructions.png"


# (dataset, params, data dir) -> test images drawn at random, so a suite loads each data set once.
_TEST_IMAGES: dict[tuple[str, str, str], Tensor | None] = {}


def _test_images(cell: Cell, n: int, device: torch.device) -> Tensor | None:
    """``n`` (fixed-binarized) test images of the cell's data set, or None: a seeded random
    draw, the same for every run, in random order (data sets stored by class would show one
    class in their first images; a shorter grid is a random draw too)."""
    key = (cell.dataset, json.dumps(cell.dataset_params, sort_keys=True), str(data_dir()))
    if key not in _TEST_IMAGES:
        spec = plugins.registries().datasets.get(cell.dataset)
        params = resolve_params(spec.params, cell.dataset_params, f"dataset {cell.dataset!r}")
        try:
            data = spec.load(data_dir(), **params)
            order = torch.Generator().manual_seed(SUBSET_SEED)
            _TEST_IMAGES[key] = next(iter(data.test.batches(n, True, order)))[0].cpu()
        except BenchError:
            _TEST_IMAGES[key] = None  # found through a --data-dir flag this hook cannot see
    x = _TEST_IMAGES[key]
    return None if x is None else x[:n].to(device)


def interleave_rows(originals: Tensor, recons: Tensor, row: int) -> Tensor:
    """Rows of ``row`` originals, each followed by the row of their reconstructions."""
    parts = []
    for start in range(0, len(originals), row):
        parts += [originals[start : start + row], recons[start : start + row]]
    return torch.cat(parts)


@torch.no_grad()
def save_grids(cell: Cell, record: dict[str, Any], model: PixelCNNVAE, run_dir: Path) -> list[Path]:
    from torchvision.utils import make_grid, save_image

    model.eval()
    device = next(model.parameters()).device
    n_samples, n_recon = GRID_SIZES.get(device.type, GRID_SIZES["cpu"])
    g = torch.Generator(device=device).manual_seed(cell.seed)
    z = [model.sample_prior(n_samples, generator=g)]
    x = _test_images(cell, n_recon, device)
    if x is not None:
        mu, _ = model.encode(x)
        z.append(mu)
    # One pixel loop for prior samples and reconstructions together.
    drawn = model.sample(torch.cat(z), generator=g).float().cpu()
    written = []
    path = run_dir / SAMPLES_FILE
    save_image(make_grid(drawn[:n_samples], nrow=ROW, pad_value=0.5), path)
    written.append(path)
    if x is not None:
        recon = drawn[n_samples:]
        grid = interleave_rows(x.float().cpu(), recon, ROW)
        path = run_dir / RECON_FILE
        save_image(make_grid(grid, nrow=ROW, pad_value=0.5), path)
        written.append(path)
    return written
