"""Epochs are counted from 1 everywhere, the JSON files included (record version 2); files of
version 1 (counted from 0) are read with their numbers moved up, and a run of version 1 resumes
into a log of version 2 without a repeated or missing epoch."""

from __future__ import annotations

import json
from pathlib import Path

from bench.records import SCHEMA_VERSION, migrate, read_epoch_log
from bench.runner.loop import truncate_log


def _write_log(path: Path, epochs: list[int]) -> None:
    path.write_text("".join(json.dumps({"epoch": e, "val_kl": 0.1 * e}) + "\n" for e in epochs))


def test_records_of_version_1_count_their_best_epoch_from_one():
    assert SCHEMA_VERSION == 2
    old = {"schema_version": 1, "resolved": {"model": {}}, "fingerprint": "f", "best_epoch": 2}
    assert migrate(old)["best_epoch"] == 3
    assert migrate({**old, "best_epoch": -1})["best_epoch"] == 0  # none selected
    assert migrate({**old, "best_epoch": 0})["best_epoch"] == 1
    new = {**old, "schema_version": 2, "best_epoch": 3}
    assert migrate(new)["best_epoch"] == 3  # already counted from 1


def test_epoch_logs_of_version_1_are_read_from_one(tmp_path):
    path = tmp_path / "epochs.jsonl"
    _write_log(path, [0, 1, 2])
    assert [e["epoch"] for e in read_epoch_log(path)] == [1, 2, 3]
    assert [e["val_kl"] for e in read_epoch_log(path)] == [0.0, 0.1, 0.2]  # values kept
    _write_log(path, [1, 2, 3])
    assert [e["epoch"] for e in read_epoch_log(path)] == [1, 2, 3]


def test_a_resume_keeps_the_epochs_up_to_its_checkpoint_in_either_numbering(tmp_path):
    path = tmp_path / "epochs.jsonl"
    _write_log(path, [0, 1, 2])  # version 1: three epochs, checkpoint after the second
    truncate_log(path, 2)
    assert [e["epoch"] for e in read_epoch_log(path)] == [1, 2]
    assert [json.loads(x)["epoch"] for x in path.read_text().splitlines()] == [1, 2]
    _write_log(path, [1, 2, 3])
    truncate_log(path, 2)
    assert [e["epoch"] for e in read_epoch_log(path)] == [1, 2]
