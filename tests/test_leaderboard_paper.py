"""What a leaderboard says about the paper protocol: bound and IW columns side by side, the
probes, single-seed rows marked, and every data set's notes printed."""

from __future__ import annotations

from bench import leaderboard as lb
from bench.reporters import SINGLE_SEED, markdown


def _record(model: str, seed: int, dataset: str, metrics: dict[str, float]) -> dict:
    return {
        "run_id": f"{model}-{seed}",
        "status": "finished",
        "reason": None,
        "cell": {"dataset": dataset, "model": model, "objective": "elbo", "seed": seed},
        "metrics": {k: {"value": v, "settings": {"n": 10}} for k, v in metrics.items()},
        "train_examples_per_s": 100.0,
        "wall_time_s": 1.0,
        "device_name": "cpu",
        "data_notes": f"notes of {dataset}",
    }


def test_board_marks_single_seed_rows_prints_notes_and_fills_the_bound(fresh_plugins, workdir):
    new = {"nll": 80.0, "nll_bound": 82.0, "neg_elbo": 82.0, "probe_z_acc": 0.5}
    records = [
        *(_record("three", s, "mnist-static", {**new, "nll": 80.0 + s}) for s in (0, 1, 2)),
        _record("one", 0, "omniglot", {"nll": 90.0, "neg_elbo": 93.0}),  # an older record
    ]
    board = lb.build(records, "collapse", "paper")
    rows = {r["model"]: r for r in board.table.iter_rows(named=True)}
    assert rows["three"]["seeds"] == 3 and rows["one"]["seeds"] == 1
    assert rows["one"]["nll_bound_mean"] == 93.0  # -ELBO under the paper's name
    assert board.notes == {
        "mnist-static": [("notes of mnist-static", "")],
        "omniglot": [("notes of omniglot", "")],
    }
    text = markdown(board)
    assert f"| 1 {SINGLE_SEED} |" in text and "| 3 |" in text
    assert "## mnist-static\n\n- Data: notes of mnist-static\n" in text
    assert "## omniglot\n\n- Data: notes of omniglot\n" in text
    header = next(line for line in text.splitlines() if line.startswith("| Model"))
    assert "NLL (IW) ↓" in header and "NLL bound ↓" in header and "Probe z ↑" in header
    # -ELBO is the bound's number: no second column for it.
    assert "-ELBO" not in header
