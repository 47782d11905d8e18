import numpy as np
import pytest

from eval.stats.intervals import bootstrap_ci, percentile


def test_bootstrap_contains_mean_and_is_seeded():
    scores = [0, 1, 1, 0, 1, 1, 1, 0, 1, 1] * 5
    a = bootstrap_ci(scores, seed=1)
    b = bootstrap_ci(scores, seed=1)
    assert a == b
    assert a.mean == pytest.approx(0.7)
    assert a.low < 0.7 < a.high
    assert a.n == 50


def test_bootstrap_width_matches_normal_theory():
    # For a mean of n Bernoulli(0.5) draws the 95% interval half-width is ~1.96*sqrt(.25/n).
    rng = np.random.default_rng(0)
    x = rng.integers(0, 2, size=400).astype(float)
    ci = bootstrap_ci(list(x), n_resamples=4000)
    expected = 1.96 * np.sqrt(x.mean() * (1 - x.mean()) / x.size)
    assert (ci.high - ci.low) / 2 == pytest.approx(expected, rel=0.15)


def test_bootstrap_skips_none_and_handles_edges():
    assert bootstrap_ci([None, None]).mean is None
    one = bootstrap_ci([0.4, None])
    assert (one.mean, one.low, one.high, one.n) == (0.4, 0.4, 0.4, 1)
    same = bootstrap_ci([1.0] * 10)
    assert same.low == same.high == 1.0


def test_percentile():
    assert percentile([], 50) is None
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], 95) == pytest.approx(10.5)
