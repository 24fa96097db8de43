"""TensorBoard: event files per run under ``DIR/<suite>/<scale>/<cell id>`` (``DIR`` defaults to
``<results>/tensorboard``), so ``tensorboard --logdir DIR/<suite>/<scale>`` names each run by its
cell id. Each epoch's numbers are scalars at step = its number (from 1); the tags and settings
are a text summary at the start and, with the test metrics, the HParams dashboard's entry at
the end."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.trackers.listener import record_scalars, settings, tags

if TYPE_CHECKING:
    from bench.records import RunRecord
    from bench.suites import Cell

FOLDER = "tensorboard"


def log_dir(root: str | None, cell: Cell, run_dir: Path) -> Path:
    # run_dir is <results>/<suite>/<scale>/<cell id>: the default root sits in <results>.
    base = Path(root) if root else run_dir.parent.parent.parent / FOLDER
    return base / cell.suite / cell.scale / cell.run_id


def _hparam(value: Any) -> Any:
    return value if isinstance(value, (int, float, str, bool)) else json.dumps(value, default=str)


class TensorBoardTracker:
    name = "tensorboard"

    def __init__(self, root: str | None) -> None:
        self.root = root
        self.writer: Any = None
        self.hparams: dict[str, Any] = {}

    def start(self, cell: Cell, run_dir: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(log_dir(self.root, cell, run_dir)))
        self.hparams = {**tags(cell), **{k: _hparam(v) for k, v in settings(cell).items()}}
        lines = [f"- **{k}**: `{v}`" for k, v in tags(cell).items()]
        self.writer.add_text("tags", f"run `{cell.run_id}`\n\n" + "\n".join(lines), 0)
        self.writer.flush()

    def epoch(self, epoch: int, values: dict[str, float]) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, epoch)
        self.writer.flush()

    def end(self, record: RunRecord) -> None:
        final = record_scalars(record)
        step = max(1, record.epochs_trained)  # the last epoch's number, from 1
        for key, value in final.items():
            self.writer.add_scalar(key, value, step)
        text = json.dumps(record.to_json(), indent=2, sort_keys=True, default=str)
        self.writer.add_text("record", f"status **{record.status}**\n\n```\n{text}\n```", step)
        hparams = {**self.hparams, "status": record.status, "fingerprint": record.fingerprint}
        metrics = {k: v for k, v in final.items() if k.startswith("test/")}
        self.writer.add_hparams(hparams, metrics or {"run/epochs_trained": 0.0}, run_name=".")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
