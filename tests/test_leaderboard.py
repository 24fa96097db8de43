"""Leaderboards: columns from the registry, rows that compare like with like, settings per data
set, one reading of directions, the saturation flag."""

from __future__ import annotations

import math

import pytest

from bench import MetricSpec, MetricValue, hookimpl, plugins
from bench import leaderboard as lb
from bench.errors import ConfigError
from bench.reporters import markdown
from bench.suites import Budget, EvalSettings
from tests.helpers.records import record


def column_titles(board: lb.Leaderboard) -> list[str]:
    return [f"{c.title} {c.arrow}" for c in board.columns]


def test_every_scalar_metric_is_a_column_in_the_default_order(fresh_plugins, workdir):
    class Plugin:
        @hookimpl
        def register_metrics(self, register):
            register(
                MetricSpec(
                    "sharpness", lambda ctx: MetricValue(0.0), "max", "how sharp", label="Sharp"
                )
            )

    plugins.register_plugin(Plugin(), "sharp")
    r = record(metrics={"sharpness": 0.5, "recon": 80.0, "kl_per_dim": [0.1, 0.2]})
    board = lb.build([r], "s", "custom")
    # Today's columns first, then other metrics by name; lists never become columns.
    assert column_titles(board) == [
        "NLL (IW) ↓",
        "KL ↑",
        "MI ↑",
        "AU ↑",
        "Recon ↓",
        "Sharp ↑",
        "Train ex/s ↑",
    ]
    assert "**Sharp** ↑ how sharp" in markdown(board)
    assert board.table["sharpness_mean"].to_list() == [0.5]


def test_a_suite_chooses_and_orders_columns(fresh_plugins, workdir):
    board = lb.build([record(metrics={"recon": 80.0})], "s", "custom", ["mi", "recon", "nll"])
    assert column_titles(board) == ["MI ↑", "Recon ↓", "NLL (IW) ↓"]
    lb.check_columns(["mi", "train_examples_per_s"])
    with pytest.raises(ConfigError, match="'rcon' is not a metric.*did you mean 'recon'"):
        lb.check_columns(["rcon"])


def test_rows_are_keyed_by_resolved_settings_and_name_what_differs(fresh_plugins, workdir):
    records = [
        record(seed=0, model_params={"latent_dim": 8}, metrics={"nll": 90.0}),
        record(seed=1, model_params={"latent_dim": 8}, metrics={"nll": 92.0}),
        record(seed=0, model_params={"latent_dim": 32}, metrics={"nll": 85.0}),
        # The default latent_dim (20) given explicitly or not is the same setting.
        record(seed=0, model="mlp-skip-vae", metrics={"nll": 88.0}),
        record(seed=1, model="mlp-skip-vae", model_params={"latent_dim": 20}, metrics={"nll": 89}),
    ]
    board = lb.build(records, "s", "custom")
    rows = {r["model_label"]: r for r in board.table.iter_rows(named=True)}
    assert set(rows) == {"mlp-vae (latent_dim=8)", "mlp-vae (latent_dim=32)", "mlp-skip-vae"}
    assert rows["mlp-vae (latent_dim=8)"]["seeds"] == 2
    assert rows["mlp-vae (latent_dim=8)"]["nll_mean"] == pytest.approx(91.0)
    assert rows["mlp-vae (latent_dim=32)"]["seeds"] == 1
    assert rows["mlp-skip-vae"]["seeds"] == 2
    # Parameters travel as columns (CSV, parquet).
    assert rows["mlp-vae (latent_dim=32)"]["model.latent_dim"] == 32
    assert rows["mlp-skip-vae"]["budget.epochs"] == 10
    # A budget difference between rows of one model and objective is named too.
    short = record(budget=Budget(epochs=2), model_params={"latent_dim": 8})
    board = lb.build([records[0], short], "s", "custom")
    assert sorted(board.table["model_label"].to_list()) == [
        "mlp-vae (budget.epochs=10)",
        "mlp-vae (budget.epochs=2)",
    ]


def test_settings_and_notes_per_data_set_say_which_rows(fresh_plugins, workdir):
    records = [
        record(model_params={"latent_dim": 8}, metrics={"nll": 89.0}),
        record(model="mlp-skip-vae", model_params={"latent_dim": 16}),
    ]
    records[1]["metrics"]["au"]["settings"] = {"threshold": 0.01, "of": 16, "n": 300}
    board = lb.build(records, "s", "custom")
    common, varying = board.settings["digits"]["au"]
    assert common == "n=300, threshold=0.01"
    assert sorted(varying) == [("of=16", "mlp-skip-vae"), ("of=8", "mlp-vae")]
    text = markdown(board)
    assert "## digits" in text
    assert "- AU: n=300, threshold=0.01; of=8 (for mlp-vae); of=16 (for mlp-skip-vae)" in text
    assert "- NLL (IW): iw_samples=10, n=300\n" in text
    assert "- Data: sklearn digits; splits as run: train 1,200 / valid 297 / test 300" in text
    # AU is shown out of D.
    assert "| 4 / 8 |" in text and "| 4 / 16 |" in text


