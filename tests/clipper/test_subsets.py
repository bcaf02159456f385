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
    # eq. 6 as Table I reads it: fixed by any demonstration from P, whatever tau
    w_c = {q for q, ok in zip(log["query_id"], log["correct"], strict=True) if ok}
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
            # P_tau / P_not partition P; W_c / W_u partition W (unprobed W samples are in W_u)
            assert got[P] | got[P_NOT] == p_set and not (got[P] & got[P_NOT])
            assert got[W_C] | got[W_U] == w_set and not got[UNPROBED]
            assert len(got[W_C]) + len(got[W_U]) == len(w_set)
            assert w_set - probed <= got[W_U]
            assert got[EXCLUDED] == ex_set
            # c(p), P_tau and W_c recomputed from the log alone
            assert {int(i): int(v) for i, v, k in zip(ids, s.c_p, kn, strict=True) if k == "P"} == c
            assert got[P] == p_tau
            assert got[W_C] == w_c
            # coresets
            sel = {name: set(ids[mask].tolist()) for name, mask in s.selections.items()}
            assert sel[f"P{tau}+W"] == p_tau | w_set
            assert sel[f"P{tau}+Wc"] == p_tau | w_c
            assert sel[f"P{tau}+Wu"] == p_tau | got[W_U]
            for w in ("W", "Wc", "Wu"):
                assert not (sel[f"P{tau}+{w}"] & (got[P_NOT] | ex_set))
        # tau = 2 is stricter than tau = 1
        assert set(s.members(2, P)) <= set(s.members(1, P))
        assert set(s.members(2, W_C)) == set(s.members(1, W_C))  # W_c does not depend on tau
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


def test_unprobed_are_in_wu_and_old_readings_are_opt_in_deviations():
    ids = np.arange(4)
    kn = np.array(["P", "W", "W", "W"], dtype=object)
    s = compute_subsets(ids, kn, [0, 0], [1, 2], [True, False])
    assert s.labels[1].tolist() == [P, W_C, W_U, W_U]  # sample 3 was never probed
    assert s.selections["P1+Wu"].tolist() == [True, False, True, True]
    # c(0) = 1 < 2: at tau = 2 the demonstration leaves P_tau, but what it fixed stays W_c
    assert s.labels[2].tolist() == [P_NOT, W_C, W_U, W_U]
    assert s.selections["P2+Wc"].tolist() == [False, True, False, False]
    old = compute_subsets(
        ids, kn, [0, 0], [1, 2], [True, False], unprobed_in_wu=False, wc_from_ptau=True
    )
    assert old.labels[1].tolist() == [P, W_C, W_U, UNPROBED]
    assert old.selections["P1+Wu"].tolist() == [True, False, True, False]
    assert old.labels[2].tolist() == [P_NOT, W_U, W_U, UNPROBED]
    assert old.selections["P2+Wc"].tolist() == [False] * 4


# Table I of the paper, Qwen2.5-VL-7B on VRSBench (10,000 training samples): coreset sizes.
TABLE_I = {"P1+W": 7590, "P1+Wc": 4646, "P1+Wu": 6104, "P2+W": 5409, "P2+Wc": 2465, "P2+Wu": 3923}


def _table_i_log(rng: np.random.Generator, *, unprobed: int, m: int = 10):
    """A synthetic zero-shot split and probe log with the paper's sizes: |W| = 4430 of which
    |W_c| = 1486, |P_1| = 3160, |P_2| = 979 (and |P| = 5570, the rest of the 10,000)."""
    n, n_w, n_wc = 10_000, 4430, 1486
    ids = rng.permutation(10**6)[:n].astype(np.int64)
    kn = np.array(["W"] * n_w + ["P"] * (n - n_w), dtype=object)
    w, p = ids[:n_w], ids[n_w:]
    w_c, w_rest = w[:n_wc], w[n_wc:]
    c = np.zeros(len(p), dtype=np.int64)  # c(p): 979 demos >= 2, 2181 == 1, the rest 0
    c[:979] = rng.integers(2, 5, size=979)
    c[979:3160] = 1
    demo, query, ok = [], [], []
    right_slots = [(d, k) for d, k in zip(p, c, strict=True) for _ in range(k)]
    order = rng.permutation(len(right_slots))
    targets = np.concatenate([w_c, rng.choice(w_c, size=len(order) - n_wc)])  # every W_c fixed
    for slot, t in zip(order, targets, strict=True):
        demo.append(right_slots[slot][0])
        query.append(t)
        ok.append(True)
    probed = np.concatenate([w_c, w_rest[unprobed:]])  # the first `unprobed` of W_u never asked
    for d, k in zip(p, c, strict=True):
        for q in rng.choice(probed, size=m - k):
            demo.append(d)
            query.append(q)
            ok.append(False)
    return ids, kn, np.array(demo), np.array(query), ok


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_table_i_arithmetic(seed):
    """|W_c| = 1486 and |W_u| = 2944 at both tau; |P_tau + W| - |P_tau + W_u| = |W_c| etc."""
    rng = np.random.default_rng(seed)
    ids, kn, demo, query, ok = _table_i_log(rng, unprobed=150)
    s = compute_subsets(ids, kn, demo, query, ok)
    sizes = {name: int(mask.sum()) for name, mask in s.selections.items()}
    assert sizes == TABLE_I
    for tau in (1, 2):
        labels = s.labels[tau].tolist()
        assert (labels.count(W_C), labels.count(W_U)) == (1486, 2944)
        assert labels.count(W_C) + labels.count(W_U) == (kn == "W").sum() == 4430
        w = sizes[f"P{tau}+W"]
        assert w - sizes[f"P{tau}+Wc"] == 2944 and w - sizes[f"P{tau}+Wu"] == 1486
    assert int(((kn == "W") & (s.n_probes == 0)).sum()) == 150  # unprobed, inside W_u
    # The old reading (W_c only from P_tau) cannot reproduce the table: W_c shrinks at tau = 2.
    dev = compute_subsets(ids, kn, demo, query, ok, wc_from_ptau=True)
    assert (dev.labels[2] == W_C).sum() < 1486 == (dev.labels[1] == W_C).sum()


def test_foreign_probe_log_is_refused():
    ids = np.arange(3)
    kn = np.array(["P", "W", "W"], dtype=object)
    with pytest.raises(ThresherError, match="not in the input"):
        compute_subsets(ids, kn, [0], [7], [True])
    with pytest.raises(ThresherError, match="outside P x W"):
        compute_subsets(ids, kn, [1], [2], [True])
