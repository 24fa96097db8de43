"""IW-NLL fully batched against a per-example reference loop of the same maths (Pythae style:
one example, its K samples in batches of :data:`REFERENCE_BATCH`; for text, one sentence)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from bench.throughput.measure import count_flops, tflops
from bench.throughput.workloads import Settings, Workload, config_label, middle_batch, new_model

REFERENCE_BATCH = 100  # Pythae replicates one example and scores it in batches of 100
IW_MIN_BATCH = 4  # smallest batch the batched IW-NLL is timed on


def iw_speedup(w: Workload, data: Any, s: Settings) -> dict[str, Any] | None:
    """Per-example time of IW-NLL over a batch against the reference on the same examples: one
    example (sentence) at a time, its K samples in batches of :data:`REFERENCE_BATCH`.

    The batch is the middle batch of the test split's unshuffled batching (for text, which is
    batched by length, that means sentences of the median length rather than the shortest), of
    ``iw_examples`` examples, fewer if a pilot reference call on the median example says a
    batched call would take more than half of ``iw_budget_s`` (slow models on a CPU). The
    reference, eager fp32, scores the same examples one by one (unshuffled batching takes them
    in the same order whatever the batch size, as the tensor and text splits here do) until
    ``iw_ref_examples`` or ``iw_budget_s`` is reached. Both mean log-likelihoods over the
    examples scored both ways are reported, as a check that the maths is the same; FLOPs per
    example are counted on the pilot call (on one chunk of samples, scaled to K)."""
    import torch

    from bench.estimators import auto_sample_chunk

    k = s.iw_samples
    configs = [(a, c) for a, c in s.configs if s.iw_compile or not c]
    # Under a time budget, the reference, the pilot and each configuration get an equal share.
    s = replace(s, iw_budget_s=min(s.iw_budget_s, s.budget.left() / (3 + len(configs))))
    model = new_model(w, data, s)
    model.eval()
    test = data.test
    gen = torch.Generator(device=s.device).manual_seed(0)
    flops, pilot = _pilot(model, test, k, s, gen)
    nb_planned = _planned_batch(pilot, len(test), s)
    # Under a time budget: one reference example, and each configuration's batched call at
    # most as slow per example as the reference, must fit, with half as much again for the
    # pilot's error (None: left out).
    estimate = 1.5 * pilot * (1 + nb_planned * len(configs))
    if not s.budget.allows(f"{w.model} IW-NLL", estimate):
        return None
    start, xb = middle_batch(test, nb_planned)
    nb = len(xb)
    cap = nb if s.iw_ref_examples is None else min(nb, s.iw_ref_examples)
    ref_vals, ref_time = _reference(model, test, start, cap, k, s, gen)
    with torch.no_grad():
        chunk = auto_sample_chunk(model, xb, k)
    ref_per_example = ref_time / len(ref_vals)
    rows = _batched_rows(w, model, xb, configs, s, gen, ref_per_example, len(ref_vals), flops)
    return _iw_entry(w, s, ref_vals, ref_time, nb, chunk, flops, rows)


def _planned_batch(pilot: float, n_test: int, s: Settings) -> int:
    """Examples in the batched call: ``iw_examples``, or as many as a batched call at the
    pilot's pace scores in half of ``iw_budget_s`` (at least :data:`IW_MIN_BATCH`), and no
    more than the test split holds."""
    affordable = max(IW_MIN_BATCH, int(s.iw_budget_s / 2 / max(pilot, 1e-9)))
    return min(s.iw_examples, affordable, n_test)


def _batched_rows(
    w: Workload,
    model: Any,
    xb: Any,
    configs: list[tuple[bool, bool]],
    s: Settings,
    gen: Any,
    ref_per_example: float,
    n_ref: int,
    flops: float | None,
) -> list[dict[str, Any]]:
    """Each configuration's row (see :func:`_batched_row`), logged as it is measured."""
    rows = []
    for amp, compiled in configs:
        rows.append(_batched_row(model, xb, amp, compiled, s, gen, ref_per_example, n_ref, flops))
        s.log(
            f"{w.model} IW-NLL K={s.iw_samples} {rows[-1]['config']}: "
            f"{rows[-1]['examples_per_s']:.1f} examples/s, "
            f"{rows[-1]['speedup_vs_reference']:.2f}x the per-example reference"
        )
    return rows


def _iw_entry(
    w: Workload,
    s: Settings,
    ref_vals: list[Any],
    ref_time: float,
    nb: int,
    chunk: int,
    flops: float | None,
    rows: list[dict[str, Any]],
) -> dict[str, Any]:
    """The report's IW-NLL entry for one model: the reference's rate and mean log-likelihood
    over its ``len(ref_vals)`` examples, and the rows of the batched call on ``nb``."""
    import torch

    n_ref = len(ref_vals)
    return {
        "model": w.model,
        "dataset": w.dataset,
        "iw_samples": s.iw_samples,
        "iw_budget_s": s.iw_budget_s,
        "reference": ("one sentence at a time" if w.kind == "text" else "one example at a time")
        + f", K samples in batches of {REFERENCE_BATCH} (Pythae style), eager fp32",
        "reference_examples": n_ref,
        "compared_examples": n_ref,  # the batch's first examples
        "flops_per_example": flops,
        "reference_examples_per_s": n_ref / ref_time,
        "reference_mean_log_likelihood": float(torch.cat(ref_vals).mean()),
        "batched_examples": nb,
        "batched_sample_chunk": chunk,
        "configs": rows,
        "speedup_fp32": rows[0]["speedup_vs_reference"] if rows else None,
        "best_speedup": max((r["speedup_vs_reference"] for r in rows), default=None),
    }


