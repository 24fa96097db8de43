"""Tuned leaderboards: each study's best trial (or each Pareto point) re-trained over the
suite's seeds with the suite's full metric protocol, as the suite ``<suite>-tuned``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bench.errors import BenchError
from bench.formats import duration_text
from bench.locks import results_lock
from bench.selection import CellFilter
from bench.suites import Suite
from bench.tune.space import cell_with, search_space
from bench.tune.storage import OpenedStorage, open_storage
from bench.tune.targets import Target, select_targets
from bench.tune.trials import chosen_trials, counts, counts_text, params_text

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

    from bench.leaderboard import Leaderboard
    from bench.runner import RunOptions

TUNED_SUFFIX = "-tuned"  # re-trained best trials form the suite <suite>-tuned


def tuned_leaderboard(
    suite: Suite,
    scale: str | None,
    storage_spec: str | None,
    opts: RunOptions,
    multi_objective: bool = False,
    log: Callable[[str], None] = lambda msg: None,
    cell_filter: CellFilter | None = None,
) -> Leaderboard:
    """Re-train each study's best trial (or each Pareto point) over the suite's seeds with the
    suite's full metric protocol; the board is ``<suite>-tuned`` at the same scale.
    ``cell_filter`` keeps some of the suite's rows."""
    from bench import leaderboard as lb

    scale, targets = select_targets(suite, scale, cell_filter)
    store = open_storage(storage_spec, opts.results_dir)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows = _TunedRows(suite.name + TUNED_SUFFIX, scale, store, opts, multi_objective, log)
    # Re-training writes run folders as `bench run` does: one process at a time.
    with results_lock(opts.results_dir / rows.suite / scale):
        for target in targets:
            rows.add(target)
    if not rows.records:
        raise BenchError(
            f"no tuned studies for {suite.name}/{scale} in {store.description}; run "
            f"`bench tune --suite {suite.name} --scale {scale}` first"
        )
    board = lb.build(rows.records, rows.suite, scale, suite.columns)
    import polars as pl

    extra = pl.DataFrame(rows.extra_rows)
    board.table = board.table.join(extra, on=lb.KEYS, how="left")
    board.devices = sorted(set(board.devices) | {f"tuning trials: {d}" for d in rows.devices})
    return board


@dataclass
class _TunedRows:
    """Collects the re-trained runs and the tuning columns of each row."""

    suite: str  # <suite>-tuned
    scale: str
    store: OpenedStorage
    opts: RunOptions
    multi: bool
    log: Callable[[str], None]
    records: list[dict[str, Any]] = field(default_factory=list)
    extra_rows: list[dict[str, Any]] = field(default_factory=list)
    devices: set[str] = field(default_factory=set)

    def add(self, target: Target) -> None:
        """The rows of one study; left out (with a line in the log) while it has no result."""
        import optuna

        name = target.study_name(self.multi)
        try:
            study = optuna.load_study(study_name=name, storage=self.store.storage)
        except KeyError:
            self.log(f"{name}: no study in {self.store.description}; row left out (run bench tune)")
            return
        trials = study.get_trials(deepcopy=False)
        chosen = chosen_trials(study, self.multi)
        if not chosen:
            self.log(f"{name}: no finished trial yet; row left out")
            return
        tuning = {
            "study": name,
            "storage": self.store.description,
            "trials": counts(trials),
            "tuning_wall_time_s": sum(t.user_attrs.get("wall_time_s", 0.0) for t in trials),
        }
        self.devices.update(t.user_attrs["device"] for t in trials if "device" in t.user_attrs)
        for t in chosen:
            label = target.base.objective + (f" [trial {t.number}]" if self.multi else "")
            for seed in target.seeds:
                self._retrain(target, t, seed, label, tuning)
            self.extra_rows.append(_tuning_columns(target, t, label, tuning))

    def _retrain(
        self, target: Target, t: FrozenTrial, seed: int, label: str, tuning: dict[str, Any]
    ) -> None:
        """Train trial ``t``'s configuration with ``seed`` (kept when already trained)."""
        from bench.records import RECORD_FILE, write_record
        from bench.runner import kept_record, train_cell

        values = t.user_attrs.get("config") or {
            **{d.name: d.value for d in search_space(target, {}) if d.distribution is None},
            **t.params,
        }
        cell = cell_with(
            target.base,
            values,
            suite=self.suite,
            group=f"{target.base.group}-t{t.number}",
            seed=seed,
        )
        run_dir = self.opts.results_dir / self.suite / self.scale / cell.run_id
        record = kept_record(cell, run_dir, self.opts)
        if record is not None:
            self.log(f"{cell.run_id}: already trained, kept")
        else:
            (run_dir / RECORD_FILE).unlink(missing_ok=True)
            self.log(
                f"{cell.run_id}: training trial {t.number} of {tuning['study']} with seed {seed}"
            )
            record = train_cell(cell, run_dir, self.opts)
        write_record(run_dir / "tuning.json", {**tuning, "trial": t.number, "params": t.params})
        # The row names its trial; the record keeps its folder for the board's curves.
        self.records.append(record.with_(cell={**record.cell, "objective": label}))


def _tuning_columns(
    target: Target, t: FrozenTrial, label: str, tuning: dict[str, Any]
) -> dict[str, Any]:
    """The leaderboard columns that state a row's trial budget and its chosen values."""
    c = tuning["trials"]
    took = duration_text(tuning["tuning_wall_time_s"])
    return {
        "dataset": target.base.dataset,
        "model": target.base.model,
        "objective": label,
        "trials": c["done"],
        "tuning": f"{counts_text(c, finished=False)}, {took}",
        "params": params_text(dict(sorted(t.params.items()))),
    }
