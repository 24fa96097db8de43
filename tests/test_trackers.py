"""Trackers: `--log-to tensorboard` and `--log-to mlflow` stream each run's epochs and record,
each run named by its cell id and tagged with its suite, scale, data set, model, objective and
seed, from `--jobs` workers too; read back with TensorBoard's own reader and MLflow's client
(against a real local `mlflow server` on SQLite). A tracker that fails is one line and training
goes on."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest

from bench.listener import EpochResult
from bench.trackers import LOG_TO_ENV, parse
from bench.trackers.listener import TrackerListener, scalars
from tests.helpers.cli import assert_user_error
from tests.helpers.processes import wait_for
from tests.helpers.suites import suite_toml

SEEDS = (0, 1)
SUITE = suite_toml(
    "tracked",
    models=["mlp-vae"],
    objectives=["elbo", "free-bits"],
    seeds=list(SEEDS),
    model_params={"mlp-vae": {"hidden": 16, "latent_dim": 4}},
    budget={"epochs": 2, "train_subset": 200, "valid_subset": 100, "test_subset": 100},
)
CELLS = [f"g__digits__mlp-vae__{o}__s{s}" for o in ("elbo", "free-bits") for s in SEEDS]
TAGS = {"suite": "tracked", "scale": "custom", "dataset": "digits", "model": "mlp-vae"}


def bench_run(root: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`bench run` of the suite above in its own process, as a user runs it."""
    (root / "tracked.toml").write_text(SUITE)
    full = {**os.environ, "BENCH_CACHE_DIR": str(root / "cache"), **(env or {})}
    full.pop(LOG_TO_ENV, None)
    return subprocess.run(
        [sys.executable, "-m", "bench.cli", "run", "--suite", "tracked.toml", "--quiet", *args],
        cwd=root,
        env=full,
        capture_output=True,
        text=True,
        timeout=900,
    )


# ---- without a tracker's package -----------------------------------------------------------


def test_log_to_names_known_trackers_and_where_they_write():
    assert parse("tensorboard, mlflow=http://h:5000/x?a=b") == [
        ("tensorboard", None),
        ("mlflow", "http://h:5000/x?a=b"),
    ]
    assert parse("") == []


def test_an_unknown_tracker_is_one_line_and_exit_2(capsys, workdir):
    args = ["run", "--suite", "collapse", "--scale", "smoke", "--log-to", "wandb"]
    assert_user_error(capsys, args, "--log-to", "'wandb'", "mlflow, tensorboard")


class Flaky:
    """A tracker whose server stops answering after the first epoch."""

    name = "flaky"

    def __init__(self) -> None:
        self.calls: list[str] = []

    def start(self, cell, run_dir):
        self.calls.append("start")

    def epoch(self, epoch, values):
        self.calls.append(f"epoch {epoch}")
        if epoch >= 2:  # epochs are numbered from 1: the second one fails
            raise ConnectionError("server at http://127.0.0.1:9 stopped answering\nmore detail")

    def end(self, record):
        self.calls.append("end")

    def close(self):
        self.calls.append("close")


def test_a_failing_tracker_is_one_line_then_dropped_for_the_run():
    warnings: list[str] = []
    run = SimpleNamespace(
        cell=SimpleNamespace(run_id="g__digits__mlp-vae__elbo__s0"),
        run_dir=Path("."),
        opts=SimpleNamespace(warn=warnings.append),
    )
    tracker = Flaky()
    listener = TrackerListener(tracker)
    listener.on_run_start(run)
    for epoch in range(3):
        listener.on_epoch_end(run, EpochResult(epoch, 1.0, {}, {"epoch": epoch, "val_kl": 0.5}))
    listener.on_run_end(run, None)
    assert tracker.calls == ["start", "epoch 1", "epoch 2", "close"]
    (line,) = warnings
    assert line == (
        "g__digits__mlp-vae__elbo__s0: flaky tracker stopped at epoch 2 (ConnectionError: "
        "server at http://127.0.0.1:9 stopped answering); training goes on without it"
    )


def test_only_the_numbers_of_an_epoch_line_are_logged():
    entry = {"epoch": 3, "val_kl": 0.5, "lr": 1e-3, "phase": "warm-up", "nan": float("nan")}
    assert scalars(entry | {"ok": True}) == {"val_kl": 0.5, "lr": 1e-3}


def test_a_failing_tracker_does_not_stop_a_real_run(workdir, fresh_plugins, one_thread):
    from bench import hookimpl, plugins
    from bench.runner import run_suite
    from bench.suites import load_suite_file
    from tests.helpers.suites import cpu_options

    tracker = Flaky()

    class Plugin:
        @hookimpl
        def run_listeners(self, cell, run_dir):
            return TrackerListener(tracker)

    (workdir / "t.toml").write_text(suite_toml("t", budget={"epochs": 3}))
    warnings: list[str] = []
    with plugins.with_plugins({"flaky": Plugin()}):
        _, (record,) = run_suite(
            load_suite_file(workdir / "t.toml"), None, cpu_options(workdir, warn=warnings.append)
        )
    assert record.finished and record.epochs_trained == 3
    assert [w for w in warnings if "flaky tracker stopped at epoch 2" in w] == warnings != []


