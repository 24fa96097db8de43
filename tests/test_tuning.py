"""Tuning: search spaces from plugin Params, pruning, NaN trials, resuming a killed `bench tune`,
tuned leaderboards, user errors, and (with BENCH_TEST_POSTGRES_URL) several workers on one
PostgreSQL study, one of them killed mid-trial."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import TrialState
from sqlalchemy.engine import make_url

from bench import Objective, ObjectiveSpec, Param, hookimpl, plugins
from bench.errors import ConfigError
from bench.suites import load_suite_file
from bench.tune import (
    check_space,
    counts,
    load_space_file,
    open_storage,
    search_space,
    select_targets,
)
from tests.helpers.cli import run_cli
from tests.helpers.processes import wait_for
from tests.helpers.suites import FEW_DIGITS, suite_toml

POSTGRES_ENV = "BENCH_TEST_POSTGRES_URL"


def tuning_suite(name: str, objective: str = "free-bits", epochs: int = 2) -> str:
    """One cell (mlp-vae with ``objective``, one seed) on a few hundred digits."""
    return suite_toml(
        name,
        objectives=[objective],
        seeds=[0],
        model_params={"mlp-vae": {"hidden": 16, "enc_layers": 1, "dec_layers": 1}},
        budget={"epochs": epochs, **FEW_DIGITS},
        eval={"iw_samples": 5, "batch_size": 100},
    )


@pytest.fixture
def tiny(workdir, fresh_plugins, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.delenv("BENCH_TUNE_STORAGE", raising=False)
    path = workdir / "tiny.toml"
    path.write_text(tuning_suite("tiny"))
    return path


def journal_study(workdir: Path, name: str) -> optuna.Study:
    store = open_storage(None, workdir / "results")
    return optuna.load_study(study_name=name, storage=store.storage)


# ---- search spaces ----------------------------------------------------------------------------


def test_search_space_comes_from_params_and_is_narrowed_by_suite_and_file(tiny, workdir):
    _, [target] = select_targets(load_suite_file(tiny), None)
    dims = {d.name: d for d in search_space(target, {})}
    # Declared by the plugins: latent_dim and lam are searched over their declared ranges.
    assert dims["model.latent_dim"].distribution == IntDistribution(2, 64)
    assert dims["objective.lam"].distribution == FloatDistribution(0.0, 2.0)
    # Set explicitly by the suite: fixed. The learning rate stays the budget's unless asked.
    assert dims["model.hidden"].distribution is None and dims["model.hidden"].value == 16
    assert dims["budget.lr"].distribution is None

    space_file = workdir / "space.toml"
    space_file.write_text(
        "[model]\nlatent_dim = { low = 2, high = 8 }\n"
        "hidden = { low = 16, high = 64, log = true }\n"
        "[objective.free-bits]\nlam = 0.25\n"
        "[budget]\nlr = { low = 1e-4, high = 1e-2, log = true }"
    )
    space = load_space_file(space_file)
    check_space(space, [target], "space.toml")
    dims = {d.name: d for d in search_space(target, space)}
    assert dims["model.latent_dim"].distribution == IntDistribution(2, 8)
    assert dims["model.hidden"].distribution == IntDistribution(16, 64, log=True)
    assert dims["objective.lam"].distribution is None and dims["objective.lam"].value == 0.25
    assert dims["budget.lr"].distribution == FloatDistribution(1e-4, 1e-2, log=True)

    space_file.write_text("[model]\nlatent_dims = 4\n")
    with pytest.raises(ConfigError, match="did you mean 'latent_dim'"):
        check_space(load_space_file(space_file), [target], "space.toml")
    # Neither a range nor a fixed value may leave a parameter's validity bounds.
    for text in ("latent_dim = { low = 0, high = 8 }", "latent_dim = -3"):
        space_file.write_text(f"[model]\n{text}\n")
        with pytest.raises(ConfigError, match=r"--space: model.latent_dim: must be >= 1"):
            search_space(target, load_space_file(space_file))


# ---- tuning, pruning, tuned leaderboards -----------------------------------------------------


def test_tune_reports_epochs_and_tuned_leaderboard_states_budget(tiny, workdir, capsys):
    code, out, err = run_cli(
        capsys,
        "tune",
        "--suite",
        str(tiny),
        "--n-trials",
        "3",
        "--sampler-seed",
        "1",
        "--device",
        "cpu",
    )
    assert code == 0, err
    name = "tiny/custom/digits/mlp-vae/free-bits"
    assert f"{name}: 3 trials" in out
    study = journal_study(workdir, name)
    trials = study.get_trials()
    assert counts(trials)["done"] == 3 and len(trials) == 3
    for t in trials:
        assert Path(t.user_attrs["run_dir"], "record.json").exists()
        if t.state == TrialState.COMPLETE:
            # One validation -ELBO per epoch went to the pruner; the value is the best one.
            assert sorted(t.intermediate_values) == [1, 2]  # epoch numbers, as in the logs
            assert t.value == min(t.intermediate_values.values())

    code, out, err = run_cli(
        capsys,
        "leaderboard",
        "--suite",
        str(tiny),
        "--tuned",
        "--device",
        "cpu",
        "--out",
        str(workdir / "lb"),
    )
    assert code == 0, err
    # Its log off a terminal: whole lines, never wrapped at 80 columns.
    assert any("training trial" in ln and ln.endswith("with seed 0") for ln in err.splitlines())
    md = (workdir / "lb" / "tiny-tuned.custom.md").read_text()
    assert "Tuning budget" in md and "3 trials (" in md
    best = study.best_trial
    assert f"latent_dim={best.params['model.latent_dim']}" in md
    # Re-trained with the suite's full protocol: NLL (IW, K from the suite) is on the board.
    assert "NLL (IW): iw_samples=5" in md
    for stem in ("nll-mi", "nll-kl", "au", "curves"):
        assert f"(tiny-tuned.custom.{stem}.png)" in md
        for ext in ("png", "svg"):
            assert (workdir / "lb" / f"tiny-tuned.custom.{stem}.{ext}").stat().st_size > 0


def test_multi_objective_keeps_pareto_set_and_board_has_a_row_per_point(
    tiny, workdir, capsys, monkeypatch
):
    monkeypatch.setenv("BENCH_DISABLE_PLUGINS", "plots")  # figures: see test_plots.py
    tiny.write_text(tuning_suite("tiny", epochs=1))
    args = ["--suite", str(tiny), "--multi-objective", "--device", "cpu"]
    code, out, err = run_cli(capsys, "tune", *args, "--n-trials", "2", "--sampler-seed", "3")
    assert code == 0, err
    name = "tiny/custom/digits/mlp-vae/free-bits/nll-mi"
    assert f"{name}: 2 trials (2 finished" in out and "Pareto set: trials" in out
    study = journal_study(workdir, name)
    assert [d.name for d in study.directions] == ["MINIMIZE", "MAXIMIZE"]
    for t in study.trials:  # validation IW-NLL and MI of the trained model
        assert len(t.values) == 2 and t.values[0] == t.user_attrs["val_nll"] > 0
        assert math.isfinite(t.values[1])

    code, out, err = run_cli(capsys, "leaderboard", *args, "--tuned", "--out", str(workdir / "lb"))
    assert code == 0, err
    md = (workdir / "lb" / "tiny-tuned.custom.md").read_text()
    for t in study.best_trials:
        assert f"| free-bits [trial {t.number}] |" in md
    assert "Plots:" not in md


class Explode(Objective):
    """The ELBO, multiplied by NaN when ``diverge`` is set: a trial that diverges."""

    def __init__(self, diverge: bool) -> None:
        self.diverge = diverge

    def __call__(self, log_px, kl, step):
        loss = (-log_px + kl.sum(-1)).mean()
        return loss * float("nan") if self.diverge else loss


class ExplodePlugin:
    @hookimpl
    def register_objectives(self, register):
        register(
            ObjectiveSpec(
                "explode",
                lambda budget, diverge: Explode(diverge),
                params={"diverge": Param(False, choices=(False, True))},
            )
        )


def test_nan_trial_is_recorded_failed_with_reason_and_study_goes_on(
    workdir, fresh_plugins, capsys, monkeypatch
):
    monkeypatch.delenv("BENCH_TUNE_STORAGE", raising=False)
    plugins.register_plugin(ExplodePlugin(), "explode-test")
    path = workdir / "nan.toml"
    path.write_text(tuning_suite("nan", objective="explode"))
    space = workdir / "space.toml"
    space.write_text("[model]\nlatent_dim = 4\n")  # only `diverge` is searched
    name = "nan/custom/digits/mlp-vae/explode"
    store = open_storage(None, workdir / "results")
    study = optuna.create_study(study_name=name, storage=store.storage)
    study.enqueue_trial({"objective.diverge": True})
    study.enqueue_trial({"objective.diverge": False})
    code, out, err = run_cli(
        capsys,
        "tune",
        "--suite",
        str(path),
        "--n-trials",
        "2",
        "--space",
        str(space),
        "--device",
        "cpu",
        "--pruner",
        "none",
    )
    assert code == 0, err
    first, second = journal_study(workdir, name).get_trials()
    assert first.params["objective.diverge"] is True and first.state == TrialState.FAIL
    assert first.user_attrs["status"] == "failed"
    assert "diverged" in first.user_attrs["reason"] and "nan" in first.user_attrs["reason"]
    assert second.state == TrialState.COMPLETE
    assert f"{name}: 2 trials (1 finished, 0 pruned, 1 failed)" in out


def test_a_trial_with_the_values_of_an_ended_one_is_not_trained_again(tiny, workdir, capsys):
    space = workdir / "space.toml"
    space.write_text("[model]\nlatent_dim = 4\n")  # only lam is searched
    name = "tiny/custom/digits/mlp-vae/free-bits"
    store = open_storage(None, workdir / "results")
    study = optuna.create_study(study_name=name, storage=store.storage)
    study.enqueue_trial({"objective.lam": 0.5})
    study.enqueue_trial({"objective.lam": 0.5})  # what samplers do in small spaces
    args = ["--suite", str(tiny), "--n-trials", "2", "--space", str(space), "--device", "cpu"]
    code, out, err = run_cli(capsys, "tune", *args, "--pruner", "none")
    assert code == 0, err
    first, second = journal_study(workdir, name).get_trials()
    assert first.state == second.state == TrialState.COMPLETE and second.value == first.value
    assert second.user_attrs["same_as_trial"] == 0
    assert second.user_attrs["run_dir"] == first.user_attrs["run_dir"]  # its run, trained once
    assert not Path(first.user_attrs["run_dir"]).with_name("trial-00001").exists()
    assert "trial 1 (lam=0.5): the values of trial 0; its result reused" in err
    assert f"{name}: 2 trials (2 finished" in out
    # One format for parameter values and metric values in the trial lines and the summary.
    summary = next(ln for ln in out.splitlines() if ln.startswith(name))
    assert (
        "(trial 0: lam=0.5)" in summary and f"trial 0 (lam=0.5): val -ELBO {first.value:.2f}" in err
    )
    assert f"best val -ELBO {first.value:.2f} " in summary


def test_the_dashboard_is_advertised_only_where_it_is_installed(monkeypatch, workdir):
    import shutil

    from bench.tune.command import dashboard_hint

    store = open_storage(None, workdir / "results")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert "pip install 'collapse-bench[dashboard]'" in dashboard_hint(store)
    monkeypatch.setattr(shutil, "which", lambda name: f"/bin/{name}")
    assert dashboard_hint(store).startswith("open them with: optuna-dashboard ")
    extras = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert 'dashboard = ["optuna-dashboard' in extras


# ---- resuming a killed `bench tune` ----------------------------------------------------------


def running_mid_trial(storage, name: str, at_most: int | None = None):
    """A RUNNING trial that already reported an epoch (and at most ``at_most``, so that it
    still has epochs to train when it is acted on), once another trial has finished."""
    loaded: list[optuna.Study] = []

    def check():
        if not loaded:
            try:
                loaded.append(optuna.load_study(study_name=name, storage=storage))
            except KeyError:  # the study is not created yet
                return None
        trials = loaded[0].get_trials(deepcopy=False)  # the same storage reads incrementally
        if not any(t.state == TrialState.COMPLETE for t in trials):
            return None
        return next(
            (
                t
                for t in trials
                if t.state == TrialState.RUNNING
                and t.intermediate_values
                and (at_most is None or len(t.intermediate_values) <= at_most)
                and "worker" in t.user_attrs
            ),
            None,
        )

    return check


@pytest.mark.slow
def test_killed_tune_continues_when_run_again(workdir, fresh_plugins, capsys, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.delenv("BENCH_TUNE_STORAGE", raising=False)
    path = workdir / "kill.toml"
    epochs = 40  # a trial caught in its first half is still training when it is killed
    path.write_text(tuning_suite("kill", epochs=epochs))
    args = [
        "tune",
        "--suite",
        str(path),
        "--n-trials",
        "2",
        "--pruner",
        "none",
        "--device",
        "cpu",
        "--quiet",
    ]
    name = "kill/custom/digits/mlp-vae/free-bits"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.cli", *args],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    storage = open_storage(None, workdir / "results").storage
    try:
        victim = wait_for(
            running_mid_trial(storage, name, at_most=epochs // 2),
            "a trial in progress",
            proc,
            timeout=120,
        )
        before = {
            t.number: t.value
            for t in journal_study(workdir, name).get_trials()
            if t.state == TrialState.COMPLETE
        }
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()

    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    trials = journal_study(workdir, name).get_trials()
    c = counts(trials)
    assert c["done"] == 2 and c["lost"] == 1 and c["running"] == c["waiting"] == 0
    killed = trials[victim.number]
    assert killed.state == TrialState.FAIL and "died" in killed.user_attrs["reason"]
    [retry] = [t for t in trials if t.system_attrs.get("failed_trial") == victim.number]
    assert retry.state == TrialState.COMPLETE and retry.params == victim.params
    # Work done before the kill is kept: finished trials are untouched, and the retry resumed
    # from the killed trial's checkpoint (its epoch log has every epoch exactly once).
    assert all(trials[n].value == v for n, v in before.items())
    log = Path(retry.user_attrs["run_dir"], "epochs.jsonl").read_text().splitlines()
    assert Path(retry.user_attrs["run_dir"]).name == f"trial-{victim.number:05d}"
    assert [int(ln.split('"epoch": ')[1].split(",")[0]) for ln in log] == list(range(1, epochs + 1))


# ---- user errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--storage", "postgresql+psycopg://bench:s3cret@db:notaport/x"], "cannot parse"),
        (["--storage", "mysql://bench:s3cret@localhost/x"], "not supported"),
        (["--storage", "postgresql+psycopg://bench:s3cret@127.0.0.1:1/x"], "cannot reach"),
        (["--model", "mlp-vea"], "did you mean 'mlp-vae'"),
    ],
)
def test_bad_input_exits_2_with_one_line(tiny, capsys, extra, expected):
    code, out, err = run_cli(capsys, "tune", "--suite", str(tiny), "--n-trials", "1", *extra)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0]
    assert "s3cret" not in out + err


# ---- several workers on one PostgreSQL study --------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(POSTGRES_ENV not in os.environ, reason=f"{POSTGRES_ENV} is not set")
def test_postgres_workers_finish_exact_trials_and_retry_a_killed_one(
    workdir, fresh_plugins, monkeypatch
):
    url = os.environ[POSTGRES_ENV]
    suite = f"pg{uuid.uuid4().hex[:8]}"  # a fresh study in a database that may hold others
    path = workdir / "pg.toml"
    # Enough epochs that a trial caught in its first half is still training when it is killed
    # (a trial is a fraction of a second on an idle machine).
    epochs = 40
    path.write_text(tuning_suite(suite, epochs=epochs))
    name = f"{suite}/custom/digits/mlp-vae/free-bits"
    n_trials = 3
    env = {**os.environ, "BENCH_TUNE_STORAGE": url, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.cli",
            "tune",
            "--suite",
            str(path),
            "--workers",
            "2",
            "--n-trials",
            str(n_trials),
            "--pruner",
            "none",
            "--heartbeat",
            "1",
            "--grace",
            "3",
            "--device",
            "cpu",
        ],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    store = open_storage(url, workdir / "results")
    try:
        victim = wait_for(
            running_mid_trial(store.storage, name, at_most=epochs // 2),
            "a trial in progress",
            proc,
            timeout=120,
        )
        pid = int(victim.user_attrs["worker"].rsplit(":", 1)[1])
        os.kill(pid, signal.SIGKILL)  # one of the two workers dies mid-trial
        output, _ = proc.communicate(timeout=180)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, output
    # The password is in no output and in no file the run wrote.
    password = make_url(url).password
    assert password and password not in output
    for f in (workdir / "results").rglob("*"):
        assert not f.is_file() or password.encode() not in f.read_bytes(), f

    trials = optuna.load_study(study_name=name, storage=store.storage).get_trials()
    c = counts(trials)
    # Exactly the requested number of finished trials: none lost, none run twice.
    assert c["done"] == n_trials and c["running"] == c["waiting"] == 0
    killed = trials[victim.number]
    assert killed.state == TrialState.FAIL and "status" not in killed.user_attrs
    counted = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    origins = [t.system_attrs.get("failed_trial", t.number) for t in counted]
    assert len(origins) == len(set(origins)) == n_trials
    # The other worker took the dead worker's trial over, with the same parameters.
    [retry] = [t for t in counted if t.system_attrs.get("failed_trial") == victim.number]
    assert retry.params == victim.params
    assert retry.user_attrs["worker"] != victim.user_attrs["worker"]
