"""``bench run --ray`` and ``bench tune --ray`` on a real multi-node Ray cluster on this machine.

One cluster per module: a head that runs no cells and two one-CPU worker nodes, each with its
own raylet and object store. The faults: a driver killed mid-suite (``--resume`` continues it),
and a worker node removed mid-cell (its cell resumes on the other node); the latter comes last,
as it leaves one worker. The tests that need no cluster also run without Ray.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import polars as pl
import pytest
import torch
from polars.testing import assert_frame_equal

from bench import leaderboard as lb
from bench import plugins
from bench.cli import main
from bench.errors import ConfigError, ModelContractError
from bench.records import RECORD_FILE
from bench.runner import RayPlacement, RunOptions, run_suite, select_cells
from bench.suites import get_suite
from tests.helpers.plugins import FAULTY_PLUGIN, install
from tests.helpers.suites import SMALL_MLP, suite_toml

EPOCHS = 5
# Four cells: two models by two objectives.
SUITE = {
    "models": ["mlp-vae", "mlp-skip-vae"],
    "objectives": ["elbo", "free-bits"],
    "metrics": ["neg_elbo", "nll", "mi", "au"],
    "model_params": {"mlp-vae": SMALL_MLP, "mlp-skip-vae": SMALL_MLP},
    "budget": {"epochs": EPOCHS, "batch_size": 50},
    "eval": {"iw_samples": 5, "batch_size": 300},
}
SUITE_TOML = suite_toml("tiny", **SUITE)
CELLS = 4


@pytest.fixture(scope="module")
def faulty_site(tmp_path_factory) -> Path:
    """An installed distribution with a model that raises when ``BENCH_FAULT`` says so (the
    driver forwards ``BENCH_*`` settings to the tasks)."""
    site = tmp_path_factory.mktemp("site")
    install(site, "bench_faulty", FAULTY_PLUGIN)
    return site


@pytest.fixture(scope="module")
def cluster(faulty_site):
    pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    # The nodes' workers find the faulty plugin's distribution; this process only when a test
    # puts it on its path.
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(faulty_site), before) if p)
    try:
        c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
        workers = [c.add_node(num_cpus=1) for _ in range(2)]
        c.wait_for_nodes()
    finally:
        if before is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = before
    yield c, workers
    c.shutdown()


@pytest.fixture
def suite_file(workdir, one_thread):
    # Cells in this process train on one thread, as the one-CPU Ray tasks do.
    path = workdir / "tiny.toml"
    path.write_text(SUITE_TOML)
    return path


def bench(*args: str) -> None:
    main(["run", "--suite", "tiny.toml", *args])


def run_tiny(
    suite_file: Path, results: Path, address: str | None = None, resume: bool = False
) -> tuple[list[dict], list[str]]:
    """The tiny suite through run_suite (plain, or on Ray at ``address``): records, log lines."""
    logged: list[str] = []
    opts = RunOptions(
        results_dir=results,
        device=torch.device("cpu"),
        resume=resume,
        log=logged.append,
        ray=RayPlacement(address) if address else None,
    )
    return run_suite(get_suite(str(suite_file)), None, opts)[1], logged


def metrics_table(records: list[dict]) -> pl.DataFrame:
    table = lb.build(records, "tiny", "custom").table
    return table.select(c for c in table.columns if not c.startswith("train_examples_per_s"))


def mid_cell(work: Path) -> bool:
    """A cell's work folder holds a checkpoint, and at least two epochs remain to train."""
    try:
        logged = len((work / "epochs.jsonl").read_text().splitlines())
    except OSError:
        return False
    return 1 <= logged <= EPOCHS - 2 and (work / "checkpoint.pt").exists()


@pytest.mark.parametrize(
    "args, words",
    [
        (["--gpus-per-cell", "0.5"], "apply with --ray"),
        (["--ray", "--jobs", "2"], "--ray places cells itself"),
        (["--ray", "--gpus-per-cell", "1.5"], "a fraction up to 1 or a whole number"),
        (["--ray", "--cpus-per-cell", "0"], "--cpus-per-cell must be positive"),
        (["--ray", "--device", "cpu"], "each cell runs where Ray puts it"),
    ],
)
def test_ray_options_fail_in_one_line(fresh_plugins, suite_file, capsys, args, words):
    with pytest.raises(SystemExit) as exc:
        bench("--quiet", *args)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1


