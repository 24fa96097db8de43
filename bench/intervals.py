"""Intervals over seeds: what tells a difference between rows from seed-to-seed noise.

- :func:`t_interval`: the 95% Student-t interval of a mean over seeds, ``mean ± t(0.975, n-1)
  · s / √n``. Not a bootstrap: with the 2 to 5 seeds a row has, a percentile bootstrap over
  seeds covers far less than 95% (with 2 seeds its interval is at most the range of the two).
- :func:`paired_difference`: the same interval over the per-seed differences of two rows whose
  seeds match (same seed, same data subset): the seed-to-seed variation the rows share drops out.
- :func:`welch_difference`: the difference of two means from their summaries alone (two
  leaderboards), Welch's unequal-variance interval.
- :func:`probability_of_improvement`: rliable's P(X > Y) (Agarwal et al. 2021, "Deep RL at the
  Edge of the Statistical Precipice"), the Mann-Whitney statistic over all pairs of runs.

docs/comparing.md explains how the leaderboard and ``bench compare`` use them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

CONFIDENCE = 0.95
MIN_POI_SEEDS = 3  # the probability of improvement is given when both rows have this many


@dataclass(frozen=True)
class Interval:
    """A mean (or a mean difference) over ``n`` seeds and its 95% interval; ``low`` and
    ``high`` are None with fewer than two seeds (no interval exists)."""

    mean: float
    n: int
    low: float | None = None
    high: float | None = None

    @property
    def half_width(self) -> float | None:
        return None if self.high is None else self.high - self.mean

    @property
    def excludes_zero(self) -> bool:
        """Whether the interval lies wholly on one side of zero (a difference beyond noise)."""
        if self.low is None or self.high is None:
            return False
        return self.low > 0 or self.high < 0


def t_quantile(df: int | float) -> float:
    """The two-sided 95% Student-t quantile with ``df`` degrees of freedom."""
    from scipy.stats import t

    return float(t.ppf(0.5 + CONFIDENCE / 2, df))


def t_interval(values: Sequence[float]) -> Interval | None:
    """The mean of ``values`` with its 95% t-interval; None without values."""
    clean = [float(v) for v in values if v is not None and math.isfinite(v)]
    n = len(clean)
    if n == 0:
        return None
    mean = sum(clean) / n
    if n < 2:
        return Interval(mean, n)
    std = math.sqrt(sum((v - mean) ** 2 for v in clean) / (n - 1))
    half = t_quantile(n - 1) * std / math.sqrt(n)
    return Interval(mean, n, mean - half, mean + half)


def paired_difference(row: Mapping[int, float], baseline: Mapping[int, float]) -> Interval | None:
    """``row - baseline`` over the seeds both have, with the t-interval of the per-seed
    differences; None when no seed matches."""
    seeds = sorted(set(row) & set(baseline))
    return t_interval([row[s] - baseline[s] for s in seeds])


def welch_difference(
    a: tuple[float, float | None, int], b: tuple[float, float | None, int]
) -> Interval | None:
    """``b - a`` from two ``(mean, std, n)`` summaries, with Welch's 95% interval (the
    Welch-Satterthwaite degrees of freedom); no interval unless both have two seeds."""
    (mean_a, std_a, n_a), (mean_b, std_b, n_b) = a, b
    if n_a < 1 or n_b < 1:
        return None
    diff = mean_b - mean_a
    if n_a < 2 or n_b < 2 or std_a is None or std_b is None:
        return Interval(diff, min(n_a, n_b))
    va, vb = std_a**2 / n_a, std_b**2 / n_b
    se = math.sqrt(va + vb)
    if se == 0:
        return Interval(diff, min(n_a, n_b), diff, diff)
    df = (va + vb) ** 2 / (va**2 / (n_a - 1) + vb**2 / (n_b - 1))
    half = t_quantile(df) * se
    return Interval(diff, min(n_a, n_b), diff - half, diff + half)


def probability_of_improvement(
    row: Sequence[float], baseline: Sequence[float], direction: str
) -> float | None:
    """P(a run of ``row`` beats a run of ``baseline``): over every pair of runs, 1 when the
    row's is better in ``direction`` (``"min"`` or ``"max"``), 1/2 for a tie; rliable's
    definition for one task. None unless both have :data:`MIN_POI_SEEDS` runs."""
    if len(row) < MIN_POI_SEEDS or len(baseline) < MIN_POI_SEEDS:
        return None
    sign = -1.0 if direction == "min" else 1.0
    score = 0.0
    for x in row:
        for y in baseline:
            d = sign * (x - y)
            score += 1.0 if d > 0 else 0.5 if d == 0 else 0.0
    return score / (len(row) * len(baseline))
