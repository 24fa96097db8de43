"""A run stopped from outside, tried with real `bench` processes: SIGTERM and SIGHUP (what
schedulers and a closed terminal send) stop it as Ctrl-C does, and a disk that fills up, turns
read-only or hits a file-size limit mid-run stops it in one line. Either way the runs that
finished get their leaderboard, the lock's holder file goes, and `--resume` continues.

The full and read-only disks are small tmpfs mounts (root only; skipped elsewhere); the
injected ENOSPC test runs everywhere.
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.cli import run_cli
from tests.helpers.plugins import install
from tests.helpers.processes import TIMEOUT_S, wait_for
from tests.helpers.suites import FEW_DIGITS, suite_toml

REPO = Path(__file__).resolve().parents[1]

# Holds the run of seed $BENCH_HOLD_SEED after its first epoch (touching $BENCH_HOLD_FILE)
# until $BENCH_GO_FILE exists: the test acts on a run that is surely mid-way, however loaded
# the machine.
HOLD_PLUGIN = """
import os, time
from pathlib import Path
from bench import hookimpl

@hookimpl
def on_epoch_end(cell, epoch, metrics):
    if str(cell.seed) != os.environ.get("BENCH_HOLD_SEED"):
        return
    Path(os.environ["BENCH_HOLD_FILE"]).touch()
    go = Path(os.environ.get("BENCH_GO_FILE", "/nonexistent"))
    while not go.exists():
        time.sleep(0.05)
