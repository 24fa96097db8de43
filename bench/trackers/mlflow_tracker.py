"""MLflow: one MLflow run per bench run, in the experiment named after the suite, named by its
cell id and tagged with suite, scale, data set, model, objective and seed. The settings are
parameters; each epoch's numbers are metrics at step = the epoch's number (from 1); the end
adds the test metrics (``test/<metric>``), the status and fingerprint tags, and the record as
``record.json``.

The tracking server is ``--log-to mlflow=URI``, else MLflow's own setting
(``MLFLOW_TRACKING_URI``). Unless set, MLflow's HTTP retries and timeout are cut to 2 retries
and 10 s, so a server that stops answering costs seconds of a run, not minutes."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.trackers.listener import record_scalars, settings, tags

if TYPE_CHECKING:
    from bench.records import RunRecord
    from bench.suites import Cell

QUICK_FAILURE = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
PARAM_CHARS = 6000  # MLflow's longest parameter value
BATCH = 900  # MLflow takes at most 1000 metrics or 100 parameters per call


class MlflowTracker:
    name = "mlflow"

    def __init__(self, uri: str | None) -> None:
        for key, value in QUICK_FAILURE.items():
            os.environ.setdefault(key, value)
        self.uri = uri
        self.client: Any = None
        self.run_id: str | None = None

    def start(self, cell: Cell, run_dir: Path) -> None:
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=self.uri)
        experiment = self._experiment(cell.suite)
        run = self.client.create_run(experiment, run_name=cell.run_id, tags=tags(cell))
        self.run_id = run.info.run_id
        params = [Param(k, str(v)[:PARAM_CHARS]) for k, v in sorted(settings(cell).items())]
        for start in range(0, len(params), 100):
            self.client.log_batch(self.run_id, params=params[start : start + 100])

    def _experiment(self, name: str) -> str:
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        try:
            return self.client.create_experiment(name)
        except Exception:  # another worker created it first
            found = self.client.get_experiment_by_name(name)
            if found is None:
                raise
            return found.experiment_id

    def _metrics(self, values: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, step) for k, v in values.items()]
        for start in range(0, len(metrics), BATCH):
            self.client.log_batch(self.run_id, metrics=metrics[start : start + BATCH])

    def epoch(self, epoch: int, values: dict[str, float]) -> None:
        self._metrics(values, epoch)

    def end(self, record: RunRecord) -> None:
        self._metrics(record_scalars(record), max(1, record.epochs_trained))  # the last epoch
        self.client.set_tag(self.run_id, "status", record.status)
        self.client.set_tag(self.run_id, "fingerprint", record.fingerprint)
        if record.reason:
            self.client.set_tag(self.run_id, "reason", str(record.reason)[:5000])
        status = "FINISHED" if record.finished else "FAILED"
        self.client.set_terminated(self.run_id, status=status)
        self.client.log_dict(self.run_id, record.to_json(), "record.json")

    def close(self) -> None:
        self.client = None
