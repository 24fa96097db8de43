"""Checks that run before any cell trains: output folders can be written, every data set
loads, and every model keeps the model contract on one real batch. Each failure is a
one-line :class:`~bench.errors.BenchError` (exit code 2) while nothing has trained yet."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from bench import plugins
from bench.contract import check_contract
from bench.data import DataSplits, Split, data_dir
from bench.errors import BenchError, DataError, ModelContractError
from bench.runner import cell as parts
from bench.runner.cell import DataCache
from bench.runner.options import RunOptions
from bench.suites import Cell

CONTRACT_BATCH = 32  # examples put through each model before training


def check_writable(folder: Path, what: str) -> None:
    """``folder`` can be created (or is there) and written to, checked without creating it:
    a file is written and removed in it or in its nearest existing parent. A BenchError
    naming the path otherwise."""
    probe_in = folder
    while not probe_in.exists() and probe_in != probe_in.parent:
        probe_in = probe_in.parent
    try:
        if not probe_in.is_dir():
            raise NotADirectoryError(f"{probe_in} is not a folder")
        fd, probe = tempfile.mkstemp(dir=probe_in, prefix=".write-check.")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise BenchError(f"{what} {folder} cannot be written: {exc.strerror or exc}") from None


def _origin(spec: object) -> str:
    return f"plugin {getattr(spec, 'plugin', '?')!r}, {getattr(spec, 'distribution', '?')}"


def load_checked(cell: Cell, opts: RunOptions, cache: DataCache | None = None) -> DataSplits:
    """The cell's data; a loader that fails in any way is a DataError naming the data set,
    its plugin and the folder it read."""
    try:
        return parts.load_data(cell, opts, cache)
    except BenchError:
        raise
    except Exception as exc:
        spec = plugins.registries().datasets.get(cell.dataset)
        raise DataError(
            f"dataset {cell.dataset!r} ({_origin(spec)}) could not be read from "
            f"{data_dir(opts.data_dir)}: {type(exc).__name__}: {exc}"
        ) from exc


def _model_text(cell: Cell) -> str:
    spec = plugins.registries().models.get(cell.model)
    return f"model {cell.model!r} ({_origin(spec)}) on {cell.dataset!r}"


def check_cell_model(cell: Cell, model: Any, train: Split) -> None:
    """The model contract on one training batch; a ModelContractError naming the model, its plugin
    and distribution, and the data set."""
    state = parts.rng_state()  # drawing the batch must not change the run that follows
    try:
        x, _ = next(iter(train.batches(min(cell.budget.batch_size, CONTRACT_BATCH))))
        check_contract(model, x, _model_text(cell))
    finally:
        parts.set_rng_state(state)


def check_cells(cells: Iterable[Cell], opts: RunOptions, cache: DataCache | None = None) -> None:
    """Load each data set (into ``cache``, for the training that follows) and put one batch
    through each distinct model configuration."""
    seen: set[tuple[str, ...]] = set()
    for cell in cells:
        key = (
            cell.dataset,
            json.dumps(cell.dataset_params, sort_keys=True),
            cell.model,
            json.dumps(cell.model_params, sort_keys=True),
        )
        if key in seen:
            continue
        seen.add(key)
        data = load_checked(cell, opts, cache)
        where = _model_text(cell)
        try:
            model = parts.build_model(cell, data, opts.device)
        except BenchError:
            raise
        except Exception as exc:
            raise ModelContractError(
                f"{where}: building it raised {type(exc).__name__}: {exc}"
            ) from exc
        check_cell_model(cell, model, data.train)
        del model
    if opts.device.type == "cuda":
        torch.cuda.empty_cache()
