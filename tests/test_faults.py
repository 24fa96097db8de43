"""Fault injection: what `bench` does when things go wrong, tried with real processes.

Concurrent runs on one results folder, `kill -9` and a stale lock, damaged records,
checkpoints and epoch logs, truncated data, a plugin (a real installed distribution, found
through its entry point) whose model or metric raises or breaks the contract, plugins that
fail to load, Ctrl-C, and `--jobs 2` workers when their parent is killed. Bad values and
folders are checked in-process (the CLI's exit codes without a process each).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from bench import plugins
from tests.helpers.cli import one_line, run_cli
from tests.helpers.data import real_data_dir
from tests.helpers.plugins import FAULTY_PLUGIN, install
from tests.helpers.processes import TIMEOUT_S, wait_for
from tests.helpers.suites import FEW_DIGITS, suite_toml

REPO = Path(__file__).resolve().parents[1]
DATA = real_data_dir()  # read once: other tests may point BENCH_DATA_DIR elsewhere


def faulty_suite(
    name: str,
    epochs: int = 2,
    budget: Mapping[str, Any] = MappingProxyType({}),
    eval: Mapping[str, Any] = MappingProxyType({}),
    **keys: Any,
) -> str:
    """A one-group suite of the faulty plugin's tiny model (unless ``models`` says otherwise)
    on a few hundred digits; ``budget`` and ``eval`` add to its tables, ``keys`` are group
    keys."""
    return suite_toml(
        name,
        **{"models": ["tiny-vae"], "seeds": [0], "metrics": ["neg_elbo"], **keys},
        budget={"epochs": epochs, "batch_size": 100, **FEW_DIGITS, **budget},
        eval={"iw_samples": 2, "batch_size": 100, **eval},
    )


@pytest.fixture
def env(workdir, fresh_plugins, monkeypatch):
    """Environment of a `bench` process: the faulty plugin installed, caches in tmp. The
    plugin is on this process's path too, for the steps that run in-process (`in_process`)."""
    site = workdir / "site"
    install(site, "bench_faulty", FAULTY_PLUGIN)
    monkeypatch.syspath_prepend(str(site))
    out = dict(os.environ)
    out["PYTHONPATH"] = os.pathsep.join([str(site), str(REPO), out.get("PYTHONPATH", "")])
    out["BENCH_CACHE_DIR"] = str(workdir / "cache")
    out.pop("BENCH_FAULT", None)
    return out


def in_process(capsys, monkeypatch, *args: str, fault: str = "") -> tuple[int, str, str]:
    """``bench args`` in this process (cheaper than a process where one is not the point)."""
    monkeypatch.setenv("BENCH_FAULT", fault)
    plugins.reset()
    return run_cli(capsys, *args)


def _default_sigint() -> None:
    # A process started in the background of a script inherits SIGINT ignored, and Python
    # then never turns it into KeyboardInterrupt: give `bench` a terminal's default.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def bench(*args: str, env: dict, fault: str = "", **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "bench.cli", *args],
        env={**env, "BENCH_FAULT": fault},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,
        **kw,
    )


def finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=TIMEOUT_S)
    return proc.returncode, out, err


def epochs_of(run_dir: Path) -> list[int]:
    lines = (run_dir / "epochs.jsonl").read_text().splitlines()
    return [json.loads(line)["epoch"] for line in lines]


def held_run(workdir: Path, env: dict, name: str) -> tuple[subprocess.Popen, Path]:
    """A one-cell `bench run` that has written a checkpoint and then waits to be killed."""
    (workdir / f"{name}.toml").write_text(faulty_suite(name, epochs=4))
    proc = bench("run", "--suite", f"{name}.toml", "--quiet", env=env, fault="hold")
    run_dir = workdir / f"results/{name}/custom/g__digits__tiny-vae__elbo__s0"
    wait_for(lambda: (run_dir / "checkpoint.pt").exists(), "a checkpoint", proc)
    return proc, run_dir


# ---- concurrent runs, kill -9, the stale lock --------------------------------------------


@pytest.mark.slow
def test_two_runs_at_once_one_exits_2_and_a_killed_holders_lock_is_taken_over(
    workdir, env, capsys, monkeypatch
):
    (workdir / "s.toml").write_text(faulty_suite("s", epochs=4))
    args = ("run", "--suite", "s.toml", "--resume", "--quiet")
    both = [bench(*args, env=env, fault="hold") for _ in range(2)]  # a fresh folder, as in CI
    wait_for(lambda: any(p.poll() is not None for p in both), "one of the two to stop")
    loser = next(p for p in both if p.poll() is not None)
    holder = next(p for p in both if p is not loser)
    code, _, err = finish(loser)
    line = one_line(err)
    assert code == 2
    assert f"pid {holder.pid} on " in line and "results/s/custom is in use" in line

    run_dir = workdir / "results/s/custom/g__digits__tiny-vae__elbo__s0"
    wait_for(lambda: (run_dir / "checkpoint.pt").exists(), "a checkpoint", holder)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    code, out, err = in_process(capsys, monkeypatch, *args)
    assert code == 0, err
    assert epochs_of(run_dir) == [1, 2, 3, 4]  # each epoch once, though it was killed
    assert "1 runs (0 not finished)" in out


