"""Plugins for tests: packages that look installed (a dist-info with a ``bench`` entry point,
as pip leaves it, without a network or a build), the faulty plugin, and a hook that "kills"
a run."""

from __future__ import annotations

import textwrap
from pathlib import Path

from bench import hookimpl


def fake_distribution(
    site: Path, dist: str, entry_points: dict[str, str], version: str = "0.1.0"
) -> None:
    """A minimal installed distribution on ``site`` so importlib.metadata sees its ``bench``
    entry points (plugin name -> module)."""
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = "\n".join(f"{k} = {v}" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[bench]\n{lines}\n")


def install(site: Path, name: str, source: str) -> None:
    """A real distribution on ``site``: module ``name`` and its dist-info (version 0.1) with a
    ``bench`` entry point of the same name."""
    site.mkdir(parents=True, exist_ok=True)
    (site / f"{name}.py").write_text(textwrap.dedent(source))
    fake_distribution(site, name, {name: name}, version="0.1")


# A model with the contract's shapes, and faults switched on by BENCH_FAULT (comma-separated):
# model-raises (in training only), metric-raises, bad-shape ([K*B] instead of [K, B]), hold
# (after its second epoch, a run waits until it is killed or interrupted, so that it is
# still going when the test acts on it, however loaded the machine).
FAULTY_PLUGIN = """
import os, time
import torch
from torch import nn
from bench import LatentVariableModel, MetricSpec, MetricValue, ModelSpec, hookimpl

def faults():
    return set(os.environ.get("BENCH_FAULT", "").split(","))

class TinyVAE(LatentVariableModel):
    def __init__(self, features):
        super().__init__()
        self.latent_dim = 2
        self.enc = nn.Linear(features, 4)
        self.dec = nn.Linear(2, features)

    def encode(self, x):
        return self.enc(x.flatten(1)).chunk(2, dim=-1)

    def log_likelihood(self, x, z):
        if "model-raises" in faults() and self.training:
            raise RuntimeError("decoder exploded")
        logits = self.dec(z)
        target = x.flatten(1).expand_as(logits)
        out = -nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
        out = out.sum(-1)
        return out.reshape(-1) if "bad-shape" in faults() else out

@hookimpl
def register_models(register):
    register(ModelSpec("tiny-vae", lambda info: TinyVAE(64), "a test model"))

@hookimpl
def register_metrics(register):
    def compute(ctx):
        if "metric-raises" in faults():
            raise ZeroDivisionError("metric divided by zero")
        return MetricValue(1.0)
    register(MetricSpec("faulty-metric", compute, "min"))

@hookimpl
def on_epoch_end(cell, epoch, metrics):
    while "hold" in faults() and epoch >= 1:
        time.sleep(0.1)
"""


class Kill:
    """Simulates the process dying after a given epoch of a given model."""

    def __init__(self, model: str, epoch: int) -> None:
        self.model, self.epoch = model, epoch

    @hookimpl
    def on_epoch_end(self, cell, epoch, metrics):
        if cell.model == self.model and epoch == self.epoch:
            raise KeyboardInterrupt