# ---- TensorBoard ------------------------------------------------------------------------------


@pytest.mark.slow
def test_tensorboard_gets_every_run_of_every_worker(tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard is not installed (extra: tensorboard)")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import metadata

    done = bench_run(tmp_path, "--jobs", "2", "--log-to", f"tensorboard={tmp_path / 'tb'}")
    assert done.returncode == 0, done.stderr[-3000:]
    folder = tmp_path / "tb" / "tracked" / "custom"
    assert sorted(p.name for p in folder.iterdir()) == sorted(CELLS)  # named by cell id
    for cell in CELLS:
        events = EventAccumulator(str(folder / cell), size_guidance={"tensors": 0, "scalars": 0})
        events.Reload()
        assert [s.step for s in events.Scalars("val_kl")] == [1, 2]  # epochs from 1
        assert [s.step for s in events.Scalars("train_loss")] == [1, 2]
        assert events.Scalars("test/nll")[0].value > 0
        tags = events.Tensors("tags/text_summary")[0].tensor_proto.string_val[0].decode()
        for key, value in {**TAGS, "objective": cell.split("__")[3]}.items():
            assert f"**{key}**: `{value}`" in tags
        content = events.PluginTagToContent(metadata.PLUGIN_NAME)
        start = metadata.parse_session_start_info_plugin_data(
            content[metadata.SESSION_START_INFO_TAG]
        )
        hparams = {k: v.string_value or v.number_value for k, v in start.hparams.items()}
        assert hparams["seed"] == cell[-1] and hparams["status"] == "finished"
        record = json.loads(
            (tmp_path / "results/tracked/custom" / cell / "record.json").read_text()
        )
        assert hparams["fingerprint"] == record["fingerprint"]


# ---- MLflow -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """A real local `mlflow server` with a SQLite backend, stopped at the end."""
    pytest.importorskip("mlflow", reason="mlflow is not installed (extra: mlflow)")
    root = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = ["server", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}"]
    args += ["--artifacts-destination", str(root / "artifacts"), "--host", "127.0.0.1"]
    args += ["--port", str(port), "--workers", "1"]
    log = (root / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", *args],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )

    def up() -> bool:
        try:
            return urllib.request.urlopen(f"{url}/health", timeout=2).status == 200
        except OSError:
            return False

    try:
        wait_for(up, "mlflow server to answer", proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)  # the server's own process group: its uvicorn worker too
            proc.wait()
        log.close()


@pytest.mark.slow
def test_mlflow_gets_every_run_with_its_tags_epochs_and_record(tmp_path, mlflow_server):
    from mlflow.tracking import MlflowClient

    done = bench_run(tmp_path, "--jobs", "2", "--log-to", f"mlflow={mlflow_server}")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "tracker stopped" not in done.stderr
    client = MlflowClient(tracking_uri=mlflow_server)
    experiment = client.get_experiment_by_name("tracked")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert sorted(runs) == sorted(CELLS)
    for cell, run in runs.items():
        assert run.info.status == "FINISHED"
        expected = {
            **TAGS,
            "objective": cell.split("__")[3],
            "seed": cell[-1],
            "status": "finished",
        }
        assert expected.items() <= run.data.tags.items()
        assert run.data.params["model.hidden"] == "16" and run.data.params["budget.epochs"] == "2"
        history = client.get_metric_history(run.info.run_id, "val_kl")
        assert sorted(m.step for m in history) == [1, 2]  # epochs from 1
        assert run.data.metrics["test/nll"] > 0
        artifacts = [a.path for a in client.list_artifacts(run.info.run_id)]
        assert artifacts == ["record.json"]
        record = json.loads(
            (tmp_path / "results/tracked/custom" / cell / "record.json").read_text()
        )
        assert run.data.tags["fingerprint"] == record["fingerprint"]
        assert run.data.metrics["test/nll"] == pytest.approx(record["metrics"]["nll"]["value"])


@pytest.mark.slow
def test_a_server_that_stops_answering_is_one_line_per_run_and_training_goes_on(tmp_path):
    pytest.importorskip("mlflow", reason="mlflow is not installed (extra: mlflow)")
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)  # accepts connections and never answers
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def hold() -> None:
        silent.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(silent.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{silent.getsockname()[1]}"
    quick = {"MLFLOW_HTTP_REQUEST_TIMEOUT": "2", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}
    try:
        done = bench_run(tmp_path, "--log-to", f"mlflow={url}", env=quick)
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        silent.close()
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stderr.splitlines() if "mlflow tracker stopped" in line]
    assert len(lines) == len(CELLS), done.stderr[-3000:]
    assert all("training goes on without it" in line for line in lines)
    for cell in CELLS:
        record = json.loads(
            (tmp_path / "results/tracked/custom" / cell / "record.json").read_text()
        )
        assert record["status"] == "finished"