# ---- damaged files -------------------------------------------------------------------------


@pytest.mark.slow
def test_damaged_record_checkpoint_and_epoch_log_never_stop_the_suite(
    workdir, env, capsys, monkeypatch
):
    (workdir / "d.toml").write_text(faulty_suite("d", seeds=[0, 1], epochs=3))
    args = ("run", "--suite", "d.toml", "--quiet", "--keep-checkpoints")
    code, _, err = in_process(capsys, monkeypatch, *args)
    assert code == 0, err
    folder = workdir / "results/d/custom"
    one, two = folder / "g__digits__tiny-vae__elbo__s0", folder / "g__digits__tiny-vae__elbo__s1"
    (one / "record.json").write_text((one / "record.json").read_text()[:100])
    code, out, err = in_process(capsys, monkeypatch, "leaderboard", "--suite", "d.toml")
    assert code == 0, err
    assert "skipped" in err and str(Path("results/d/custom") / one.name / "record.json") in err

    (two / "record.json").unlink()  # killed after its last checkpoint, mid-way through a line
    (two / "checkpoint.pt").write_bytes(b"garbage")
    with (two / "epochs.jsonl").open("a") as fh:
        fh.write('{"epoch": 3, "st')

    code, out, err = finish(bench("run", "--suite", "d.toml", "--resume", "--quiet", env=env))
    assert code == 0, err
    assert (one / "record.json.corrupt").exists() and (two / "checkpoint.pt.corrupt").exists()
    assert "checkpoint.pt does not load" in err and "resuming from the previous one" in err
    for run_dir in (one, two):
        assert json.loads((run_dir / "record.json").read_text())["status"] == "finished"
        assert epochs_of(run_dir) == [1, 2, 3]
    assert "2 runs (0 not finished)" in out


# ---- bad data ------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(DATA is None, reason="needs the MNIST files")
def test_truncated_mnist_exits_2_naming_the_file(workdir, env):
    data = workdir / "data" / "mnist"
    shutil.copytree(DATA / "mnist", data)
    target = data / "train-images-idx3-ubyte.gz"
    target.write_bytes(target.read_bytes()[:100_000])
    (workdir / "m.toml").write_text(faulty_suite("m", datasets=["mnist"]))
    args = ("run", "--suite", "m.toml", "--data-dir", str(workdir / "data"))
    code, _, err = finish(bench(*args, env=env))
    assert code == 2
    assert str(target) in one_line(err) and "truncated" in err
    assert not list((workdir / "results/m/custom").glob("g__*"))  # nothing blocks a rerun
    assert not list(workdir.rglob("*.tmp"))


# ---- failing plugins -----------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_raising_plugin_fails_its_run_only(workdir, env, capsys, monkeypatch, jobs):
    (workdir / "p.toml").write_text(
        faulty_suite(
            "p",
            models=["tiny-vae", "mlp-vae"],
            epochs=1,
            metrics=["neg_elbo", "faulty-metric"],
            model_params={"mlp-vae": {"hidden": 8, "latent_dim": 2}},
        )
    )
    args = ("run", "--suite", "p.toml", "--quiet", "--jobs", jobs)
    fault = "model-raises,metric-raises"
    if jobs == "1":
        code, out, err = in_process(capsys, monkeypatch, *args, fault=fault)
    else:  # the workers load the plugin from its distribution
        code, out, err = finish(bench(*args, env=env, fault=fault))
    assert code == 1, err
    folder = workdir / "results/p/custom"
    failed = json.loads((folder / "g__digits__tiny-vae__elbo__s0/record.json").read_text())
    assert failed["status"] == "failed"
    assert failed["error"]["type"] == "RuntimeError"
    assert failed["error"]["message"] == "decoder exploded"
    assert failed["error"]["plugin"] == "bench_faulty"
    assert failed["error"]["distribution"] == "bench_faulty 0.1"
    log = (folder / "g__digits__tiny-vae__elbo__s0/error.log").read_text()
    assert "Traceback" in log and "decoder exploded" in log
    kept = json.loads((folder / "g__digits__mlp-vae__elbo__s0/record.json").read_text())
    assert kept["status"] == "finished"
    assert kept["metrics"]["faulty-metric"]["value"] is None
    assert kept["metrics"]["faulty-metric"]["error"]["type"] == "ZeroDivisionError"
    # The warning names the metric's plugin and distribution, as the record does.
    assert (
        "metric 'faulty-metric' of plugin 'bench_faulty' (bench_faulty 0.1) raised "
        "ZeroDivisionError"
    ) in err
    assert kept["metrics"]["neg_elbo"]["value"] is not None
    assert "runs that did not finish" in out
    row = next(line for line in out.splitlines() if "g__digits__tiny-vae__elbo__s0" in line)
    assert "failed" in row and "RuntimeError: decoder exploded" in row
    assert "exit code 1" in out


