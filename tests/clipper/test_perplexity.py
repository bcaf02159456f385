"""Perplexity summaries (Fig. 4) and the middle-perplexity baseline on inputs with known answers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from selection.clipper.baselines import middle_band
from selection.clipper.perplexity import (
    describe,
    histogram_edges,
    ks_statistic,
    log_perplexity,
    summarize,
    wasserstein1,
)


def test_log_perplexity_is_mean_nll_per_answer_token():
    assert log_perplexity(-6.0, 3) == 2.0
    assert math.isclose(math.exp(log_perplexity(math.log(0.5) * 4, 4)), 2.0)
    assert math.isnan(log_perplexity(0.0, 0))


def test_distances_match_scipy_and_known_values():
    rng = np.random.default_rng(0)
    for _ in range(20):
        a = rng.normal(size=int(rng.integers(1, 60)))
        b = rng.normal(0.3, 1.4, size=int(rng.integers(1, 60)))
        assert math.isclose(wasserstein1(a, b), stats.wasserstein_distance(a, b), abs_tol=1e-9)
        assert math.isclose(ks_statistic(a, b), stats.ks_2samp(a, b).statistic, abs_tol=1e-9)
    x = np.array([0.0, 1.0, 2.0])
    assert math.isclose(wasserstein1(x, x + 0.75), 0.75)
    assert ks_statistic(x, x) == 0.0
    assert ks_statistic(x, x + 10) == 1.0
    assert math.isnan(wasserstein1(x, np.array([])))


def test_describe_known_distribution():
    v = np.arange(1, 101, dtype=float)
    edges = histogram_edges(v, 10)
    d = describe(v, v, edges)
    assert d["n"] == 100 and d["mean"] == 50.5
    assert d["hist"] == [10] * 10
    assert math.isclose(
        sum(x * w for x, w in zip(d["density"], np.diff(edges), strict=True)), 1.0, abs_tol=1e-4
    )
    assert d["quantiles"]["q50"] == 50.5 and d["quantiles"]["q05"] == pytest.approx(5.95)
    assert d["wasserstein1"] == 0.0 and d["ks"] == 0.0
    low = describe(v[:50], v, edges)
    assert low["hist"] == [10] * 5 + [0] * 5
    assert low["wasserstein1"] == pytest.approx(25.0)  # the lower half sits 25 below on average
    assert low["ks"] == pytest.approx(0.5)


def test_summarize_skips_missing_values_and_is_json():
    lp = [1.0, 2.0, float("nan"), 3.0, 4.0]
    groups = {
        "knowledge": {"P": np.array([1, 1, 1, 0, 0], bool), "W": np.array([0, 0, 0, 1, 1], bool)}
    }
    s = json.loads(json.dumps(summarize(lp, groups, bins=4)))
    assert s["whole"]["n"] == 4
    assert s["knowledge"]["P"]["n"] == 2 and s["knowledge"]["P"]["mean"] == 1.5
    assert s["knowledge"]["W"]["hist"] == [0, 0, 1, 1]
    assert len(s["edges"]) == 5 and s["edges"][0] == 1.0 and s["edges"][-1] == 4.0
    empty = summarize([], {"knowledge": {"P": np.zeros(0, bool)}})
    assert empty["whole"]["n"] == 0 and empty["knowledge"]["P"]["mean"] is None


def test_middle_band_keeps_the_middle_and_breaks_ties_by_id():
    lp = [5.0, 1.0, 3.0, 2.0, 4.0, float("nan")]
    ids = [10, 11, 12, 13, 14, 15]
    assert middle_band(lp, ids, 3).tolist() == [False, False, True, True, True, False]
    assert middle_band(lp, ids, 2).tolist() == [False, False, True, True, False, False]
    assert middle_band(lp, ids, 99).sum() == 5  # never keeps a sample without perplexity
    assert middle_band(lp, ids, 0).sum() == 0
    tied = middle_band([1.0, 1.0, 1.0, 1.0], [4, 3, 2, 1], 2)
    assert tied.tolist() == [False, True, True, False]  # ids 3 and 2 are the middle by id


def test_middle_band_has_median_near_the_whole_median():
    rng = np.random.default_rng(1)
    lp = rng.lognormal(size=1001)
    keep = middle_band(lp, np.arange(1001), 301)
    assert keep.sum() == 301
    assert np.median(lp[keep]) == pytest.approx(np.median(lp))
    assert lp[keep].min() > np.quantile(lp, 0.3) and lp[keep].max() < np.quantile(lp, 0.7)