def test_ray_missing_is_one_line(fresh_plugins, suite_file, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now fails
    with pytest.raises(SystemExit) as exc:
        bench("--quiet", "--ray")
    assert exc.value.code == 2
    assert "pip install 'collapse-bench[ray]'" in capsys.readouterr().err


def test_tasks_get_the_bench_settings_but_no_credentials(monkeypatch):
    from bench.runner.ray import forwarded_env

    monkeypatch.setenv("BENCH_DATA_DIR", "/data")
    monkeypatch.setenv("BENCH_TUNE_STORAGE", "postgresql+psycopg://user:secret@db/bench")
    monkeypatch.setenv("OTHER", "x")
    env = forwarded_env()
    assert env["BENCH_DATA_DIR"] == "/data"
    assert "BENCH_TUNE_STORAGE" not in env and "OTHER" not in env


@pytest.mark.slow
def test_cells_no_node_can_hold_are_refused(cluster, fresh_plugins, suite_file, capsys):
    c, _ = cluster
    with pytest.raises(SystemExit) as exc:
        bench("--quiet", "--ray", c.address, "--cpus-per-cell", "2")
    assert exc.value.code == 2
    assert "no node of the cluster has 2 CPUs and 0 GPUs" in capsys.readouterr().err


@pytest.mark.slow
def test_without_a_shared_folder_the_task_returns_its_files(
    cluster, fresh_plugins, suite_file, workdir
):
    """A node that does not see the results folder trains in a temporary folder of its own,
    returns the epoch log and small files, and leaves nothing behind; the driver writes them."""
    import ray

    from bench.runner import ray as on_ray

    c, _ = cluster
    cells = select_cells(get_suite(str(suite_file)), None)[1]
    (cell,) = [x for x in cells if x.model == "mlp-vae" and x.objective == "elbo"]
    work_root = workdir / "results" / on_ray.WORK_DIR / "tiny" / "custom"
    work = work_root / cell.run_id
    settings = {
        "work_root": str(work_root),
        "data_dir": None,
        "speed": {},
        "keep_checkpoints": False,
        "threads": 1,
    }
    ray.init(address=c.address)
    try:
        result = on_ray.train_task(cell, settings, str(work), "a token no one wrote", None)
    finally:
        ray.shutdown()
    assert result["shared"] is False and not work.exists()
    assert sorted(result["files"]) == ["best.pt", "epochs.jsonl"]  # no checkpoint, no record
    run_dir = workdir / "results" / "tiny" / "custom" / cell.run_id
    on_ray.store(result, run_dir, work, print)
    assert json.loads((run_dir / RECORD_FILE).read_text()) == json.loads(
        json.dumps(result["record"].to_json())
    )
    log = (run_dir / "epochs.jsonl").read_text()
    assert [json.loads(ln)["epoch"] for ln in log.splitlines()] == list(range(1, EPOCHS + 1))


@pytest.mark.slow
def test_an_open_connection_is_kept(cluster, fresh_plugins, suite_file, workdir):
    """A driver already connected (a notebook, a script) keeps its connection."""
    import ray

    c, _ = cluster
    opts = RunOptions(
        results_dir=workdir / "results",
        device=torch.device("cpu"),
        ray=RayPlacement(gpus_per_cell=4),
    )
    ray.init(address=c.address)
    try:
        with pytest.raises(ConfigError, match="no node of the cluster has 1 CPUs and 4 GPUs"):
            run_suite(get_suite(str(suite_file)), None, opts)
        assert ray.is_initialized()
    finally:
        ray.shutdown()


@pytest.mark.slow
def test_tune_workers_on_ray_hold_the_exact_trial_count(
    cluster, fresh_plugins, suite_file, workdir, capsys, monkeypatch
):
    import optuna

    from bench.tune import counts, open_storage

    monkeypatch.delenv("BENCH_TUNE_STORAGE", raising=False)
    c, _ = cluster
    row = ["--model", "mlp-vae", "--objective", "free-bits"]
    main(
        ["tune", "--suite", "tiny.toml", *row, "--n-trials", "4", "--workers", "2"]
        + ["--ray", c.address, "--sampler-seed", "0", "--quiet"]
    )
    assert "1 studies in" in capsys.readouterr().out
    storage = open_storage(None, workdir / "results").storage
    (name,) = optuna.get_all_study_names(storage)
    trials = optuna.load_study(study_name=name, storage=storage).get_trials()
    tally = counts(trials)
    assert tally["done"] == 4 and tally["running"] == tally["waiting"] == 0
    # Trained by the Ray workers, not by this process.
    assert all(not t.user_attrs["worker"].endswith(f":{os.getpid()}") for t in trials)


@pytest.mark.slow
def test_a_killed_driver_continues_with_resume(cluster, fresh_plugins, suite_file, workdir):
    """SIGKILL the driver once a cell has finished and another has a checkpoint; the same
    command with --resume keeps the finished cell and resumes the other."""
    from bench.runner import ray as on_ray

    c, _ = cluster
    args = ["run", "--suite", "tiny.toml", "--ray", c.address, "--results-dir", "killed"]
    driver = subprocess.Popen([sys.executable, "-m", "bench.cli", *args, "--quiet"], cwd=workdir)
    suite_dir = workdir / "killed" / "tiny" / "custom"
    work_root = workdir / "killed" / on_ray.WORK_DIR / "tiny" / "custom"
    deadline = time.time() + 300
    while driver.poll() is None and time.time() < deadline:
        done = {p.parent.name for p in suite_dir.glob(f"*/{RECORD_FILE}")}
        started = {w.name for w in work_root.glob("*") if mid_cell(w)} - done
        if done and started:
            driver.kill()
            break
        time.sleep(0.02)
    assert driver.wait() == -signal.SIGKILL, "the suite ended before the driver was killed"
    assert len(list(suite_dir.glob(f"*/{RECORD_FILE}"))) < CELLS

    records, logged = run_tiny(suite_file, workdir / "killed", c.address, resume=True)
    assert len(records) == CELLS and all(r["status"] == "finished" for r in records)
    skipped = {m.split(":")[0] for m in logged if m.endswith(": already finished, skipped")}
    assert skipped >= done  # and any cell the driver ended in its last moments
    assert any(m.startswith(f"{run}: resuming at epoch") for m in logged for run in started)


@pytest.mark.slow
def test_sigterm_stops_the_driver_as_ctrl_c_does(cluster, fresh_plugins, suite_file, workdir):
    """ray.init makes SIGTERM exit the driver at once; bench's handler comes back after it:
    the `--resume` line, the finished cells' leaderboard, no holder file, exit code 143."""
    c, _ = cluster
    args = ["run", "--suite", "tiny.toml", "--ray", c.address, "--results-dir", "term"]
    driver = subprocess.Popen(
        [sys.executable, "-m", "bench.cli", *args, "--quiet"],
        cwd=workdir,
        stderr=subprocess.PIPE,
        text=True,
    )
    suite_dir = workdir / "term" / "tiny" / "custom"
    deadline = time.time() + 300
    while driver.poll() is None and time.time() < deadline:
        if list(suite_dir.glob(f"*/{RECORD_FILE}")):
            driver.send_signal(signal.SIGTERM)
            break
        time.sleep(0.02)
    _, err = driver.communicate(timeout=300)
    assert driver.returncode == 143, err
    assert err.strip().splitlines()[-1] == (
        f"interrupted: bench {' '.join(args)} --quiet --resume continues"
    )
    assert (workdir / "term/leaderboards/tiny.md").exists()  # beside the results
    assert not (workdir / "term/tiny/.custom.holder.json").exists()


@pytest.mark.slow
def test_a_raising_plugin_fails_its_cell_only(
    cluster, faulty_site, fresh_plugins, workdir, monkeypatch
):
    """A plugin model that raises inside a Ray task: that cell gets a ``failed`` record naming
    the plugin and its distribution, with the task's traceback in ``error.log``; the other
    cell finishes; ``--fail-fast`` stops the suite at the failure."""
    c, _ = cluster
    monkeypatch.syspath_prepend(str(faulty_site))
    monkeypatch.setenv("BENCH_FAULT", "model-raises")
    plugins.reset()
    two_cells = {
        "models": ["tiny-vae", "mlp-vae"],
        "objectives": ["elbo"],
        "model_params": {"mlp-vae": SMALL_MLP},
        "budget": {"epochs": 1, "batch_size": 50},
    }
    (workdir / "p.toml").write_text(suite_toml("tiny", **(SUITE | two_cells)))
    warned: list[str] = []
    opts = RunOptions(
        results_dir=workdir / "r",
        device=torch.device("cpu"),
        warn=warned.append,
        ray=RayPlacement(c.address),
    )
    _, records = run_suite(get_suite(str(workdir / "p.toml")), None, opts)
    status = {r["cell"]["model"]: r for r in records}
    assert status["mlp-vae"]["status"] == "finished"
    failed = status["tiny-vae"]
    assert failed["status"] == "failed"
    assert failed["error"]["message"] == "decoder exploded"
    assert (failed["error"]["plugin"], failed["error"]["distribution"]) == (
        "bench_faulty",
        "bench_faulty 0.1",
    )
    run_dir = workdir / "r" / "tiny" / "custom" / failed["run_id"]
    assert "decoder exploded" in (run_dir / "error.log").read_text()
    assert json.loads((run_dir / RECORD_FILE).read_text())["status"] == "failed"
    assert any("tiny-vae" in w and "decoder exploded" in w for w in warned)

    (workdir / "p.toml").write_text(
        (workdir / "p.toml")
        .read_text()
        .replace('objectives = ["elbo"]', 'objectives = ["elbo"]\nseeds = [0, 1, 2]')
    )
    stopped = RunOptions(
        results_dir=workdir / "ff",
        device=torch.device("cpu"),
        warn=warned.append,
        ray=RayPlacement(c.address),
        fail_fast=True,
    )
    _, records = run_suite(get_suite(str(workdir / "p.toml")), None, stopped)
    assert len(records) < 6 and any(r["status"] == "failed" for r in records)
    assert any(w.startswith("--fail-fast: ") and "not run" in w for w in warned)

    # A contract breach is bad input on Ray too: the task checks before training, and the
    # suite stops with the one line the preflight gives without Ray.
    monkeypatch.setenv("BENCH_FAULT", "bad-shape")
    opts.results_dir = workdir / "shape"
    with pytest.raises(ModelContractError, match=r"returned \[64\], expected \[2, 32\]"):
        run_suite(get_suite(str(workdir / "p.toml")), None, opts)


@pytest.mark.slow
def test_node_lost_mid_suite(cluster, fresh_plugins, suite_file, workdir, monkeypatch):
    """A worker node is removed while it trains a cell that has a checkpoint: Ray retries the
    cell on the other node, which resumes from that checkpoint. Every cell finishes, each record
    is written once (by the driver), and the leaderboard equals a plain run's."""
    from bench.runner import ray as on_ray

    c, (victim, _) = cluster
    plain, _ = run_tiny(suite_file, workdir / "plain")

    writes: collections.Counter[str] = collections.Counter()
    write_record = on_ray.write_record

    def counted(path: Path, record: dict) -> None:
        writes[record["run_id"]] += 1
        write_record(path, record)

    monkeypatch.setattr(on_ray, "write_record", counted)
    work_root = workdir / "on-ray" / on_ray.WORK_DIR / "tiny" / "custom"
    hit: list[str] = []
    stop = threading.Event()

    def remove_victim_mid_cell() -> None:
        while not stop.is_set():
            for task_file in work_root.glob(f"*/{on_ray.TASK_FILE}"):
                work = task_file.parent
                try:
                    on_victim = json.loads(task_file.read_text())["node"] == victim.node_id
                except (OSError, ValueError):
                    continue
                if on_victim and mid_cell(work):
                    hit.append(work.name)
                    c.remove_node(victim)
                    return
            time.sleep(0.02)

    watcher = threading.Thread(target=remove_victim_mid_cell, daemon=True)
    watcher.start()
    try:
        records, logged = run_tiny(suite_file, workdir / "on-ray", c.address)
    finally:
        stop.set()
        watcher.join()
    assert hit, "the victim node never trained a cell past its first checkpoint"
    assert any(m.startswith(f"{hit[0]}: resuming at epoch") for m in logged)
    written = lb.load_records(workdir / "on-ray", "tiny", "custom")
    assert sorted(r["run_id"] for r in written) == sorted(r["run_id"] for r in records)
    assert len(records) == CELLS and all(r["status"] == "finished" for r in records)
    assert writes == {r["run_id"]: 1 for r in records}
    assert not (workdir / "on-ray" / on_ray.WORK_DIR).exists()
    assert len(list((workdir / "on-ray").rglob(RECORD_FILE))) == CELLS
    log = (workdir / "on-ray" / "tiny" / "custom" / hit[0] / "epochs.jsonl").read_text()
    assert [json.loads(ln)["epoch"] for ln in log.splitlines()] == list(range(1, EPOCHS + 1))
    assert_frame_equal(metrics_table(records), metrics_table(plain))
