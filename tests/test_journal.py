"""A torn Optuna journal: a writer killed mid-record leaves its last line cut off, and the next
append used to land on that line, after which no `bench tune` or `bench leaderboard --tuned`
could read the journal again. The cut-off bytes are now kept in ``journal.log.corrupt`` and
the journal continues from the last whole record, with one warning line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.storages.journal import JournalFileBackend, JournalStorage

from bench.tune import open_storage
from tests.helpers.suites import FEW_DIGITS, suite_toml

TORN = b'{"op_code":5,"worker_id":"x","trial_id":0,"param_na'


def _journal(workdir: Path) -> Path:
    return workdir / "results/tuning/journal.log"


def _study_with_trials(path: Path, n: int = 2) -> None:
    """A study with ``n`` finished trials, written as Optuna writes it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    storage = JournalStorage(JournalFileBackend(str(path)))
    study = optuna.create_study(study_name="s", storage=storage)
    for i in range(n):
        trial = study.ask()
        study.tell(trial, float(i))


def _trials(path: Path) -> list[optuna.trial.FrozenTrial]:
    """The study read by plain Optuna (no repair): raises if the journal is unreadable."""
    storage = JournalStorage(JournalFileBackend(str(path)))
    return optuna.load_study(study_name="s", storage=storage).get_trials()


def test_a_cut_off_last_record_is_set_aside_before_anything_is_appended(workdir, capsys):
    path = _journal(workdir)
    _study_with_trials(path)
    with path.open("ab") as fh:
        fh.write(TORN)  # the writer was killed here
    store = open_storage(None, workdir / "results")
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "a record was cut off" in err
    assert f"its {len(TORN)} bytes are kept in journal.log.corrupt" in err
    assert (path.parent / "journal.log.corrupt").read_bytes() == TORN + b"\n"
    assert path.read_bytes().endswith(b"\n")
    study = optuna.load_study(study_name="s", storage=store.storage)
    study.tell(study.ask(), 5.0)
    assert [t.value for t in _trials(path)] == [0.0, 1.0, 5.0]


def test_a_record_torn_while_the_journal_is_open_is_mended_at_the_next_append(workdir, capsys):
    """Another worker dies mid-write while this one has the journal open."""
    path = _journal(workdir)
    _study_with_trials(path)
    store = open_storage(None, workdir / "results")
    study = optuna.load_study(study_name="s", storage=store.storage)
    with path.open("ab") as fh:
        fh.write(TORN)
    study.tell(study.ask(), 7.0)
    assert "a record was cut off" in capsys.readouterr().err
    assert [t.value for t in _trials(path)] == [0.0, 1.0, 7.0]


def test_a_journal_already_damaged_that_way_is_read_again(workdir, capsys):
    """An earlier version appended a whole record to the cut-off bytes: the record is kept."""
    path = _journal(workdir)
    _study_with_trials(path)
    lines = path.read_bytes().splitlines(keepends=True)
    # A record two before the end was appended to a cut-off one; others followed.
    path.write_bytes(b"".join(lines[:-2]) + TORN + b"".join(lines[-2:]))
    with pytest.raises(ValueError):
        _trials(path)
    open_storage(None, workdir / "results")
    assert "a record was cut off" in capsys.readouterr().err
    assert [t.value for t in _trials(path)] == [0.0, 1.0]
    assert (path.parent / "journal.log.corrupt").read_bytes() == TORN + b"\n"


def test_a_symlinked_journal_is_refused(workdir):
    from bench.errors import ConfigError

    target = workdir / "elsewhere.log"
    target.write_text("")
    _journal(workdir).parent.mkdir(parents=True)
    _journal(workdir).symlink_to(target)
    with pytest.raises(ConfigError, match="is a symbolic link"):
        open_storage(None, workdir / "results")


@pytest.mark.slow
def test_bench_tune_continues_a_torn_journal(workdir, fresh_plugins):
    """A real `bench tune` after a killed writer: one warning line, then it tunes."""
    (workdir / "t.toml").write_text(
        suite_toml(
            "t",
            objectives=["elbo"],
            seeds=[0],
            model_params={"mlp-vae": {"hidden": 8, "enc_layers": 1, "dec_layers": 1}},
            budget={"epochs": 1, **FEW_DIGITS},
            eval={"iw_samples": 2, "batch_size": 100},
        )
    )

    def tune(n_trials: int) -> subprocess.CompletedProcess:
        args = ["tune", "--suite", "t.toml", "--n-trials", str(n_trials), "--device", "cpu"]
        command = [sys.executable, "-m", "bench.cli", *args, "--quiet", "--pruner", "none"]
        return subprocess.run(command, cwd=workdir, capture_output=True, text=True)

    first = tune(1)
    assert first.returncode == 0, first.stderr
    with _journal(workdir).open("ab") as fh:
        fh.write(TORN)
    again = tune(2)
    assert again.returncode == 0, again.stderr
    assert "Traceback" not in again.stderr
    assert again.stderr.count("a record was cut off") == 1
    assert "t/custom/digits/mlp-vae/elbo: 2 trials (2 finished" in again.stdout
