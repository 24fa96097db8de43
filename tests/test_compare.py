"""``bench compare A B``: rows matched by fingerprint, B - A with intervals, --fail-on, --json."""

from __future__ import annotations

import json

import pytest

from bench import leaderboard as lb
from bench.compare import compare, load_side, parse_threshold
from bench.intervals import t_interval, welch_difference
from bench.records import write_record
from bench.reporters import _write_csv, _write_parquet
from tests.helpers.cli import assert_user_error, run_cli
from tests.helpers.records import record

BEFORE = {0: 90.0, 1: 93.0, 2: 91.0}
AFTER = {0: 91.0, 1: 94.1, 2: 91.9}  # each seed 1.0, 1.1, 0.9 worse


def _results(folder, nll: dict[int, float], extra: list[dict] = ()) -> str:
    records = [record(seed=s, metrics={"nll": v, "kl": 3.0 + s}) for s, v in nll.items()]
    for r in [*records, *extra]:
        write_record(folder / "s" / "custom" / r["run_id"] / "record.json", r)
    return str(folder)


@pytest.fixture
def two(tmp_path):
    wide = record(model_params={"latent_dim": 64}, metrics={"nll": 80.0})
    wide["run_id"] += "-wide"
    a = _results(tmp_path / "a", BEFORE)
    b = _results(tmp_path / "b", AFTER, [wide])
    return a, b


def test_rows_are_paired_over_their_seeds(two):
    a, b = two
    result = compare(load_side(a), load_side(b))
    (row,) = result.rows
    nll = next(d for d in row.metrics if d.metric == "nll")
    want = t_interval([AFTER[s] - BEFORE[s] for s in BEFORE])
    assert nll.method == "paired" and nll.matched == 3
    assert (nll.diff, nll.low, nll.high) == pytest.approx((want.mean, want.low, want.high))
    assert nll.significant and nll.worse  # higher NLL is worse, beyond noise
    kl = next(d for d in row.metrics if d.metric == "kl")
    assert kl.diff == 0.0 and not kl.significant
    assert result.only_a == [] and result.only_b == ["digits · mlp-vae (latent_dim=64) / elbo"]


def test_fail_on_a_significant_regression_and_json(capsys, two):
    a, b = two
    code, out, _ = run_cli(capsys, "compare", a, b, "--fail-on", "nll:0.5")
    assert code == 1
    assert "| digits · mlp-vae / elbo | NLL (IW) ↓ | 91.33 | 92.33 | +1.00 ± 0.25 * |" in out
    assert "worse" in out and "Only in B (1):" in out and "Regressions (1):" in out
    assert run_cli(capsys, "compare", a, b, "--fail-on", "nll:2")[0] == 0  # within 2 nats
    assert run_cli(capsys, "compare", a, b, "--fail-on", "nll:0.5%")[0] == 1
    assert run_cli(capsys, "compare", b, a, "--fail-on", "nll:0.5")[0] == 0  # an improvement
    code, out, _ = run_cli(capsys, "compare", a, b, "--json", "--fail-on", "nll:0.5")
    data = json.loads(out)
    assert code == 1 and len(data["regressions"]) == 1 and len(data["only_b"]) == 1
    nll = data["rows"][0]["metrics"]["nll"]
    assert nll["method"] == "paired" and nll["worse"] and nll["diff"] == pytest.approx(1.0)
    assert data["rows"][0]["fingerprint"] == record()["fingerprint"]


def _board_file(tmp_path, name: str, suffix: str):
    """The leaderboard of results folder ``name``, written as ``s<suffix>``, and its row."""
    board = lb.build(lb.load_records(tmp_path / name, "s", "custom"), "s", "custom")
    out = tmp_path / f"boards-{name}"
    (_write_parquet if suffix == ".parquet" else _write_csv)(board, out)
    fingerprint = record()["fingerprint"]
    row = next(r for r in board.table.iter_rows(named=True) if r["fingerprint"] == fingerprint)
    return out / f"s{suffix}", row


def test_leaderboard_files_compare_by_their_summaries(tmp_path, two):
    a, _ = two
    path_a, row_a = _board_file(tmp_path, "a", ".parquet")
    path_b, row_b = _board_file(tmp_path, "b", ".csv")
    result = compare(load_side(path_a), load_side(path_b))
    nll = next(d for d in result.rows[0].metrics if d.metric == "nll")
    summary = [(r["nll_mean"], r["nll_std"], r["nll_n"]) for r in (row_a, row_b)]
    want = welch_difference(*summary)
    assert nll.method == "welch" and (nll.low, nll.high) == pytest.approx((want.low, want.high))
    assert not nll.significant  # without the pairing, 1 nat is within the seeds' spread
    # A records folder against a leaderboard: Welch as well (one side has no seeds).
    mixed = compare(load_side(a), load_side(path_b))
    assert next(d for d in mixed.rows[0].metrics if d.metric == "nll").method == "welch"


def test_bad_input_is_one_line_and_exit_2(capsys, tmp_path, two):
    a, b = two
    assert_user_error(capsys, ["compare", a, str(tmp_path / "nope")], "no such file or folder")
    (tmp_path / "board.md").write_text("# a board\n")
    assert_user_error(capsys, ["compare", a, str(tmp_path / "board.md")], "not a results folder")
    (tmp_path / "empty").mkdir()
    assert_user_error(capsys, ["compare", a, str(tmp_path / "empty")], "no finished run records")
    assert_user_error(capsys, ["compare", a, b, "--fail-on", "nll"], "METRIC:THRESHOLD")
    assert_user_error(capsys, ["compare", a, b, "--fail-on", "nll:-1"], "METRIC:THRESHOLD")
    assert_user_error(capsys, ["compare", a, b, "--fail-on", "ppl:1"], "no row has it")
    assert_user_error(capsys, ["compare", a, b, "--metrics", "ppl"], "not on both sides")
    assert parse_threshold("nll:1.5%").relative
