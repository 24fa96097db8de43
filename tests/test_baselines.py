"""The leaderboard's intervals and its paired differences against a group's baseline."""

from __future__ import annotations

import math
from unittest.mock import MagicMock

import polars as pl
import pytest

from bench import leaderboard as lb
from bench import plugins
from bench.baselines import baseline_of, suite_baselines
from bench.errors import ConfigError
from bench.intervals import t_interval, t_quantile
from bench.records import write_record
from bench.reporters import _write_csv, markdown
from bench.suites import load_suite_file, remember_suite
from tests.helpers.records import record
from tests.helpers.suites import group_toml, suite_toml

ELBO = {0: 91.0, 1: 92.0, 2: 90.0}
ANNEAL = {0: 89.0, 1: 90.2, 2: 87.9}  # ELBO's seeds minus 2.0, 1.8, 2.1


def _seeds(objective: str, nll: dict[int, float], **kw) -> list[dict]:
    return [
        record(objective=objective, seed=s, metrics={"nll": v, "kl": 3.0 + s}, **kw)
        for s, v in nll.items()
    ]


def _rows(board: lb.Leaderboard) -> dict[str, dict]:
    return {r["objective"]: r for r in board.table.iter_rows(named=True)}


def test_rows_show_a_95_interval_and_one_seed_rows_none():
    board = lb.build(_seeds("elbo", ELBO) + _seeds("free-bits", {0: 95.0}), "s", "custom")
    rows = _rows(board)
    want = t_interval(list(ELBO.values()))
    assert rows["elbo"]["nll_n"] == 3
    assert rows["elbo"]["nll_ci_low"] == pytest.approx(want.low)
    assert rows["elbo"]["nll_ci_high"] == pytest.approx(want.high)
    assert rows["free-bits"]["nll_ci_low"] is None and rows["free-bits"]["nll_n"] == 1
    text = markdown(board)
    half = t_quantile(2) * 1.0 / math.sqrt(3)
    assert f"| 91.00 ± {half:.2f} |" in text and "| 95.00 |" in text
    assert "95% Student-t interval" in text and "no interval exists" in text
    assert "Against the baseline" not in text  # no group names one


def test_objective_baseline_gives_paired_differences(tmp_path):
    records = _seeds("elbo", ELBO) + _seeds("kl-anneal", ANNEAL) + _seeds("free-bits", {1: 95.0})
    board = lb.build(records, "s", "custom", baselines={"g": {"objective": "elbo"}})
    rows = _rows(board)
    anneal = rows["kl-anneal"]
    assert anneal["baseline"] == "mlp-vae / elbo" and rows["elbo"]["baseline"] is None
    diffs = [ANNEAL[s] - ELBO[s] for s in ELBO]
    want = t_interval(diffs)
    assert anneal["nll_diff"] == pytest.approx(want.mean) and anneal["nll_diff_n"] == 3
    assert anneal["nll_diff_low"] == pytest.approx(want.low)
    # 8 of the 9 (kl-anneal run, ELBO run) pairs have the lower NLL: 90.2 does not beat 90.0.
    assert anneal["nll_poi"] == pytest.approx(8 / 9)
    assert anneal["kl_diff"] == 0.0 and anneal["kl_poi"] == 0.5
    # One matched seed (1): a difference, no interval, no probability of improvement.
    assert rows["free-bits"]["nll_diff"] == 3.0 and rows["free-bits"]["nll_diff_low"] is None
    assert rows["free-bits"]["nll_poi"] is None
    text = markdown(board)
    assert "Against the baseline (seeds: those both rows ran):" in text
    assert f"| -1.97 ± {want.half_width:.2f} * (P 0.89) |" in text
    assert "| mlp-vae | free-bits | mlp-vae / elbo | 1 | +3.00 |" in text
    _write_csv(board, tmp_path)
    csv = pl.read_csv(tmp_path / "s.csv")
    assert {"baseline", "nll_diff", "nll_diff_low", "nll_diff_high", "nll_poi"} <= set(csv.columns)


