"""Runner: records, per-epoch logs, resume after a kill, NaN runs, determinism."""

from __future__ import annotations

import json

import pytest
import torch
from torch import Tensor

from bench import (
    Budget,
    EvalSettings,
    Group,
    LatentVariableModel,
    ModelSpec,
    hookimpl,
    plugins,
)
from bench.runner import run_suite
from bench.suites import load_suite_file
from tests.helpers.plugins import Kill
from tests.helpers.suites import cpu_options, one_group_suite, suite_toml

TOML = suite_toml(
    "r",
    models=["mlp-vae", "mlp-skip-vae"],
    objectives=["kl-anneal"],
    model_params={"mlp-vae": {"hidden": 32}, "mlp-skip-vae": {"hidden": 32}},
    objective_params={"kl-anneal": {"epochs": 2.0}},
    budget={"epochs": 3},
    eval={"iw_samples": 10},
)


@pytest.fixture
def suite(workdir):
    path = workdir / "r.toml"
    path.write_text(TOML)
    return load_suite_file(path)


def test_record_and_epoch_log(fresh_plugins, workdir, suite):
    scale, records = run_suite(suite, None, cpu_options(workdir))
    assert scale == "custom" and len(records) == 2
    run_dir = workdir / "results/r/custom/g__digits__mlp-skip-vae__kl-anneal__s0"
    record = json.loads((run_dir / "record.json").read_text())
    assert record["schema_version"] == 2 and record["status"] == "finished"
    assert record["cell"]["model"] == "mlp-skip-vae" and record["cell"]["seed"] == 0
    for key in (
        "device",
        "device_name",
        "machine",
        "packages",
        "git_commit",
        "wall_time_s",
        "train_examples_per_s",
        "started_at",
        "finished_at",
    ):
        assert key in record
    assert (
        record["packages"]["torch"] == torch.__version__.split("+")[0]
        or record["packages"]["torch"]
    )
    metrics = record["metrics"]
    assert metrics["nll"]["settings"]["iw_samples"] == 10
    assert (
        metrics["mi"]["settings"]["n"] == 300
        and metrics["mi"]["value"] <= metrics["mi"]["settings"]["log_n"] + 1e-6
    )
    assert metrics["au"]["settings"]["threshold"] == 0.01
    assert metrics["mi"]["direction"] == "max" and metrics["nll"]["direction"] == "min"
    assert len(metrics["kl_per_dim"]["value"]) == 20
    assert metrics["nll"]["value"] <= metrics["neg_elbo"]["value"] + 1.0  # IW bound is tighter
    lines = [json.loads(x) for x in (run_dir / "epochs.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in lines] == [1, 2, 3]  # numbered from 1
    assert {"val_kl", "val_mi", "val_au", "val_neg_elbo", "beta", "train_loss"} <= set(lines[0])
    assert lines[0]["beta"] < 1.0 and lines[-1]["beta"] == 1.0  # the warm-up is logged


def test_same_seed_same_metrics(fresh_plugins, workdir, suite):
    _, first = run_suite(suite, None, cpu_options(workdir))
    _, second = run_suite(suite, None, cpu_options(workdir), overwrite=True)
    for a, b in zip(first, second, strict=True):
        assert a["metrics"]["nll"]["value"] == b["metrics"]["nll"]["value"]
        assert a["metrics"]["mi"]["value"] == b["metrics"]["mi"]["value"]


def test_resume_after_kill(fresh_plugins, workdir, suite):
    _, reference = run_suite(suite, None, cpu_options(workdir / "ref"))
    plugins.register_plugin(Kill("mlp-skip-vae", 1), "kill")
    with pytest.raises(KeyboardInterrupt):
        run_suite(suite, None, cpu_options(workdir))
    plugins.unregister_plugin("kill")
    base = workdir / "results/r/custom"
    finished = base / "g__digits__mlp-vae__kl-anneal__s0/record.json"
    killed = base / "g__digits__mlp-skip-vae__kl-anneal__s0"
    assert finished.exists() and not (killed / "record.json").exists()
    stamp = finished.stat().st_mtime_ns
    _, records = run_suite(suite, None, cpu_options(workdir, resume=True))
    assert finished.stat().st_mtime_ns == stamp  # not redone
    epochs = [json.loads(x)["epoch"] for x in (killed / "epochs.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3]
    # Resuming from the checkpoint reproduces the uninterrupted run.
    assert records[1]["metrics"]["nll"]["value"] == pytest.approx(
        reference[1]["metrics"]["nll"]["value"], abs=1e-4
    )


class NaNModel(LatentVariableModel):
    def __init__(self) -> None:
        super().__init__()
        self.latent_dim = 2
        self.w = torch.nn.Parameter(torch.zeros(1))

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        b = x.shape[0]
        return self.w.expand(b, 2) * 0, self.w.expand(b, 2) * 0

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        # NaN once training starts: a finite model at first (the contract check before
        # training refuses a model that is NaN from the start).
        return (z.sum(-1) + self.w) * (float("nan") if self.training else 1.0)


def test_nan_run_fails_and_suite_goes_on(fresh_plugins, workdir):
    class Plugin:
        @hookimpl
        def register_models(self, register):
            register(ModelSpec("nan-model", build=lambda info: NaNModel()))

    plugins.register_plugin(Plugin(), "nan")
    group = Group(
        "g",
        ("digits",),
        ("nan-model", "mlp-vae"),
        ("elbo",),
        model_params={"mlp-vae": {"hidden": 16}},
        budget=Budget(epochs=1),
        eval=EvalSettings(iw_samples=5),
    )
    suite = one_group_suite("nan", group)
    _, records = run_suite(suite, None, cpu_options(workdir))
    assert records[0]["status"] == "failed"
    assert "diverged" in records[0]["reason"] and "nan" in records[0]["reason"]
    assert records[0]["metrics"] == {}
    assert records[1]["status"] == "finished"
    from bench import leaderboard as lb

    board = lb.build(lb.load_records(workdir / "results", "nan", "s"), "nan", "s")
    assert board.table.height == 1 and board.failed[0]["status"] == "failed"