# ---- interrupts ----------------------------------------------------------------------------


@pytest.mark.slow
def test_ctrl_c_says_how_to_continue_and_exits_130(workdir, env):
    proc, _ = held_run(workdir, env, "c")
    proc.send_signal(signal.SIGINT)
    code, _, err = finish(proc)
    assert code == 130
    assert err.strip().splitlines()[-1] == (
        "interrupted: bench run --suite c.toml --quiet --resume continues"
    )


def _marked(mark: str) -> list[int]:
    """Processes whose environment holds ``mark`` (the run and everything it started)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if mark.encode() in (entry / "environ").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds processes through /proc")
def test_jobs_workers_die_with_their_parent(workdir, env):
    (workdir / "j.toml").write_text(faulty_suite("j", seeds=[0, 1], epochs=4))
    mark = f"BENCH_TEST_MARK={uuid.uuid4().hex}"
    key, value = mark.split("=")
    args = ("run", "--suite", "j.toml", "--quiet", "--jobs", "2")
    proc = bench(*args, env={**env, key: value}, fault="hold")
    folder = workdir / "results/j/custom"
    try:
        wait_for(lambda: len(list(folder.glob("*/epochs.jsonl"))) == 2, "both workers", proc)
        assert len(_marked(mark)) > 2  # the run, its workers (and the fork server)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        wait_for(lambda: not _marked(mark), "the workers to exit")
    finally:
        for pid in _marked(mark):
            os.kill(pid, signal.SIGKILL)


# ---- in-process: bad values, folders, plugins that fail to load ---------------------------


BAD_VALUES = [
    ({"model_params": {"mlp-vae": {"latent_dim": 0}}}, "latent_dim: must be >= 1, got 0"),
    ({"model_params": {"mlp-vae": {"latent_dim": "eight"}}}, "expected int, got 'eight'"),
    ({"model_params": {"mlp-vae": {"latent_dim": 8.5}}}, "expected int, got 8.5"),
    ({"objective_params": {"kl-anneal": {"beta0": 0.5}}}, "'kl-anneal' is not in"),
    ({"budget": {"lr": -1}}, "budget.lr: must be > 0 (a number), got -1"),
    ({"eval": {"iw_samples": 0}}, "eval.iw_samples: must be >= 1 (an integer), got 0"),
]


def test_every_budget_and_eval_field_has_a_rule():
    from bench.suites import BUDGET_RULES, EVAL_RULES, Budget, EvalSettings

    for cls, rules in ((Budget, BUDGET_RULES), (EvalSettings, EVAL_RULES)):
        fields = {f.name for f in dataclasses.fields(cls)}
        assert fields == set(rules), (cls.__name__, fields ^ set(rules))
        defaults = cls()
        for name, (text, ok) in rules.items():
            assert ok(getattr(defaults, name)), (cls.__name__, name, text)


@pytest.mark.parametrize(("where", "needle"), BAD_VALUES)
def test_bad_values_exit_2_before_anything_is_created(
    capsys, fresh_plugins, workdir, where, needle
):
    (workdir / "v.toml").write_text(faulty_suite("v", models=["mlp-vae"], epochs=1, **where))
    code, _, err = run_cli(capsys, "run", "--suite", "v.toml")
    assert code == 2
    assert needle in one_line(err)
    assert not (workdir / "results").exists()


def test_empty_product_says_the_suite_has_no_cells(capsys, fresh_plugins, workdir):
    (workdir / "e.toml").write_text(faulty_suite("e", models=["mlp-vae"], seeds=[]))
    code, _, err = run_cli(capsys, "run", "--suite", "e.toml")
    assert code == 2
    assert "has no cells" in one_line(err) and "group 'g' has no seeds" in err


@pytest.mark.parametrize("flag", ["--results-dir", "--leaderboard-dir"])
def test_unwritable_output_folder_exits_2_naming_it(capsys, fresh_plugins, workdir, flag):
    (workdir / "f.toml").write_text(faulty_suite("f", models=["mlp-vae"], epochs=1))
    (workdir / "a-file").write_text("")
    code, _, err = run_cli(capsys, "run", "--suite", "f.toml", flag, "a-file/out")
    assert code == 2
    assert "a-file/out" in one_line(err) and "cannot be written" in err
    assert not list(workdir.glob("results/f/custom/g__*"))  # checked before any training


def test_missing_ptb_names_the_folder_and_blocks_no_rerun(capsys, fresh_plugins, workdir):
    (workdir / "t.toml").write_text(faulty_suite("t", models=["lstm-vae"], datasets=["ptb"]))
    args = ("run", "--suite", "t.toml", "--data-dir", str(workdir / "nodata"))
    for _ in range(2):  # the second run is not blocked by anything the first left
        code, _, err = run_cli(capsys, *args)
        assert code == 2
        line = one_line(err)
        assert str(workdir / "nodata" / "ptb") in line and "ptb.train.txt" in line


def test_contract_mismatch_exits_2_with_the_shapes(capsys, workdir, env, monkeypatch):
    (workdir / "k.toml").write_text(faulty_suite("k"))
    code, _, err = in_process(capsys, monkeypatch, "run", "--suite", "k.toml", fault="bad-shape")
    assert code == 2
    line = one_line(err)
    assert "model 'tiny-vae' (plugin 'bench_faulty', bench_faulty 0.1)" in line
    assert "log_likelihood(x, z [2, 32, 2]) returned [64], expected [2, 32]" in line
    assert not list(workdir.glob("results/k/custom/g__*"))


def test_fail_fast_stops_at_the_first_failure(capsys, workdir, env, monkeypatch):
    (workdir / "ff.toml").write_text(faulty_suite("ff", seeds=[0, 1], epochs=1))
    args = ("run", "--suite", "ff.toml", "--quiet", "--fail-fast")
    code, out, err = in_process(capsys, monkeypatch, *args, fault="model-raises")
    assert code == 1
    assert "--fail-fast" in err and "1 cell(s) not run" in err
    assert len(list(workdir.glob("results/ff/custom/*/record.json"))) == 1


def test_diverged_run_exits_1(capsys, fresh_plugins, workdir):
    budget = {"optimizer": "sgd", "lr": 1e12, "grad_clip": 0.0}
    (workdir / "dv.toml").write_text(
        faulty_suite("dv", models=["mlp-vae"], epochs=1, budget=budget)
    )
    code, out, _ = run_cli(capsys, "run", "--suite", "dv.toml", "--quiet")
    assert code == 1
    assert "runs that did not finish" in out and "diverged" in out


LOAD_ERRORS = {
    "misspelled": (
        "from bench import hookimpl\n@hookimpl\ndef register_model(register):\n    pass\n",
        "implements unknown hook 'register_model' (did you mean 'register_models'",
    ),
    "wrongarg": (
        "from bench import hookimpl\n@hookimpl\ndef register_models(reg):\n    pass\n",
        "hook register_models(reg) takes 'reg', which register_models does not pass",
    ),
    "notcallable": (
        "from bench import ModelSpec, hookimpl\n@hookimpl\ndef register_models(register):\n"
        "    register(ModelSpec('m', 5))\n",
        "registered model 'm' whose build is not callable",
    ),
}


@pytest.mark.parametrize("kind", list(LOAD_ERRORS))
def test_plugin_load_errors(capsys, fresh_plugins, workdir, monkeypatch, kind):
    source, needle = LOAD_ERRORS[kind]
    name = f"bench_{kind}"
    install(workdir / "site", name, source)
    monkeypatch.syspath_prepend(str(workdir / "site"))
    code, _, err = run_cli(capsys, "ls", "models")
    assert code == 2
    line = one_line(err)
    assert f"plugin '{name}' ({name} 0.1)" in line and needle in line
    plugins.reset()
    code, out, err = run_cli(capsys, "plugins")
    assert code == 1
    assert "failed" in out and f"{name}" in err


def test_unknown_disabled_plugin_is_warned_about(capsys, fresh_plugins, monkeypatch):
    monkeypatch.setenv("BENCH_DISABLE_PLUGINS", "no-such-plugin")
    code, _, err = run_cli(capsys, "ls", "suites")
    assert code == 0
    assert "unknown plugin(s) 'no-such-plugin'" in err


def test_a_dead_holders_details_are_not_named(workdir, monkeypatch):
    """The lock is free of the dead (the OS released it), but the file naming the holder stays
    until the next holder rewrites it: a refused process never names a dead pid."""
    from bench import locks

    monkeypatch.setattr(locks, "HOLDER_WAIT_S", 0.2)
    folder = workdir / "results" / "s" / "custom"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with locks.results_lock(folder):
        holder = locks.lock_paths(folder)[1]
        alive = json.loads(holder.read_text())
        with (
            pytest.raises(locks.LockedError, match=f"pid {os.getpid()} on "),
            locks.results_lock(folder),
        ):
            pass
        holder.write_text(json.dumps({**alive, "pid": dead.pid}))
        with (
            pytest.raises(locks.LockedError, match="has not written its details yet"),
            locks.results_lock(folder),
        ):
            pass
