"""Subset logic as properties of recorded probe logs (written to and read back from Parquet)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from selection.clipper.assign import assign_probes
from selection.clipper.subsets import (
    EXCLUDED,
    P_NOT,
    UNPROBED,
    W_C,
    W_U,
    P,
    compute_subsets,
    knowledge_split,
)
from store.errors import ThresherError


def _recorded_run(rng: np.random.Generator, tmp_path, assignment: str, seed: int):
    n = int(rng.integers(0, 70))
    ids = np.sort(rng.choice(10**6, size=n, replace=False)).astype(np.int64) + 3 * 2**32
    correct = [None if rng.random() < 0.05 else bool(rng.random() < 0.45) for _ in range(n)]
    excluded = rng.random(n) < 0.08
    kn = knowledge_split(correct, excluded)
    demos, queries = ids[kn == "P"], ids[kn == "W"]
    m = int(rng.integers(1, 8))
    plan = assign_probes(demos, queries, m, assignment, seed)
    # A probe is right more often for "strong" demonstrations, as the paper's c(p) assumes.
    strength = {int(d): rng.random() for d in demos}
    ok = [
        None if rng.random() < 0.03 else bool(rng.random() < strength[int(d)] * 0.6)
        for d in plan.demo_id
    ]
    path = tmp_path / f"probe-{seed}.parquet"
    pq.write_table(
        pa.table({"demo_id": plan.demo_id, "query_id": plan.query_id, "correct": ok}), path
    )
    log = pq.read_table(path).to_pydict()
    return ids, kn, log, m


def _brute_force(ids, kn, log, tau):
    c = {int(i): 0 for i, k in zip(ids, kn, strict=True) if k == "P"}
    for d, ok in zip(log["demo_id"], log["correct"], strict=True):
        c[d] += bool(ok)
    p_tau = {d for d, v in c.items() if v >= tau}
    w_c = {
        q
        for d, q, ok in zip(log["demo_id"], log["query_id"], log["correct"], strict=True)
        if ok and d in p_tau
    }
    probed = set(log["query_id"])
    return c, p_tau, w_c, probed


@pytest.mark.parametrize("assignment", ["random", "balanced"])
def test_partitions_and_recomputability(assignment, tmp_path):
    rng = np.random.default_rng(123 if assignment == "random" else 321)
    for case in range(80):
        ids, kn, log, m = _recorded_run(rng, tmp_path, assignment, case)
        s = compute_subsets(ids, kn, log["demo_id"], log["query_id"], log["correct"])
        all_ids = set(ids.tolist())
        p_set, w_set = set(ids[kn == "P"].tolist()), set(ids[kn == "W"].tolist())
        ex_set = set(ids[kn == EXCLUDED].tolist())
        assert p_set | w_set | ex_set == all_ids and not (p_set & w_set)
        assert not (ex_set & (p_set | w_set))
        for tau in (1, 2):
            c, p_tau, w_c, probed = _brute_force(ids, kn, log, tau)
            lab = {int(i): str(x) for i, x in zip(ids, s.labels[tau], strict=True)}
            got = {
                name: {i for i, x in lab.items() if x == name}
                for name in (P, P_NOT, W_C, W_U, UNPROBED, EXCLUDED)
            }
            # P_tau / P_not partition P; W_c / W_u / unprobed partition W
            assert got[P] | got[P_NOT] == p_set and not (got[P] & got[P_NOT])
            assert got[W_C] | got[W_U] | got[UNPROBED] == w_set
            assert sum(len(got[x]) for x in (W_C, W_U, UNPROBED)) == len(w_set)
            assert got[EXCLUDED] == ex_set
            # c(p), P_tau and W_c recomputed from the log alone
            assert {int(i): int(v) for i, v, k in zip(ids, s.c_p, kn, strict=True) if k == "P"} == c
            assert got[P] == p_tau
            assert got[W_C] == w_c
            assert got[UNPROBED] == w_set - probed
            # coresets
            sel = {name: set(ids[mask].tolist()) for name, mask in s.selections.items()}
            assert sel[f"P{tau}+W"] == p_tau | w_set
            assert sel[f"P{tau}+Wc"] == p_tau | w_c
            assert sel[f"P{tau}+Wu"] == p_tau | got[W_U]
            for w in ("W", "Wc", "Wu"):
                assert not (sel[f"P{tau}+{w}"] & (got[P_NOT] | ex_set))
        # tau = 2 is stricter than tau = 1
        assert set(s.members(2, P)) <= set(s.members(1, P))
        assert set(s.members(2, W_C)) <= set(s.members(1, W_C))
        # fixed_by lists exactly the demonstrations whose probe was answered correctly
        fixed = {}
        for d, q, ok in zip(log["demo_id"], log["query_id"], log["correct"], strict=True):
            if ok:
                fixed.setdefault(q, []).append(d)
        assert {int(i): f for i, f in zip(ids, s.fixed_by, strict=True) if f} == {
            q: sorted(v) for q, v in fixed.items()
        }
        n_probes = {int(i): int(v) for i, v, k in zip(ids, s.n_probes, kn, strict=True) if k == "W"}
        assert n_probes == {q: log["query_id"].count(q) for q in w_set}


def test_same_seed_same_subsets(tmp_path):
    runs = []
    for _ in range(2):
        rng = np.random.default_rng(99)
        ids, kn, log, _ = _recorded_run(rng, tmp_path, "random", 5)
        s = compute_subsets(ids, kn, log["demo_id"], log["query_id"], log["correct"])
        runs.append((s.labels[1].tolist(), s.labels[2].tolist(), s.c_p.tolist(), s.fixed_by))
    assert runs[0] == runs[1]


def test_balanced_leaves_none_unprobed_when_enough_probes():
    ids = np.arange(100, 160)
    kn = np.array(["P"] * 12 + ["W"] * 48, dtype=object)
    plan = assign_probes(ids[:12], ids[12:], 4, "balanced", 1)  # 12 * 4 = 48 = |W|
    s = compute_subsets(ids, kn, plan.demo_id, plan.query_id, [False] * len(plan))
    assert UNPROBED not in set(s.labels[1].tolist())
    assert (s.n_probes[12:] == 1).all()


def test_unprobed_joins_wu_only_when_asked():
    ids = np.arange(4)
    kn = np.array(["P", "W", "W", "W"], dtype=object)
    s = compute_subsets(ids, kn, [0, 0], [1, 2], [True, False])
    assert s.labels[1].tolist() == [P, W_C, W_U, UNPROBED]
    assert s.selections["P1+Wu"].tolist() == [True, False, True, False]
    s2 = compute_subsets(ids, kn, [0, 0], [1, 2], [True, False], unprobed_in_wu=True)
    assert s2.selections["P1+Wu"].tolist() == [True, False, True, True]
    # c(0) = 1 < 2: at tau = 2 the demonstration and everything it fixed fall out
    assert s.labels[2].tolist() == [P_NOT, W_U, W_U, UNPROBED]
    assert s.selections["P2+Wc"].tolist() == [False] * 4


def test_foreign_probe_log_is_refused():
    ids = np.arange(3)
    kn = np.array(["P", "W", "W"], dtype=object)
    with pytest.raises(ThresherError, match="not in the input"):
        compute_subsets(ids, kn, [0], [7], [True])
    with pytest.raises(ThresherError, match="outside P x W"):
        compute_subsets(ids, kn, [1], [2], [True])
