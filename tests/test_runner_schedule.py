"""Model selection and the learning-rate schedules: selection by validation -ELBO whatever
metrics a cell lists, the reference's sticky decay and its stop when lr falls under a floor."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from bench.runner import CellTraining, EpochResult, RunOptions, train_cell
from bench.runner.listeners import BestEpoch, EarlyStopping, LrDecay
from bench.suites import Budget, EvalSettings, Group, expand

REFERENCE_TEXT = Budget(
    epochs=30,
    optimizer="sgd",
    lr=1.0,
    lr_decay=0.5,
    lr_decay_after=15,
    lr_decay_sticky=True,
    min_lr=0.03,
)


def _cell(budget: Budget, metrics: tuple[str, ...] = ()):
    group = Group(
        "g",
        datasets=("digits",),
        models=("mlp-vae",),
        objectives=("elbo",),
        model_params={"mlp-vae": {"hidden": 16, "latent_dim": 4}},
        budget=budget,
        eval=EvalSettings(iw_samples=2, batch_size=300),
        metrics=metrics,
    )
    return expand("s", "x", [group])[0]


def _reference_lrs(val: list[float], lr: float = 1.0, min_epochs: int = 15) -> list[float]:
    """train_text_skip.py lines 246-270, replayed: the lr after each epoch until the break."""
    best, decay, out = 1e5, False, []
    for epoch, v in enumerate(val, start=1):
        if v < best:
            best = v
        elif epoch >= min_epochs:
            decay = True
        if decay:
            lr *= 0.5
        out.append(lr)
        if decay and lr < 0.03:
            break
    return out


def _harness_lrs(val: list[float], budget: Budget, tmp_path) -> tuple[list[float], str | None]:
    """The run's decision listeners (selection, decay, stopping) fed the validation scores."""
    run = CellTraining(_cell(budget), tmp_path, RunOptions(tmp_path, torch.device("cpu")))
    model = nn.Linear(1, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=budget.lr)
    run.parts = SimpleNamespace(model=model, optimizer=optimizer, method=None)
    decisions = [BestEpoch(), LrDecay(), EarlyStopping()]
    out, reason = [], None
    for epoch, v in enumerate(val):
        for listener in decisions:
            listener.on_epoch_end(run, EpochResult(epoch, v, {}))
        out.append(optimizer.param_groups[0]["lr"])
        reason = run.state.stop_reason
        if reason:
            break
    return out, reason


@pytest.mark.parametrize(
    "val",
    [
        # improves to epoch 16, worse at 17, then improving again: the decay goes on anyway
        [10.0 - 0.1 * e for e in range(16)] + [20.0] + [5.0 - 0.1 * e for e in range(13)],
        # a bad epoch before epoch 15 changes nothing; the first one from 15 on starts it
        [10.0, 11.0, *[9.0 - 0.1 * e for e in range(13)], 9.5, *[1.0] * 14],
        # never worse: no decay, all 30 epochs
        [10.0 - 0.1 * e for e in range(30)],
    ],
)
def test_sticky_decay_and_stop_replay_the_reference_schedule(val, tmp_path):
    ours, reason = _harness_lrs(val, REFERENCE_TEXT, tmp_path)
    expected = _reference_lrs(val)
    assert ours == pytest.approx(expected)
    if expected[-1] < 0.03:
        assert reason and "min_lr" in reason and len(ours) < 30
        assert sum(lr < 1.0 for lr in ours) == 6  # 1 -> 1/64 < 0.03 after six halvings
    else:
        assert reason is None


def test_plateau_decay_halves_only_on_bad_epochs_up_to_max_decays(tmp_path):
    budget = Budget(optimizer="sgd", lr=1.0, lr_decay=0.5, lr_decay_after=0, max_decays=2)
    ours, _ = _harness_lrs([5.0, 6.0, 4.0, 6.0, 6.0, 6.0], budget, tmp_path)
    assert ours == [1.0, 0.5, 0.5, 0.25, 0.25, 0.25]


def test_selection_uses_validation_neg_elbo_when_the_cell_does_not_list_it(tmp_path):
    cell = _cell(Budget(epochs=3, batch_size=100, train_subset=300), metrics=("kl", "au"))
    record = train_cell(cell, tmp_path / "run", RunOptions(tmp_path, torch.device("cpu")))
    lines = [json.loads(ln) for ln in (tmp_path / "run" / "epochs.jsonl").read_text().splitlines()]
    scores = [ln["val_neg_elbo"] for ln in lines]
    assert record["selected_by"] == "val_neg_elbo"
    assert record["best_epoch"] == 1 + min(range(3), key=scores.__getitem__)  # from 1
    assert "neg_elbo" not in record["metrics"]  # computed for selection, not reported


def test_run_stops_once_lr_is_under_the_floor_and_stays_stopped_on_resume(tmp_path):
    budget = Budget(
        epochs=4, batch_size=100, train_subset=200, optimizer="sgd", lr=0.02, min_lr=0.03
    )
    cell = _cell(budget, metrics=("kl",))
    opts = RunOptions(tmp_path, torch.device("cpu"))
    record = train_cell(cell, tmp_path / "run", opts)
    assert record["status"] == "finished" and record["epochs_trained"] == 1
    assert "min_lr" in record["stop_reason"]
    (tmp_path / "run" / "record.json").unlink()  # killed after the checkpoint, before the record
    again = train_cell(cell, tmp_path / "run", RunOptions(tmp_path, opts.device, resume=True))
    assert again["epochs_trained"] == 1
