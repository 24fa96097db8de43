"""Paired differences against a group's baseline, for the leaderboard.

A group names its baseline by the parts that differ (``Group.baseline``, e.g. ``{"objective":
"elbo"}``): the baseline of a row is the row of the same group and data set that has the named
model and/or objective and the row's values everywhere else (the other part's name and
parameters, the data set's parameters, the budget and the eval settings). For each headline
metric a row then gets its difference from the baseline over the seeds both ran (the same seed
trains on the same data subset), with the 95% t-interval of the per-seed differences, and with
three or more seeds on each side rliable's probability of improvement (:mod:`bench.intervals`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from bench.intervals import paired_difference, probability_of_improvement

if TYPE_CHECKING:
    from bench.leaderboard import Column
    from bench.records import RunRecord

# The metrics a difference is given for, where the board has them: fit, then use of z.
HEADLINE = ("nll", "nll_bound", "ppl", "kl", "mi", "au", "probe_acc")
DIFF, LOW, HIGH, N, POI = "diff", "diff_low", "diff_high", "diff_n", "poi"
BASELINE = "baseline"  # the column holding the baseline row's label


def headline(columns: Sequence[Column]) -> list[Column]:
    """The board's columns a difference is given for, in the board's order."""
    return [c for c in columns if c.name in HEADLINE]


def suite_baselines(
    suite: str, scale: str, records: Sequence[RunRecord] = ()
) -> dict[str, dict[str, str]]:
    """Each group's baseline, from the registered suite of that name, else from the suite
    file the records' results folder remembers (``bench.suites.remember_suite``)."""
    from bench import plugins
    from bench.errors import BenchError
    from bench.suites import get_suite

    found = None
    regs = plugins.registries()
    if suite in regs.suites:
        found = regs.suites.get(suite)
    else:
        folders = {r.run_dir.parent.parent for r in records if r.run_dir is not None}
        for folder in sorted(folders):
            try:
                found = get_suite(suite, folder.parent)
                break
            except (BenchError, OSError, ValueError):
                continue
    if found is None:
        return {}
    return {g.name: dict(g.baseline) for g in found.groups.get(scale, []) if g.baseline}


def baseline_of(
    key: tuple, spec: Mapping[str, str], params: Mapping[tuple, Mapping[str, Any]], peers: set
) -> tuple | None:
    """The row key of ``key``'s baseline among ``peers`` (rows of its group), None when the
    row is a baseline itself or when no single row fits."""
    dataset, model, objective, _ = key
    want = (spec.get("model", model), spec.get("objective", objective))
    if want == (model, objective):
        return None
    named = tuple(f"{part}." for part in spec)

    def rest(k: tuple) -> dict[str, Any]:
        return {n: v for n, v in params[k].items() if not n.startswith(named)}

    mine = rest(key)
    fits = [
        k
        for k in peers
        if k[0] == dataset and (k[1], k[2]) == want and rest(k) == mine and k != key
    ]
    return fits[0] if len(fits) == 1 else None


def differences(
    labels: Mapping[tuple, str],
    per_seed: Mapping[tuple, Mapping[str, Mapping[int, float]]],
    groups: Mapping[tuple, set[str]],
    params: Mapping[tuple, Mapping[str, Any]],
    columns: Sequence[Column],
    baselines: Mapping[str, Mapping[str, str]],
) -> dict[tuple, dict[str, Any]]:
    """Per row key (of ``labels``, row key -> label) whose group names a baseline: the
    baseline's label and per headline metric ``<m>_diff``, ``_diff_low``, ``_diff_high``,
    ``_diff_n`` and ``_poi``, from ``per_seed`` (row key -> metric -> seed -> value)."""
    out: dict[tuple, dict[str, Any]] = {}
    for key in labels:
        base = _baseline_key(key, groups, params, baselines)
        if base is None or base not in labels:
            continue
        row: dict[str, Any] = {BASELINE: labels[base]}
        for c in headline(columns):
            mine, theirs = per_seed.get(key, {}), per_seed.get(base, {})
            row.update(_metric_difference(c, mine.get(c.name), theirs.get(c.name)))
        out[key] = row
    return out


def _baseline_key(
    key: tuple,
    groups: Mapping[tuple, set[str]],
    params: Mapping[tuple, Mapping[str, Any]],
    baselines: Mapping[str, Mapping[str, str]],
) -> tuple | None:
    """The baseline row of ``key`` under the first of its groups that names one."""
    for group in sorted(groups.get(key, ())):
        spec = baselines.get(group)
        if spec:
            peers = {k for k, g in groups.items() if group in g}
            return baseline_of(key, spec, params, peers)
    return None


def _metric_difference(
    col: Column, row: Mapping[int, float] | None, base: Mapping[int, float] | None
) -> dict[str, Any]:
    """The row's columns for one metric: difference, interval, matched seeds and P(better)."""
    m = col.name
    if not row or not base:
        return {}
    diff = paired_difference(row, base)
    if diff is None:
        return {}
    poi = probability_of_improvement(list(row.values()), list(base.values()), col.direction)
    return {
        f"{m}_{DIFF}": diff.mean,
        f"{m}_{LOW}": diff.low,
        f"{m}_{HIGH}": diff.high,
        f"{m}_{N}": diff.n,
        f"{m}_{POI}": poi,
    }
