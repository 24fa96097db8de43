"""`bench throughput` and its measuring functions: functional checks only (never timed)."""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from bench import ModelSpec, hookimpl, plugins
from bench.cli import main
from bench.runner import RunOptions
from bench.throughput.reference import ops_per_step
from bench.throughput.workloads import find_workloads, load_workload


@pytest.fixture(autouse=True)
def one_thread():
    """Two cores shared by several jobs: torch's spinning thread pool only slows things down."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


TINY = [
    *("--device", "cpu", "--scale", "smoke", "--models", "mlp-skip-vae"),
    *("--warmup", "1", "--min-time", "0.01", "--repeats", "1"),
    *("--train-batch", "16", "--eval-batch", "16"),
    *("--iw-samples", "20", "--iw-examples", "8", "--iw-ref-examples", "3", "--iw-budget", "60"),
    *("--overhead-epochs", "1", "--overhead-examples", "100", "--overhead-repeats", "2"),
    *("--jobs", "1"),
]


def test_command_writes_json_with_ratios(fresh_plugins, workdir, capsys):
    out = workdir / "tp.json"
    main(["throughput", *TINY, "--out", str(out)])
    report = json.loads(out.read_text())
    printed = capsys.readouterr().out

    assert report["machine"]["device"] == "cpu" and "cpu" in report["machine"]
    assert report["settings"]["configs"] == ["fp32", "bf16"]  # compile is off on the CPU
    (model,) = report["models"]
    assert model["model"] == "mlp-skip-vae" and model["dataset"] == "digits"
    rows = {(r["mode"], r["config"]): r for r in model["results"]}
    assert set(rows) == {(m, c) for m in ("train", "eval") for c in ("fp32", "bf16")}
    for r in rows.values():
        assert r["examples_per_s"] > 0 and math.isfinite(r["examples_per_s"])
        assert r["batch_size"] == 16 and r["flops_per_example"] > 0
    pipe = model["data_pipeline"]
    assert pipe["headroom_vs_training"] == pytest.approx(
        pipe["examples_per_s"] / rows[("train", "fp32")]["examples_per_s"]
    )

    (iw,) = report["iw_nll"]
    assert iw["iw_samples"] == 20 and iw["reference_examples"] == 3
    assert iw["batched_examples"] == 8 and len(iw["configs"]) == 2
    ref_time = iw["reference_examples"] / iw["reference_examples_per_s"]
    fp32 = iw["configs"][0]
    assert fp32["speedup_vs_reference"] == pytest.approx(
        fp32["examples_per_s"] * ref_time / iw["reference_examples"]
    )
    # Same estimator both ways: the two means agree to Monte Carlo error (K = 20).
    assert fp32["batched_mean_log_likelihood"] == pytest.approx(
        iw["reference_mean_log_likelihood"], abs=5.0
    )

    h = report["harness_overhead"]
    assert len(h["runner_examples_per_s"]) == len(h["plain_examples_per_s"]) == 2
    pairs = [
        r / p for r, p in zip(h["runner_examples_per_s"], h["plain_examples_per_s"], strict=True)
    ]
    assert h["pair_ratios"] == pytest.approx(pairs)
    assert h["median_pair_ratio"] == pytest.approx(statistics.median(pairs))
    assert h["ratio"] == pytest.approx(
        max(h["runner_examples_per_s"]) / max(h["plain_examples_per_s"])
    )
    assert h["ratio_of_medians"] == pytest.approx(
        statistics.median(h["runner_examples_per_s"]) / statistics.median(h["plain_examples_per_s"])
    )
    assert h["cpu_time_ratio"] > 0 and math.isfinite(h["cpu_time_ratio"])
    assert h["meets_target"] == (h["ratio"] >= 0.97)
    assert "runner / plain loop" in printed and "IW-NLL K=20" in printed


def test_runner_adds_no_work_per_step(fresh_plugins, workdir):
    """Counted ops, not time: the runner's training step dispatches no more (non-view) aten
    ops than a hand-written loop of the same model; the extra ops are free views (detach)."""
    workloads, _ = find_workloads("smoke", ["mlp-skip-vae"])
    opts = RunOptions(results_dir=workdir, device=torch.device("cpu"))
    w, data = load_workload(workloads[0], opts)
    cell = replace(w, model_params={"hidden": 16, "latent_dim": 4}).cell("elbo")
    ops = ops_per_step(cell, data, opts, Path(workdir))
    assert ops["runner"]["non_view_ops"] <= ops["plain"]["non_view_ops"]
    assert ops["runner"]["ops"] - ops["plain"]["ops"] <= 4
    assert ops["plain"]["non_view_ops"] > 50  # forward + backward + Adam really were counted


def test_new_models_are_picked_up(fresh_plugins):
    class Plugin:
        @hookimpl
        def register_models(self, register):
            register(ModelSpec("late-model", build=lambda info: None, kinds=("image",)))

    plugins.register_plugin(Plugin(), "late")
    workloads, skipped = find_workloads("smoke")
    by_model = {w.model: w for w in workloads}
    assert "late-model" in by_model and by_model["late-model"].source.startswith("model defaults")
    assert by_model["late-model"].kind == "image"
    assert by_model["mlp-vae"].source == "collapse/smoke group mlp"
    assert skipped == []


def test_bad_parts_is_a_user_error(fresh_plugins, workdir, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["throughput", "--device", "cpu", "--parts", "train,speed", "--out", "x.json"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "speed" in err and len(err.splitlines()) == 1
    assert not (workdir / "x.json").exists()
