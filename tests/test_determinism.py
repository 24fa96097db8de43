"""Determinism: the same seed on the same device with the same threads gives the same numbers,
every metric and every epoch; across thread counts, they agree within the tolerance that
docs/comparing.md#determinism gives (measured there on MNIST and PTB)."""

from __future__ import annotations

import math

import pytest
import torch

from bench.runner import run_suite
from bench.suites import load_suite_file
from tests.helpers.suites import SMALL_MLP, cpu_options, group_toml, suite_toml

SUITE = suite_toml(
    "det",
    group_toml(
        "mlp",
        models=["mlp-vae", "mlp-skip-vae"],
        objectives=["elbo", "kl-anneal"],
        model_params={"mlp-vae": SMALL_MLP, "mlp-skip-vae": SMALL_MLP},
        objective_params={"kl-anneal": {"epochs": 1.0}},
        budget={"epochs": 2, "train_subset": 400, "valid_subset": 150},
        eval={"iw_samples": 5, "probe_train_size": 300},
    ),
    group_toml(
        "lstm",
        datasets=["text-synthetic"],
        models=["lstm-vae"],
        model_params={"lstm-vae": {"emb_dim": 16, "hidden": 16, "latent_dim": 4}},
        budget={"epochs": 1, "batch_size": 32, "train_subset": 200},
        eval={"iw_samples": 3, "batch_size": 100},
    ),
)


# Across torch thread counts (docs/comparing.md#determinism): metrics and epoch logs within
# this relative difference. Measured: identical metrics at 1 and 2 threads, epoch-log training
# means within 1e-7.
THREAD_RTOL = 1e-5
THREAD_ATOL = 1e-6  # for values near zero (the KL and MI of a collapsed model)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """``runs(threads, name)``: the suite's records, trained once per module and reused."""
    done: dict[tuple[int, str], list] = {}

    def get(threads: int, name: str) -> list:
        if (threads, name) not in done:
            folder = tmp_path_factory.mktemp(f"t{threads}{name}")
            done[threads, name] = _run(folder, threads, name)
        return done[threads, name]

    return get


def _run(workdir, threads: int, name: str) -> list:
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        path = workdir / "det.toml"
        path.write_text(SUITE)
        _, records = run_suite(load_suite_file(path), None, cpu_options(workdir / name))
    finally:
        torch.set_num_threads(before)
    return sorted(records, key=lambda r: r.run_id)


def _timing(key: str) -> bool:
    """Timings and clock times differ between any two runs; everything else in a record
    (metrics with their settings, epochs, steps, subsets, the selected epoch) must not."""
    return "time" in key or "per_s" in key or key.endswith(("_s", "_at"))


def _stable(entries: dict) -> dict:
    return {k: v for k, v in entries.items() if not _timing(k)}


def _same_runs(first: list, second: list) -> None:
    """Record by record, every value but the timings is exactly equal."""
    assert [r.run_id for r in first] == [r.run_id for r in second]
    for a, b in zip(first, second, strict=True):
        assert a.finished and b.finished, (a.reason, b.reason)
        assert _stable(a.to_json()) == _stable(b.to_json()), a.run_id
        epochs = [[_stable(e) for e in r.epoch_log] for r in (a, b)]
        assert epochs[0] == epochs[1] and len(epochs[0]) == a.epochs_trained, a.run_id


def _close(a: object, b: object) -> bool:
    """Numbers within the tolerance; anything else (None, lists, strings) equal."""
    if isinstance(a, float | int) and isinstance(b, float | int):
        return math.isclose(a, b, rel_tol=THREAD_RTOL, abs_tol=THREAD_ATOL)
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return all(_close(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@pytest.mark.slow  # trains ten small cells
@pytest.mark.parametrize("threads", [1, 2])
def test_same_seed_device_and_threads_give_identical_metrics(fresh_plugins, runs, threads):
    first, second = runs(threads, "a"), runs(threads, "b")
    assert len(first) == 5
    _same_runs(first, second)
    image = next(r for r in first if r.cell["dataset"] == "digits")
    headline = ("nll", "kl", "mi", "au", "probe_acc")
    assert all(image.metrics[m].value is not None for m in headline), image.metrics


@pytest.mark.slow  # reuses the runs above
def test_thread_counts_agree_within_the_documented_tolerance(fresh_plugins, runs):
    one, two = runs(1, "a"), runs(2, "a")
    assert [r.run_id for r in one] == [r.run_id for r in two]
    for a, b in zip(one, two, strict=True):
        assert a.metrics.keys() == b.metrics.keys() and a.best_epoch == b.best_epoch
        for name, m in a.metrics.items():
            assert _close(m.value, b.metrics[name].value), (a.run_id, name)
        for ea, eb in zip(a.epoch_log, b.epoch_log, strict=True):
            values = [k for k, v in ea.items() if isinstance(v, float) and not _timing(k)]
            assert all(_close(ea[k], eb[k]) for k in values), (a.run_id, ea, eb)
