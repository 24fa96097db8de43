"""One grammar for the command line: `bench` alone, singular and plural kinds, `bench show run`,
`bench rm`, `bench leaderboard` on stdout (table, JSON, CSV), errors that say which suites and
scales have results, boards that never write over the committed ones, `--set` boards."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from bench import leaderboard as lb
from bench.boards import SET_SUFFIX, suite_boards
from bench.suites import Budget
from tests.helpers.cli import assert_user_error, run_cli
from tests.helpers.records import record

SUITE_TOML = """
name = "s"
[[group]]
name = "g"
datasets = ["digits"]
models = ["mlp-vae", "mlp-skip-vae"]
objectives = ["elbo"]
"""


def put_run(results: Path, rec: dict, scale: str = "custom", epochs: int = 2) -> Path:
    """A finished run folder as the runner leaves it: record and epoch log."""
    folder = results / "s" / scale / rec["run_id"]
    folder.mkdir(parents=True)
    (folder / "record.json").write_text(json.dumps(rec))
    lines = [
        {"epoch": e, "train_loss": 30.0 - e, "val_au": e, "val_kl": 0.5} for e in range(epochs)
    ]
    (folder / "epochs.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return folder


@pytest.fixture
def results(workdir, fresh_plugins):
    (workdir / "s.toml").write_text(SUITE_TOML)
    folder = workdir / "results"
    put_run(folder, record())
    put_run(folder, record(model="mlp-skip-vae", metrics={"nll": 88.0}))
    return folder


def test_bench_alone_shows_the_help(capsys):
    code, out, err = run_cli(capsys)
    assert code == 0 and "Usage: bench" in out and "Commands:" in out and not err


@pytest.mark.parametrize("kind", ["model", "models", "Models"])
def test_kinds_are_singular_or_plural_everywhere(capsys, fresh_plugins, kind):
    code, out, _ = run_cli(capsys, "ls", kind)
    assert code == 0 and "mlp-skip-vae" in out
    code, out, _ = run_cli(capsys, "show", kind, "mlp-vae")
    assert code == 0 and "latent_dim" in out


def test_an_unknown_kind_names_the_kinds(capsys, fresh_plugins):
    assert_user_error(capsys, ["show", "modle", "mlp-vae"], "did you mean 'models'", "suites")


def test_show_run_prints_settings_metrics_epochs_and_error(capsys, results):
    code, out, _ = run_cli(capsys, "show", "run", "g__digits__mlp-vae__elbo__s0")
    assert code == 0, out
    assert "status: finished" in out and "settings (resolved)" in out and "latent_dim=20" in out
    assert "4 / 8" in out and "nll" in out  # AU as everywhere else
    epochs = out.split("epochs")[-1].splitlines()
    assert any(ln.split()[:2] == ["1", "30.00"] for ln in epochs)  # numbered from 1
    failed = record(model="mlp-vae", seed=3, status="failed")
    failed["error"] = {"type": "ValueError", "message": "boom", "plugin": "vae", "log": "error.log"}
    put_run(results, failed)
    code, out, _ = run_cli(capsys, "show", "runs", "s/custom/g__digits__mlp-vae__elbo__s3")
    assert code == 0 and "error in plugin vae" in out and "ValueError: boom" in out
    assert_user_error(capsys, ["show", "run", "g__digits__mlp-vae__elbo__s9"], "did you mean")


def test_rm_lists_first_and_removes_with_yes(capsys, results):
    run = results / "s" / "custom" / "g__digits__mlp-vae__elbo__s0"
    code, out, _ = run_cli(capsys, "rm", "--suite", "s", "--model", "mlp-vae")
    assert code == 0 and "would remove 1 run" in out and run.name in out and "--yes" in out
    assert run.is_dir()  # a dry run by default
    code, out, _ = run_cli(capsys, "rm", run.name, "--yes")
    assert code == 0 and "removed 1 run" in out and not run.exists()
    assert (results / "s" / "custom" / "g__digits__mlp-skip-vae__elbo__s0").is_dir()
    assert_user_error(capsys, ["rm"], "name runs")
    assert_user_error(capsys, ["rm", "--suite", "s", "--set-only"], "no runs of suite s")


def test_leaderboard_prints_its_table_and_json_or_csv_for_scripts(capsys, results, workdir):
    code, out, err = run_cli(capsys, "leaderboard", "--suite", "s.toml", "--scale", "custom")
    assert code == 0, err
    assert "s/custom: digits" in out and "mlp-skip-vae" in out and "NLL (IW) ↓" in out
    assert "results/leaderboards/s.md" in err  # where the files went
    code, out, err = run_cli(capsys, "leaderboard", "--suite", "s.toml", "--format", "json")
    assert code == 0, err
    (board,) = json.loads(out)  # stdout holds nothing else
    assert board["suite"] == "s" and board["rows"][0]["nll"]["mean"] == 88.0
    assert board["rows"][0]["au"] == {"mean": 4.0, "of": 8.0}
    code, out, err = run_cli(capsys, "leaderboard", "--suite", "s.toml", "--format", "csv")
    assert code == 0 and out.splitlines()[0].startswith("dataset,model,objective")


def test_no_results_names_the_suites_and_scales_that_have_them(capsys, results, workdir):
    (workdir / "results" / "collapse" / "smoke" / "r").mkdir(parents=True)
    (workdir / "results" / "collapse" / "smoke" / "r" / "record.json").write_text("{}")
    assert_user_error(
        capsys,
        ["leaderboard", "--suite", "collapse"],
        "no results for suite 'collapse' at scale 'quick'",
        "collapse (smoke), s (custom)",
    )


def test_boards_go_under_the_results_folder_not_the_committed_ones(workdir, monkeypatch):
    monkeypatch.delenv(lb.LEADERBOARD_DIR_ENV, raising=False)
    assert lb.leaderboard_dir() == Path("results/leaderboards")
    assert lb.leaderboard_dir(None, workdir / "r") == workdir / "r" / "leaderboards"
    assert lb.leaderboard_dir("leaderboards") == Path("leaderboards")  # asked for: there
    monkeypatch.setenv(lb.LEADERBOARD_DIR_ENV, "elsewhere")
    assert lb.leaderboard_dir(None, workdir / "r") == Path("elsewhere")


def test_set_runs_get_a_board_of_their_own_and_plain_rows_keep_their_names(fresh_plugins):
    plain = [record(), record(model="mlp-skip-vae")]
    varied = record(model="mlp-skip-vae", budget=Budget(epochs=1))
    varied["cell"]["overrides"] = ["budget.epochs=1"]
    varied["run_id"] += "__set-abc123"
    main, other = suite_boards([*plain, varied], "s", "custom")
    assert sorted(main.table["model_label"]) == ["mlp-skip-vae", "mlp-vae"]
    assert other.suite == "s" + SET_SUFFIX
    assert sorted(other.table["model_label"]) == [
        "mlp-skip-vae (budget.epochs=1)",
        "mlp-skip-vae (budget.epochs=10)",
    ]
    (only,) = suite_boards([varied], "s", "custom")  # no plain runs: only the --set board
    assert only.suite == "s-set" and isinstance(only.table, pl.DataFrame)
