"""One format per quantity: metric values, counts out of D, durations, epochs, parameter values
and labels, the same in logs, tables, plots and `bench show`."""

from __future__ import annotations

import io

import pytest

from bench import leaderboard as lb
from bench.console import RunConsole
from bench.formats import count_text, duration_text, metric_text, number_text, param_text
from bench.reporters import cell_text, markdown
from bench.suites import Budget
from bench.tune.trials import params_text
from tests.helpers.cli import run_cli
from tests.helpers.records import record


def test_numbers_counts_and_durations_have_one_form():
    assert number_text(0.87654) == "0.877" and number_text(104.876) == "104.88"
    assert number_text(8) == "8" and number_text(5.0) == "5.00"  # an int is a count
    assert number_text(-0.0001) == "0.000"  # no "-0.000"
    assert count_text(2, 8) == "2 / 8" and count_text(19.5, 20) == "19.50 / 20"
    assert metric_text(2, {"of": 8}) == "2 / 8"  # the log's AU reads as the table's
    assert metric_text(0.877, {"dims": 20}) == "0.877"  # an accuracy is no count
    assert duration_text(0.04) == "0.0s" and duration_text(42) == "42s"
    assert duration_text(282) == "4m42s" and duration_text(7300) == "2h01m"
    # Tuning logs, its summary, row labels and `bench show` print a value the same way.
    assert param_text(0.0399483) == "0.03995"
    assert params_text({"objective.lam": 0.0399483, "model.latent_dim": 8}) == (
        "lam=0.03995, latent_dim=8"
    )


def test_accuracy_on_the_active_units_is_not_a_fraction_and_counts_have_no_decimals(
    fresh_plugins,
):
    rec = record(metrics={"probe_active_acc": 0.877, "collapsed": 8, "none": 0})
    rec["metrics"]["probe_active_acc"]["settings"] = {"dims": 20, "threshold": 0.01}
    board = lb.build([rec], "s", "custom")
    row = next(board.table.iter_rows(named=True))
    cols = {c.name: c for c in board.columns}
    assert cell_text(row, cols["probe_active_acc"]) == "0.877"  # not "0.877 / 20"
    assert cell_text(row, cols["collapsed"]) == "8"  # an int metric: not "8.00"
    assert cell_text(row, cols["none"]) == "0"  # not "0.000"
    assert cell_text(row, cols["au"]) == "4 / 8"
    assert cell_text(row, cols["kl"]) == "3.00"  # a float that happens to be whole stays one
    text = markdown(board)
    assert "total run wall time 1s" in text  # not "0.0 min"


def test_epoch_lines_count_from_one_and_print_au_as_the_tables_do():
    from bench import MetricValue
    from bench.listener import EpochResult
    from bench.runner.listeners import EpochLines

    lines: list[str] = []
    run = type("Run", (), {})()
    run.cell = type("Cell", (), {"run_id": "r", "budget": Budget(epochs=4)})()
    run.state = type("State", (), {"stop_reason": None})()
    metrics = {"au": MetricValue(2, {"of": 8}), "kl": MetricValue(0.1234, {})}
    result = EpochResult(epoch=0, score=1.0, metrics=metrics, entry={"train_loss": 27.4912})
    EpochLines(lines.append).on_epoch_end(run, result)
    assert lines == ["r epoch 1 of 4: loss 27.49, val au 2 / 8, val kl 0.123"]


def test_a_warm_up_length_never_reads_like_the_budget(fresh_plugins):
    def rec(objective_epochs: float, budget_epochs: int) -> dict:
        r = record(objective="kl-anneal", budget=Budget(epochs=budget_epochs))
        r["resolved"]["objective"] = {"epochs": objective_epochs}
        r["fingerprint"] = f"{objective_epochs}-{budget_epochs}"
        return r

    board = lb.build([rec(2.0, 4), rec(1.0, 1)], "s", "custom")
    labels = set(board.table["objective_label"].to_list()) | set(board.table["model_label"])
    assert "kl-anneal (objective.epochs=2)" in labels and "mlp-vae (budget.epochs=1)" in labels


def test_ls_and_show_print_brackets_as_text(capsys, fresh_plugins):
    code, out, _ = run_cli(capsys, "ls", "metrics")
    assert code == 0 and "Var_x E[z|x]" in out.replace("\n", " ")
    code, out, _ = run_cli(capsys, "show", "metric", "au")
    assert code == 0 and "E[z|x]" in out


def test_logs_are_whole_lines_off_a_terminal():
    err = io.StringIO()
    long = "x" * 300
    RunConsole(err=err).log(long)
    assert err.getvalue().rstrip("\n").endswith(long) and err.getvalue().count("\n") == 1


@pytest.mark.parametrize("value", [0.5, 1e-4, 3])
def test_show_prints_parameter_values_as_labels_do(value):
    from bench.describe import _number

    assert _number(value) == param_text(value)
