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

pytestmark = pytest.mark.usefixtures("one_thread")


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


# ---- issue 16: the CUDA-window throughput run ----------------------------------------------


def test_text_is_timed_on_median_length_sentences(fresh_plugins):
    from bench.throughput.workloads import fixed_batch

    data = plugins.registries().datasets.get("text-synthetic").load(None)
    lengths = sorted(data.train.lengths.tolist())
    x = fixed_batch(data.train, 16)
    median = statistics.median(x.lengths.tolist())
    assert lengths[len(lengths) // 4] <= median <= lengths[3 * len(lengths) // 4]
    assert median > lengths[16]  # not the shortest sentences, as a first batch would be


def test_measure_takes_fewer_windows_rather_than_overrun_a_deadline():
    import time

    from bench.throughput.measure import measure

    calls = []
    report = measure(
        lambda: calls.append(1), 4, torch.device("cpu"), 3, 0.5, 3, time.perf_counter()
    )
    # Past the deadline: one warm-up, one timed call, and that call is the only window.
    assert len(calls) == 2 and report["windows"] == 1 and report["examples_per_s"] > 0


@pytest.mark.slow
def test_budget_leaves_out_what_does_not_fit(fresh_plugins, workdir, monkeypatch):
    from bench.throughput.budget import TimeBudget

    budget = TimeBudget(seconds=100.0)
    assert budget.allows("cheap", 10.0)
    assert not budget.allows("--jobs 4 vs --jobs 1", 500.0)
    assert budget.left_out[0]["part"] == "--jobs 4 vs --jobs 1"
    budget.learn_call("m", "train", 50, 0.2)
    assert budget.call_estimate("m", "train", 100) == pytest.approx(0.4)
    assert budget.call_estimate("other", "train", 100) is None

    # The command's clock starts with its process; here that is pytest's, minutes old.
    monkeypatch.setattr("bench.throughput.command.process_age", lambda: 0.0)
    out = workdir / "tp.json"
    main(["throughput", *TINY, "--parts", "train,jobs", "--jobs", "2", "--budget-s", "200",
          "--out", str(out)])  # fmt: skip
    report = json.loads(out.read_text())
    assert report["settings"]["budget_s"] == 200
    assert [p["part"] for p in report["budget"]["left_out"]] == ["--jobs 2 vs --jobs 1"]
    rows = report["models"][0]["results"]
    assert [(r["mode"], r["config"]) for r in rows] == [("train", "fp32"), ("train", "bf16")]


def test_missing_data_is_an_error_unless_synthetic_data_is_asked_for(
    fresh_plugins, workdir, capsys, monkeypatch
):
    monkeypatch.setenv("BENCH_OFFLINE", "1")
    args = [*TINY[:2], "--scale", "quick", "--models", "mlp-vae", "--parts", "train"]
    args += [*TINY[6:12], "--data-dir", str(workdir / "empty"), "--out", str(workdir / "t.json")]
    with pytest.raises(SystemExit) as exc:
        main(["throughput", *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "--synthetic-data" in err and len(err.splitlines()) == 1
    main(["throughput", *args, "--synthetic-data"])
    (model,) = json.loads((workdir / "t.json").read_text())["models"]
    assert model["dataset"] != "mnist" and model["results"]


def test_gpu_check_preset_fills_what_the_command_line_leaves(fresh_plugins):
    from bench.throughput.command import settings_from_options
    from bench.throughput.workloads import Workload, train_batch_sizes

    defaults = {p.name: p.default for p in main_command_params()}
    o = {**defaults, "preset": "gpu-check", "device": "cpu", "models": "mlp-vae"}
    s = settings_from_options(o, log=lambda m: None, given={"preset", "device", "models"})
    assert o["models"] == "mlp-vae" and o["scale"] == "paper" and o["budget_s"] == 300
    assert s.configs == [(False, False)]  # on the CPU: no bf16 LSTMs, no inductor
    assert s.train_batches == ("workload", "large") and s.jobs == 4 and not s.iw_compile
    w = Workload("m", "image", ["d"], {}, {}, 50, 100, 500, None, 1e-3, "test")
    assert train_batch_sizes(w, s) == [50, 256]


def main_command_params():
    from bench.throughput.command import throughput_cmd

    return throughput_cmd.params


@pytest.mark.slow
def test_compiled_rows_each_compile_afresh(fresh_plugins, workdir, monkeypatch):
    """Rows of two models, autocast off and on, compiled in one process, with the limit at
    one cache entry: a cache shared across rows would fall back to eager."""
    import logging

    import torch._dynamo

    from bench.runner import compiled as compiled_mod
    from bench.throughput.measure import train_row
    from bench.throughput.workloads import Settings

    monkeypatch.setattr(torch._dynamo.config, "recompile_limit", 1)
    monkeypatch.setattr(compiled_mod, "RECOMPILE_LIMIT", 1)
    hits = []

    class Hits(logging.Handler):
        def emit(self, record):
            if "recompile_limit" in record.getMessage():
                hits.append(record.getMessage())

    logger = logging.getLogger("torch._dynamo.convert_frame")
    handler = Hits()
    logger.addHandler(handler)
    s = Settings(device=torch.device("cpu"), configs=[], compile_mode="eager", warmup=1,
                 min_time=0.01, repeats=1)  # fmt: skip
    opts = RunOptions(results_dir=workdir, device=torch.device("cpu"))
    try:
        workloads, _ = find_workloads("smoke", ["mlp-vae", "mlp-skip-vae"])
        rows = []
        for w in workloads:
            w, data = load_workload(replace(w, model_params={"hidden": 16, "latent_dim": 4}), opts)
            rows += [train_row(w, data, s, amp, True, 16) for amp in (False, True)]
    finally:
        logger.removeHandler(handler)
    assert hits == []
    assert [r["config"] for r in rows] == ["fp32+compile", "bf16+compile"] * 2
