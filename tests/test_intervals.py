"""Intervals over seeds, paired and Welch differences, and the probability of improvement."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from scipy import stats

from bench.intervals import (
    MIN_POI_SEEDS,
    Interval,
    paired_difference,
    probability_of_improvement,
    t_interval,
    t_quantile,
    welch_difference,
)


def test_t_interval_by_hand():
    i = t_interval([1.0, 2.0, 3.0])
    half = 4.302652729911275 * 1.0 / math.sqrt(3)  # t(0.975, 2) · s / √n, s = 1
    assert i.mean == 2.0 and i.n == 3
    assert i.low == pytest.approx(2.0 - half) and i.high == pytest.approx(2.0 + half)
    assert i.half_width == pytest.approx(half) and not i.excludes_zero  # 3 seeds: wide
    assert t_interval([10.0, 11.0, 12.0]).excludes_zero
    assert t_quantile(4) == pytest.approx(2.776445105)


def test_one_seed_has_no_interval_and_none_has_no_mean():
    one = t_interval([5.0])
    assert one == Interval(5.0, 1) and one.half_width is None and not one.excludes_zero
    assert t_interval([]) is None
    assert t_interval([1.0, float("nan"), 3.0]).n == 2  # a missing value is not a seed


def test_the_interval_covers_the_mean_95_times_in_100():
    rng = random.Random(0)
    for n in (2, 3, 5):
        hits = 0
        for _ in range(4000):
            i = t_interval([rng.gauss(10.0, 2.0) for _ in range(n)])
            hits += i.low <= 10.0 <= i.high
        assert 0.935 < hits / 4000 < 0.965, (n, hits)


def test_paired_difference_uses_matched_seeds_only():
    base = {0: 9.0, 1: 14.0, 2: 11.0, 3: -5.0}
    row = {0: 10.0, 1: 15.1, 2: 11.9, 7: 99.0}  # the baseline's seeds plus 1.0, 1.1, 0.9
    d = paired_difference(row, base)
    assert d.n == 3 and d.mean == pytest.approx(1.0)
    # The seed-to-seed variation both rows share (9 to 14) drops out of the difference.
    assert d.excludes_zero and d.half_width == pytest.approx(t_quantile(2) * 0.1 / math.sqrt(3))
    b, r = np.array([9.0, 14.0, 11.0]), np.array([10.0, 15.1, 11.9])
    unpaired = welch_difference((b.mean(), b.std(ddof=1), 3), (r.mean(), r.std(ddof=1), 3))
    assert not unpaired.excludes_zero
    assert paired_difference({0: 1.0}, {1: 1.0}) is None


def test_welch_difference_agrees_with_scipy():
    a, b = np.array([10.0, 10.4, 9.7, 10.2]), np.array([11.0, 12.1, 10.6])
    d = welch_difference((a.mean(), a.std(ddof=1), 4), (b.mean(), b.std(ddof=1), 3))
    ref = stats.ttest_ind(b, a, equal_var=False).confidence_interval(0.95)
    assert d.mean == pytest.approx(b.mean() - a.mean())
    assert (d.low, d.high) == pytest.approx((ref.low, ref.high))
    single = welch_difference((1.0, None, 1), (2.0, 0.5, 3))
    assert single.mean == 1.0 and single.low is None
    assert welch_difference((1.0, 0.0, 3), (1.0, 0.0, 3)).excludes_zero is False


def test_probability_of_improvement_follows_rliable():
    better, worse = [1.0, 2.0, 3.0], [0.0, 0.5, 0.9]
    assert probability_of_improvement(better, worse, "max") == 1.0
    assert probability_of_improvement(better, worse, "min") == 0.0
    # Mann-Whitney counting: ties count one half.
    assert probability_of_improvement([1.0, 1.0, 1.0], [1.0, 1.0, 1.0], "max") == 0.5
    mixed = probability_of_improvement([1.0, 3.0, 5.0], [2.0, 4.0, 6.0], "max")
    assert mixed == pytest.approx(3 / 9)
    u = stats.mannwhitneyu([1.0, 3.0, 5.0], [2.0, 4.0, 6.0]).statistic
    assert mixed == pytest.approx(u / 9)
    assert probability_of_improvement([1.0] * (MIN_POI_SEEDS - 1), [0.0] * 5, "max") is None