def test_directions_are_stated_once_and_used_everywhere(fresh_plugins, workdir):
    board = lb.build([record()], "s", "custom")
    text = markdown(board)
    assert "↓ lower is better (NLL (IW))" in text
    assert "↑ higher is better (KL, MI, AU, Train ex/s)" in text
    assert "KL ↑" in column_titles(board) and "higher = less collapse" in text


def test_values_near_the_ceiling_are_flagged(fresh_plugins, workdir):
    near, far = record(seed=0), record(model="mlp-skip-vae")
    for r, value in ((near, 5.65), (far, 5.0)):
        r["metrics"]["mi"]["value"] = value
        r["metrics"]["mi"]["settings"] = {"n": 300, "log_n": 5.7038, "ceiling": 5.7038}
        r["metrics"]["mi"]["settings"]["ceiling_margin"] = 0.1
    board = lb.build([near, far], "s", "custom")
    flags = dict(zip(board.table["model"], board.table["mi_saturated"], strict=True))
    assert flags == {"mlp-vae": True, "mlp-skip-vae": False}
    text = markdown(board)
    assert "| 5.65 ⚑ |" in text and "| 5.00 |" in text
    assert "⚑ after a value: within its metric's margin" in text
    # The settings line names log N but not the bookkeeping keys.
    assert "log_n=5.7038" in text and "ceiling_margin" not in text


def test_unfinished_runs_are_listed_not_averaged(fresh_plugins, workdir):
    board = lb.build([record(), record(seed=1, status="failed")], "s", "custom")
    assert board.table["seeds"].to_list() == [1]
    assert board.failed[0]["status"] == "failed"
    assert "Runs that did not finish" in markdown(board)


def test_mi_flags_its_ceiling_and_mi_train_lifts_it(fresh_plugins, workdir):
    """Posteriors so sharp and spread that MI reaches log N: on 50 test examples it sits at
    log 50; over 300 training examples (eval.mi_train_size) the ceiling is log 300."""
    import torch

    from bench import LatentVariableModel
    from bench.data import TensorSplit
    from bench.evaluation import EvalContext

    class Sharp(LatentVariableModel):
        latent_dim = 2

        def encode(self, x):
            return x * 50.0, torch.full_like(x, -8.0)

        def log_likelihood(self, x, z):
            return torch.zeros(z.shape[:2])

    g = torch.Generator().manual_seed(0)
    test, train = (TensorSplit(torch.rand(n, 2, generator=g)) for n in (50, 400))
    regs = plugins.registries()

    def ctx(size: int) -> EvalContext:
        settings = EvalSettings(mi_train_size=size, batch_size=100)
        return EvalContext(Sharp(), test, settings, torch.device("cpu"), train=train)

    mi = regs.metrics.get("mi").compute(ctx(300))
    assert mi.settings["ceiling"] == pytest.approx(math.log(50), abs=1e-4)
    assert mi.settings["ceiling_margin"] == 0.1
    assert math.log(50) - 0.1 <= mi.value <= math.log(50) + 1e-9  # saturated
    lifted = regs.metrics.get("mi_train").compute(ctx(300))
    assert lifted.settings["n"] == 300 and lifted.settings["split"] == "train"
    assert lifted.settings["ceiling"] == pytest.approx(math.log(300), abs=1e-4)
    assert lifted.value > mi.value + 1.0
    # Off by default, and pointless where the training split is no larger.
    assert regs.metrics.get("mi_train").compute(ctx(0)).value is None
    assert regs.metrics.get("mi_train").compute(ctx(40)).value is None


def test_a_data_set_table_leaves_out_columns_none_of_its_rows_has(fresh_plugins, workdir):
    text = record(dataset="text-synthetic", model="lstm-vae", metrics={"ppl": 500.0})
    board = lb.build([record(), text], "s", "custom")
    md = markdown(board)
    digits, synthetic = md.split("## digits")[1], md.split("## text-synthetic")[1]
    header = next(ln for ln in digits.splitlines() if ln.startswith("| Model"))
    assert "PPL" not in header
    assert "PPL (IW) ↓" in next(ln for ln in synthetic.splitlines() if ln.startswith("| Model"))