def _examples(split: Any) -> Iterable[Any]:
    """A split's examples one at a time, in its unshuffled batching order."""
    return (x for x, _ in split.batches(1))


def _pilot(model: Any, test: Any, k: int, s: Settings, gen: Any) -> tuple[float | None, float]:
    """FLOPs per example of IW-NLL at K, and seconds of one reference call, from the median
    example (untimed otherwise): one chunk of samples counts the FLOPs (they scale with K),
    warms up and paces the batch size."""
    import torch

    from bench.estimators import iw_log_likelihood
    from bench.runner import synchronize

    median = next(itertools.islice(_examples(test), len(test) // 2, None))
    k_pilot = min(k, REFERENCE_BATCH)

    def reference_one(samples: int = k) -> Any:
        return iw_log_likelihood(model, median, samples, chunk=REFERENCE_BATCH, generator=gen)

    t0 = time.perf_counter()
    pilot_flops = count_flops(lambda: reference_one(k_pilot))
    synchronize(s.device)
    pilot = (time.perf_counter() - t0) * k / k_pilot
    with torch.no_grad():
        enc_flops = count_flops(lambda: model.encode(median)) or 0
    # One encoder pass per call; the decoder work scales with the samples.
    flops = None if pilot_flops is None else enc_flops + (pilot_flops - enc_flops) * k / k_pilot
    if pilot < s.iw_budget_s / 10:  # cheap: time a real call, free of first-call costs
        t0 = time.perf_counter()
        reference_one()
        synchronize(s.device)
        pilot = time.perf_counter() - t0
    return flops, pilot


def _reference(
    model: Any, test: Any, start: int, cap: int, k: int, s: Settings, gen: Any
) -> tuple[list[Any], float]:
    """The reference's values for examples ``start`` on (at most ``cap``, stopping once
    ``iw_budget_s`` is spent), and the seconds they took."""
    from bench.estimators import iw_log_likelihood
    from bench.runner import synchronize

    vals = []
    t0 = time.perf_counter()
    for x1 in itertools.islice(_examples(test), start, start + cap):
        vals.append(iw_log_likelihood(model, x1, k, chunk=REFERENCE_BATCH, generator=gen))
        if time.perf_counter() - t0 > s.iw_budget_s:
            break
    synchronize(s.device)
    return vals, time.perf_counter() - t0


def _batched_row(
    model: Any,
    xb: Any,
    amp: bool,
    compiled: bool,
    s: Settings,
    gen: Any,
    ref_per_example: float,
    n_ref: int,
    flops: float | None,
) -> dict[str, Any]:
    """One configuration of the batched IW-NLL: examples/s, speed-up over the reference, and
    the mean log-likelihood over the ``n_ref`` first examples, the ones the reference scored."""
    nb = len(xb)
    # Warm up compiled code always, eager code unless one call takes seconds anyway
    # (the warm-up then only doubles the cost of a CPU run).
    warm = compiled or nb * ref_per_example < s.iw_budget_s / 4
    dt, vals = _batched_call_time(model, xb, s.iw_samples, amp, compiled, warm, s, gen)
    return {
        "config": config_label(amp, compiled),
        "amp": amp,
        "compile": compiled,
        "examples_per_s": nb / dt,
        "speedup_vs_reference": ref_per_example / (dt / nb),
        "batched_mean_log_likelihood": float(vals[:n_ref].mean()),
        "tflops": tflops(flops, nb / dt),
    }


def _batched_call_time(
    model: Any, xb: Any, k: int, amp: bool, compiled: bool, warm: bool, s: Settings, gen: Any
) -> tuple[float, Any]:
    """Seconds per batched IW-NLL call (calls repeated for at least ``min_time``), and the
    first call's values."""
    from bench.estimators import iw_log_likelihood
    from bench.runner import eval_log_likelihood, synchronize, tf32_enabled
    from bench.runner.compiled import fresh_compile_cache

    if compiled:
        fresh_compile_cache()
    ll = eval_log_likelihood(model, s.device, amp, s.compile_mode if compiled else None)
    with tf32_enabled(s.tf32):
        if warm:
            iw_log_likelihood(model, xb, k, generator=gen, log_likelihood=ll)
            synchronize(s.device)
        calls = 0
        vals: Any = None
        t0 = time.perf_counter()
        while True:
            out = iw_log_likelihood(model, xb, k, generator=gen, log_likelihood=ll)
            vals = out if vals is None else vals
            calls += 1
            synchronize(s.device)
            if time.perf_counter() - t0 >= s.min_time:
                break
        return (time.perf_counter() - t0) / calls, vals
