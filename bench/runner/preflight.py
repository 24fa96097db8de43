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
from bench.data import DataSplits, Split, data_dir, missing_data_message
from bench.errors import BenchError, DataError, ModelContractError
from bench.runner import cell as parts
from bench.runner import memory
from bench.runner.cell import DataCache
from bench.runner.options import RunOptions
from bench.specs import resolve_params
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


def _available(opts: RunOptions) -> int:
    devices = len(opts.placement.devices) or 1
    return memory.available_bytes(opts.device, memory.device_share(opts.placement.jobs, devices))


def check_weights_fit(cell: Cell, data: DataSplits, opts: RunOptions) -> None:
    """The model's weights, gradients and Adam's moments fit, counted before it is built."""
    spec = plugins.registries().models.get(cell.model)
    params = resolve_params(spec.params, cell.model_params, f"model {cell.model!r}")
    weights = memory.parameter_bytes(lambda: spec.build(data.info, **params))
    if weights is not None:
        memory.refuse_if_too_large(
            weights * memory.OPTIMIZER_COPIES,
            _available(opts),
            f"{_model_text(cell)}: its weights, gradients and Adam's moments",
            "the model's size (its parameters)",
        )


def check_cell_memory(cell: Cell, model: Any, data: DataSplits, opts: RunOptions) -> None:
    """One training batch and one evaluation fit in the device's memory (lower bounds; see
    :mod:`bench.runner.memory`); a one-line ConfigError naming the setting to lower."""
    b, have = cell.budget, _available(opts)
    n_train = min(len(data.train), b.train_subset or len(data.train))
    n_test = min(len(data.test), b.test_subset or len(data.test))
    state = parts.rng_state()  # the forward pass draws noise: the run must not see it
    try:
        x, _ = next(iter(data.train.batches(min(b.batch_size, CONTRACT_BATCH))))
        footprint = memory.forward_footprint(model, x)
    finally:
        parts.set_rng_state(state)
    if footprint is None:
        return
    per_example, latent_dim = footprint
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    batch = min(b.batch_size, n_train)
    memory.refuse_if_too_large(
        weights * memory.OPTIMIZER_COPIES + per_example * batch,
        have,
        f"{_model_text(cell)}: one training batch of {batch}",
        "budget.batch_size",
    )
    memory.refuse_if_too_large(
        weights + memory.evaluation_bytes(cell, latent_dim, n_test, n_train),
        have,
        f"{_model_text(cell)}: evaluation with eval.iw_samples={cell.eval.iw_samples}, "
        f"eval.batch_size={cell.eval.batch_size}, eval.mi_samples={cell.eval.mi_samples}",
        "them",
    )


def check_cells(cells: Iterable[Cell], opts: RunOptions, cache: DataCache | None = None) -> None:
    """Load each data set (into ``cache``, for the training that follows), put one batch
    through each distinct model configuration, and check that its runs fit in memory (once
    per distinct budget and eval settings). Every data set that cannot be read is named in
    one error, not only the first."""
    configs: dict[tuple[str, ...], list[Cell]] = {}
    unreadable: dict[str, str] = {}
    for cell in cells:
        key = (
            cell.dataset,
            json.dumps(cell.dataset_params, sort_keys=True),
            cell.model,
            json.dumps(cell.model_params, sort_keys=True),
        )
        configs.setdefault(key, []).append(cell)
    for same_model in configs.values():
        cell = same_model[0]
        if cell.dataset in unreadable:
            continue
        try:
            data = load_checked(cell, opts, cache)
        except DataError as exc:
            unreadable[cell.dataset] = str(exc)
            continue
        where = _model_text(cell)
        check_weights_fit(cell, data, opts)
        try:
            model = parts.build_model(cell, data, opts.device)
        except BenchError:
            raise
        except Exception as exc:
            raise ModelContractError(
                f"{where}: building it raised {type(exc).__name__}: {exc}"
            ) from exc
        check_cell_model(cell, model, data.train)
        settings = {(c.budget, c.eval): c for c in same_model}
        for c in settings.values():
            check_cell_memory(c, model, data, opts)
        del model
    if unreadable:
        raise DataError(missing_data_message(unreadable, data_dir(opts.data_dir)))
    if opts.device.type == "cuda":
        torch.cuda.empty_cache()
