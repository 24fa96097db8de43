"""Results folders, checkpoints and suite files are untrusted (docs/faults.md, "Security"):
a crafted checkpoint runs no code, names and paths stay inside their folders, no run
overwrites another, every value is checked however it is given, and no secret is written.

Each test is one finding of the attacks tried on `bench`; the ones that need a signal, a full
disk or a second process are in tests/test_signals.py.
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers.cli import run_cli
from tests.helpers.suites import FEW_DIGITS, suite_toml

REPO = Path(__file__).resolve().parents[1]
RUN = "g__digits__mlp-vae__elbo__s0"


def tiny_suite(name: str = "t", **keys) -> str:
    """One cell: a small MLP, one epoch on a few hundred digits."""
    budget = {"epochs": 1, "batch_size": 100, **FEW_DIGITS, **keys.pop("budget", {})}
    return suite_toml(
        name,
        **{
            "seeds": [0],
            "metrics": ["neg_elbo"],
            "model_params": {"mlp-vae": {"hidden": 8, "latent_dim": 2}},
            **keys,
        },
        budget=budget,
        eval={"iw_samples": 2, "batch_size": 100},
    )


# ---- 1. checkpoints ------------------------------------------------------------------------


class _Attack:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _attacker_checkpoint(path: Path, marker: Path) -> None:
    torch.save(
        {"model": {}, "optimizer": {}, "state": {"epoch": 0}, "rng": {}, "x": _Attack(marker)},
        path,
    )


def test_the_attack_file_does_run_code_when_loaded_unsafely(tmp_path):
    """The payload is live: an unsafe load (what `bench` did) creates the marker."""
    marker = tmp_path / "pwned"
    _attacker_checkpoint(tmp_path / "evil.pt", marker)
    code = f"import torch; torch.load({str(tmp_path / 'evil.pt')!r}, weights_only=False)"
    subprocess.run([sys.executable, "-c", code], check=True)
    assert marker.exists()


@pytest.mark.slow
def test_a_crafted_checkpoint_runs_no_code_and_is_set_aside(capsys, fresh_plugins, workdir):
    (workdir / "t.toml").write_text(tiny_suite())
    code, _, err = run_cli(capsys, "run", "--suite", "t.toml", "--quiet")
    assert code == 0, err
    run_dir = workdir / "results/t/custom" / RUN
    (run_dir / "record.json").unlink()  # as if killed: --resume loads the checkpoint
    marker = workdir / "pwned"
    _attacker_checkpoint(run_dir / "checkpoint.pt", marker)

    code, out, err = run_cli(capsys, "run", "--suite", "t.toml", "--quiet", "--resume")
    assert code == 0, err
    assert not marker.exists()
    assert (run_dir / "checkpoint.pt.corrupt").exists()
    assert "checkpoint.pt does not load (UnpicklingError: it holds objects other than" in err
    assert "from scratch" in err


def test_rng_states_survive_a_weights_only_round_trip(tmp_path):
    from bench.runner import cell as build

    torch.manual_seed(3), np.random.seed(3), random.seed(3)
    state = build.rng_state()
    expected = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)])
    torch.save({"rng": state}, tmp_path / "r.pt")
    loaded = torch.load(tmp_path / "r.pt", weights_only=True)["rng"]
    build.set_rng_state(loaded)
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1])
    assert [random.random() for _ in range(3)] == expected[2]


def test_nothing_in_the_tree_unpickles_without_weights_only():
    """Every torch.load names weights_only=True; nothing but the tests calls pickle.load."""
    for path in [*REPO.glob("bench/**/*.py"), *REPO.glob("plugins/**/*.py")]:
        text = path.read_text(encoding="utf-8")
        assert "weights_only=False" not in text, path
        assert not re.search(r"\bpickle\.loads?\(", text), path
        for call in re.findall(r"torch\.load\([^)]*\)", text):
            assert "weights_only=True" in call, (path, call)
