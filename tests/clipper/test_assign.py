"""Probe assignment: distinct queries per demonstration, seeded, balanced leaves nobody unprobed."""

from __future__ import annotations

import numpy as np
import pytest

from selection.clipper.assign import assign_probes
from store.errors import ThresherError


def _cases(n_cases: int = 150):
    rng = np.random.default_rng(7)
    for _ in range(n_cases):
        n_p, n_w = int(rng.integers(0, 40)), int(rng.integers(0, 40))
        ids = rng.permutation(10_000)[: n_p + n_w] + 5 * 2**32  # realistic, non-contiguous ids
        m = int(rng.integers(1, 12))
        yield ids[:n_p], ids[n_p:], m, int(rng.integers(0, 2**31))


@pytest.mark.parametrize("assignment", ["random", "balanced"])
def test_every_demo_gets_min_m_w_distinct_queries_from_w(assignment):
    for demos, queries, m, seed in _cases():
        plan = assign_probes(demos, queries, m, assignment, seed)
        k = min(m, len(queries))
        assert len(plan) == len(demos) * k
        assert plan.demos.tolist() == list(demos)
        assert set(plan.query_id.tolist()) <= set(queries.tolist())
        for i, d in enumerate(demos):
            dem, qs = plan.slice_demos(i, i + 1)
            assert (dem == d).all()
            assert len(set(qs.tolist())) == len(qs) == k
        # probes of one demonstration are contiguous (prefix-cache order)
        runs = np.flatnonzero(np.diff(plan.demo_id)) if len(plan) else []
        assert len(runs) <= max(len(demos) - 1, 0)


@pytest.mark.parametrize("assignment", ["random", "balanced"])
def test_same_seed_same_plan_other_seed_other_plan(assignment):
    demos, queries = np.arange(30), np.arange(100, 160)
    a = assign_probes(demos, queries, 5, assignment, 11)
    b = assign_probes(demos, queries, 5, assignment, 11)
    c = assign_probes(demos, queries, 5, assignment, 12)
    assert np.array_equal(a.query_id, b.query_id)
    assert not np.array_equal(a.query_id, c.query_id)


def test_balanced_probes_everyone_about_equally_once_enough_probes():
    for demos, queries, m, seed in _cases():
        plan = assign_probes(demos, queries, m, "balanced", seed)
        if not len(queries):
            continue
        counts = np.array([(plan.query_id == q).sum() for q in queries])
        assert counts.max() - counts.min() <= 1
        if len(demos) * m >= len(queries):
            assert counts.min() >= 1, "balanced assignment left a W sample unprobed"


def test_random_assignment_can_leave_samples_unprobed_but_balanced_does_not():
    # 4 demos x 2 queries over 8 W samples: random leaves some unprobed for most seeds.
    demos, queries = np.arange(4), np.arange(10, 18)
    unprobed_random = [
        len(set(queries) - set(assign_probes(demos, queries, 2, "random", s).query_id.tolist()))
        for s in range(20)
    ]
    unprobed_balanced = [
        len(set(queries) - set(assign_probes(demos, queries, 2, "balanced", s).query_id.tolist()))
        for s in range(20)
    ]
    assert max(unprobed_random) > 0
    assert max(unprobed_balanced) == 0


def test_random_assignment_is_uniform_over_w():
    demos, queries = np.arange(2000), np.arange(10_000, 10_020)
    plan = assign_probes(demos, queries, 3, "random", 3)
    counts = np.bincount(plan.query_id - 10_000, minlength=20)
    expected = 2000 * 3 / 20
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected))


def test_bad_arguments_are_user_errors():
    with pytest.raises(ThresherError, match="m must be"):
        assign_probes([1], [2], 0, "random", 0)
    with pytest.raises(ThresherError, match="balanced"):
        assign_probes([1], [2], 1, "roundrobin", 0)