def test_model_baseline_matches_the_other_settings_and_refuses_ambiguity():
    skip = [record("mlp-skip-vae", seed=s, metrics={"nll": 88.0 + s}) for s in (0, 1)]
    plain = [record("mlp-vae", seed=s, metrics={"nll": 90.0 + s}) for s in (0, 1)]
    board = lb.build(skip + plain, "s", "custom", baselines={"g": {"model": "mlp-vae"}})
    row = next(r for r in board.table.iter_rows(named=True) if r["model"] == "mlp-skip-vae")
    assert row["nll_diff"] == -2.0 and row["nll_diff_low"] == row["nll_diff_high"] == -2.0
    # Two plain VAEs that differ in a model parameter both fit: no baseline is guessed.
    wide = [record("mlp-vae", seed=0, model_params={"latent_dim": 64}, metrics={"nll": 80.0})]
    board = lb.build(skip + plain + wide, "s", "custom", baselines={"g": {"model": "mlp-vae"}})
    row = next(r for r in board.table.iter_rows(named=True) if r["model"] == "mlp-skip-vae")
    assert row.get("baseline") is None


def test_a_baseline_comes_from_the_rows_group_with_the_same_settings():
    from bench.suites import Budget

    other_group = _seeds("elbo", ELBO)
    for r in other_group:
        r["cell"]["group"] = "h"
    board = lb.build(
        other_group + _seeds("kl-anneal", ANNEAL), "s", "custom", {}, {"g": {"objective": "elbo"}}
    )
    assert "baseline" not in board.table.columns
    longer = _seeds("elbo", ELBO, budget=Budget(epochs=20))  # another budget: not the baseline
    board = lb.build(
        longer + _seeds("kl-anneal", ANNEAL), "s", "custom", (), {"g": {"objective": "elbo"}}
    )
    assert "baseline" not in board.table.columns
    key = ("d", "m", "o", "f")
    assert baseline_of(key, {"objective": "o"}, {key: {}}, {key}) is None  # itself a baseline


def test_paper_and_remedies_scales_name_their_baselines(fresh_plugins):
    collapse = suite_baselines("collapse", "paper")
    assert collapse["mlp"] == {"model": "mlp-vae-ref"}
    assert collapse["lstm-ptb"] == {"model": "lstm-vae-ref"}
    assert collapse["pixelcnn"] == {"model": "pixelcnn-vae-ref"}
    remedies = suite_baselines("remedies", "paper")
    assert all(v == {"objective": "elbo"} for v in remedies.values())
    # Every remedies paper group (one per reference protocol) trains ELBO as its baseline.
    groups = plugins.registries().suites.get("remedies").groups["paper"]
    assert set(remedies) == {g.name for g in groups} >= {"lstm-ptb", "lstm-yahoo", "pixelcnn"}
    suite = plugins.registries().suites.get("collapse")
    for group in suite.groups["paper"]:
        assert len(group.seeds) >= 5, group.name


def test_suite_files_name_a_baseline_and_it_is_checked(tmp_path):
    path = tmp_path / "b.toml"
    head = 'baseline = {objective = "elbo"}\n'
    toml = suite_toml(
        "b", group_toml(objectives=["elbo", "kl-anneal"]).replace("\n", f"\n{head}", 1)
    )
    path.write_text(toml)
    suite = load_suite_file(path)
    assert suite.groups["custom"][0].baseline == {"objective": "elbo"}
    for bad, message in (
        ('baseline = {objective = "iwae"}', "not in the group's objectives"),
        ('baseline = {dataset = "digits"}', "is not model or objective"),
    ):
        path.write_text(toml.replace(head.strip(), bad))
        with pytest.raises(ConfigError, match=message):
            load_suite_file(path)


def test_a_suite_file_baseline_reaches_boards_built_from_its_results(tmp_path):
    path = tmp_path / "b.toml"
    group = group_toml(objectives=["elbo", "kl-anneal"])
    path.write_text(suite_toml("b", group.replace("\n", '\nbaseline = {objective = "elbo"}\n', 1)))
    results = tmp_path / "results"
    remember_suite(load_suite_file(path), results)
    for r in _seeds("elbo", ELBO) + _seeds("kl-anneal", ANNEAL):
        write_record(results / "b" / "custom" / f"{r['run_id']}" / "record.json", r)
    records = lb.load_records(results, "b", "custom")
    assert _rows(lb.build(records, "b", "custom"))["kl-anneal"]["baseline"] == "mlp-vae / elbo"


def test_plots_draw_the_interval_as_error_bars():
    from bench.plots import _draw_points

    board = lb.build(_seeds("elbo", ELBO), "s", "custom")
    row = board.table.row(0, named=True)
    ax = MagicMock()
    _draw_points(ax, [row], "kl", lambda r: {"color": "C0"})
    kwargs = ax.errorbar.call_args.kwargs
    assert kwargs["yerr"] == pytest.approx(row["nll_ci_high"] - row["nll_mean"])
    assert kwargs["xerr"] == pytest.approx(row["kl_ci_high"] - row["kl_mean"])