"""

CELL = "g__digits__mlp-vae__elbo__s{seed}"


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # as in a terminal (see test_faults.py)


@pytest.fixture
def env(workdir):
    site = workdir / "site"
    install(site, "bench_hold", HOLD_PLUGIN)
    out = dict(os.environ)
    out["PYTHONPATH"] = os.pathsep.join([str(site), str(REPO), out.get("PYTHONPATH", "")])
    out["BENCH_HOLD_SEED"] = "1"
    out["BENCH_HOLD_FILE"] = str(workdir / "held")
    out["BENCH_GO_FILE"] = str(workdir / "go")
    (workdir / "s.toml").write_text(
        suite_toml(
            "s",
            seeds=[0, 1],
            metrics=["neg_elbo"],
            model_params={"mlp-vae": {"hidden": 8, "latent_dim": 2}},
            budget={"epochs": 2, "batch_size": 100, **FEW_DIGITS},
            eval={"iw_samples": 2, "batch_size": 100},
        )
    )
    return out


def start(env: dict, *args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "bench.cli", "run", "--suite", "s.toml", "--quiet", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,
        **kw,
    )


def held(proc: subprocess.Popen, workdir: Path, results: Path) -> None:
    """Wait until seed 0 has finished and seed 1 holds after an epoch."""
    record = results / "s/custom" / CELL.format(seed=0) / "record.json"
    wait_for(lambda: record.exists() and (workdir / "held").exists(), "seed 1 held", proc)


def finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=TIMEOUT_S)
    return proc.returncode, out, err


def resumed(env: dict, *args: str) -> None:
    """The same command with --resume finishes both runs."""
    code, out, err = finish(start({**env, "BENCH_HOLD_SEED": ""}, *args, "--resume"))
    assert code == 0, err
    assert "2 runs (0 not finished)" in out


# ---- signals --------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("sig", "jobs"),
    [(signal.SIGTERM, "1"), (signal.SIGHUP, "1"), (signal.SIGTERM, "2")],
    ids=["sigterm", "sighup", "sigterm-jobs-2-process-group"],
)
def test_sigterm_and_sighup_stop_like_ctrl_c(workdir, env, sig, jobs):
    """The `--resume` line, the finished run's leaderboard, no holder file, exit 128 + N;
    with --jobs the whole process group gets the signal, as from Slurm or Kubernetes."""
    args = ("--jobs", jobs) if jobs != "1" else ()
    proc = start(env, *args, start_new_session=True)
    held(proc, workdir, workdir / "results")
    os.killpg(proc.pid, sig) if jobs != "1" else proc.send_signal(sig)
    code, _, err = finish(proc)
    assert code == 128 + sig, err
    assert "Traceback" not in err
    shown = " ".join(["--suite", "s.toml", "--quiet", *args, "--resume"])
    assert err.strip().splitlines()[-1] == f"interrupted: bench run {shown} continues"
    assert (workdir / "results/leaderboards/s.md").exists()
    assert not (workdir / "results/s/.custom.holder.json").exists()
    resumed(env, *args)


# ---- disks ---------------------------------------------------------------------------------


def _can_mount() -> bool:
    if os.geteuid() != 0 or not sys.platform.startswith("linux"):
        return False
    probe = Path(f"/tmp/bench-mount-probe-{uuid.uuid4().hex}")
    probe.mkdir()
    try:
        ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(probe)])
        if ok.returncode != 0:
            return False
        subprocess.run(["umount", str(probe)], check=True)
        return True
    except OSError:
        return False
    finally:
        probe.rmdir()


needs_mount = pytest.mark.skipif(not _can_mount(), reason="needs root to mount a tmpfs")


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "16m") -> Iterator[Path]:
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(disk: Path) -> Path:
    """Write a file until the disk is full; returns it."""
    filler = disk / "filler"
    with contextlib.suppress(OSError), filler.open("wb") as fh:
        while True:
            fh.write(b"\0" * 2**16)
            fh.flush()
    return filler


def _stopped_by_disk(err: str, needle: str) -> None:
    """Two lines: the path and the error (and the finished run's board), then the hint."""
    assert "Traceback" not in err and "inline_container" not in err, err
    error, hint = err.strip().splitlines()[-2:]
    assert error.startswith("error: cannot write ") and needle in error, err
    assert "the finished runs' leaderboard: " in error and "leaderboards/s.md" in error
    assert hint.startswith("stopped: bench run --suite s.toml --quiet --results-dir ")
    assert hint.endswith("--resume continues once the disk can be written")


@pytest.mark.slow
@needs_mount
def test_a_disk_that_fills_up_mid_run(workdir, env):
    with tmpfs(workdir / "disk") as disk:
        # The board goes beside the full disk, where it can still be written.
        args = ("--results-dir", str(disk / "results"), "--leaderboard-dir", "leaderboards")
        proc = start(env, *args)
        held(proc, workdir, disk / "results")
        filler = fill(disk)
        (workdir / "go").touch()
        code, _, err = finish(proc)
        assert code == 1, err
        _stopped_by_disk(err, "No space left on device (ENOSPC)")
        assert str(disk / "results/s/custom") in err
        filler.unlink()
        resumed(env, *args)


@pytest.mark.slow
@needs_mount
def test_a_disk_that_turns_read_only_mid_run(workdir, env):
    """The held run's folder is a file system of its own (the lock, open for writing in the
    results folder, would keep a whole results disk from turning read-only)."""
    run_dir = workdir / "results/s/custom" / CELL.format(seed=1)
    run_dir.parent.mkdir(parents=True)
    with tmpfs(run_dir):
        args = ("--results-dir", "results")
        proc = start(env, *args)
        held(proc, workdir, workdir / "results")
        subprocess.run(["mount", "-o", "remount,ro", str(run_dir)], check=True)
        (workdir / "go").touch()
        code, _, err = finish(proc)
        assert code == 1, err
        _stopped_by_disk(err, "Read-only file system (EROFS)")
        assert f"results/s/custom/{run_dir.name}/" in err
        subprocess.run(["mount", "-o", "remount,rw", str(run_dir)], check=True)
        resumed(env, *args)


def _file_size_limit(limit: int):
    def set_limit() -> None:
        _default_sigint()
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return set_limit


@pytest.mark.slow
def test_a_file_size_limit_names_the_file_not_torchs_writer(workdir, env):
    """`ulimit -f`: torch's writer says only "enforce fail at inline_container.cc"."""
    env = {**env, "BENCH_HOLD_SEED": ""}
    args = ["--results-dir", "r"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.cli", "run", "--suite", "s.toml", "--quiet", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_file_size_limit(2048),
    )
    code, _, err = finish(proc)
    assert code == 1, err
    assert "Traceback" not in err and "inline_container" not in err, err
    error, hint = err.strip().splitlines()[-2:]
    assert error.startswith("error: cannot write r/s/custom/") and "(EFBIG)" in error, err
    assert hint.endswith("--resume continues once the disk can be written")
    resumed(env, *args)


@pytest.mark.slow
def test_an_injected_enospc_stops_the_suite_with_the_finished_runs_board(
    capsys, fresh_plugins, workdir, monkeypatch
):
    """Where no tmpfs can be mounted: the checkpoint writer of seed 1 raises ENOSPC."""
    from bench.runner import checkpoints

    save = checkpoints.atomic_torch_save

    def full_for_seed_1(obj, path, **kw):
        if "__s1" in str(path):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return save(obj, path, **kw)

    monkeypatch.setattr(checkpoints, "atomic_torch_save", full_for_seed_1)
    (workdir / "s.toml").write_text(
        suite_toml(
            "s",
            seeds=[0, 1],
            metrics=["neg_elbo"],
            model_params={"mlp-vae": {"hidden": 8, "latent_dim": 2}},
            budget={"epochs": 1, "batch_size": 100, **FEW_DIGITS},
            eval={"iw_samples": 2, "batch_size": 100},
        )
    )
    code, _, err = run_cli(capsys, "run", "--suite", "s.toml", "--quiet")
    assert code == 1, err
    error, hint = err.strip().splitlines()[-2:]
    assert error == (
        f"error: cannot write a file in results/s/custom/{CELL.format(seed=1)}: No space left "
        "on device (ENOSPC); the finished runs' leaderboard: results/leaderboards/s.md"
    )
    assert hint == (
        "stopped: bench run --suite s.toml --quiet --resume continues once the disk can be written"
    )
    assert not (workdir / "results/s/custom" / CELL.format(seed=1) / "record.json").exists()


def test_the_exit_code_keeps_the_signal_when_a_library_raises_its_own_interrupt(monkeypatch):
    """Ray's blocking calls may catch our Terminated and raise a KeyboardInterrupt of their
    own: the exit code still says SIGTERM (143), not Ctrl-C (130)."""
    from bench import signals as bench_signals

    monkeypatch.setattr(bench_signals, "_received", [])
    previous = bench_signals.stop_on_signals()
    try:
        with pytest.raises(bench_signals.Terminated) as caught:
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):  # the handler runs between two bytecodes of this thread
                pass
        assert bench_signals.exit_code(caught.value) == 143
        assert bench_signals.exit_code(KeyboardInterrupt()) == 143
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    monkeypatch.setattr(bench_signals, "_received", [])
    assert bench_signals.exit_code(KeyboardInterrupt()) == 130  # a plain Ctrl-C
