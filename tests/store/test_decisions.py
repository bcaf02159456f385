"""Decision log: latest wins, clear restores the algorithm, groups, one fast batch, nothing deleted."""

from __future__ import annotations

import time

import pyarrow as pa
import pytest

from store import decisions
from store.errors import NotFound, ThresherError
from tests.helpers.datasets import insert_synthetic_samples, sample_ids, write_run


def _result(ids, k=4):
    """An OFA-shaped result: cluster = i % k, selected = every 3rd, wide = every 2nd."""
    n = len(ids)
    return pa.table(
        {
            "sample_id": pa.array(ids, pa.int64()),
            "cluster": pa.array([i % k for i in range(n)], pa.int32()),
            "confidence": pa.array([i / n for i in range(n)], pa.float32()),
            "selected": pa.array([i % 3 == 0 for i in range(n)]),
            "wide": pa.array([i % 2 == 0 for i in range(n)]),
            "P1+W": pa.array([i % 5 == 0 for i in range(n)]),
        }
    )


@pytest.fixture
def run(catalog):
    insert_synthetic_samples(catalog, "syn", 40)
    ids = sample_ids(catalog, "syn")
    outputs = {
        "table": "result",
        "groups": [{"column": "cluster", "label": "Cluster"}],
        "selections": {"default": "selected", "wide": "wide", "P1+W": "P1+W"},
        "default_selection": "default",
    }
    run_dir = write_run(catalog, "run-a", "syn", _result(ids), outputs=outputs, shards=3)
    return run_dir, ids


def _eff(catalog, run_dir, selection=None):
    with catalog.connect() as con:
        return decisions.effective(con, run_dir, selection).to_pydict()


def test_latest_decision_wins_and_clear_restores(catalog, run):
    run_dir, ids = run
    base = _eff(catalog, run_dir)
    assert base["sample_id"] == ids  # result order
    assert base["algorithmic"] == [i % 3 == 0 for i in range(40)]
    assert base["override"] == [None] * 40 and base["effective"] == base["algorithmic"]

    a, b, c = ids[0], ids[1], ids[2]  # a: algo keep, b/c: algo drop
    assert decisions.record(catalog, "run-a", [a], "drop", author="ann", note="blurry") == 1
    assert decisions.record(catalog, "run-a", [b, c, b], "keep", author="bob") == 2  # de-duplicated
    assert decisions.record(catalog, "run-a", [c], "drop", author="ann") == 1  # later wins
    eff = _eff(catalog, run_dir)
    assert eff["override"][:3] == [False, True, False]
    assert eff["effective"][:4] == [
        False,
        True,
        False,
        True,
    ]  # 4th untouched: algorithmic (3 % 3 == 0)

    decisions.record(catalog, "run-a", [a, c], "clear")  # undo = a new entry
    eff = _eff(catalog, run_dir)
    assert eff["override"][:3] == [None, True, None]
    assert eff["effective"][:3] == [True, True, False]

    with catalog.connect() as con:
        log = decisions.history(con, "run-a").to_pydict()
        assert log["action"] == ["drop", "keep", "keep", "drop", "clear", "clear"]
        assert log["scope"][:3] == ["sample", "list", "list"]
        assert log["note"][0] == "blurry" and log["author"][0] == "ann"
        assert log["seq"] == sorted(log["seq"])  # append order
        assert decisions.decision_stats(con, "run-a") == (6, log["seq"][-1])
        assert decisions.history(con, "run-a", a).num_rows == 2


def test_decisions_apply_to_any_selection_of_the_run(catalog, run):
    run_dir, ids = run
    decisions.record(catalog, "run-a", ids[:2], "drop")
    eff = _eff(catalog, run_dir, "P1+W")  # a column name that needs quoting
    assert eff["algorithmic"][:6] == [True, False, False, False, False, True]
    assert eff["effective"][:6] == [False, False, False, False, False, True]
    assert _eff(catalog, run_dir, "wide")["effective"][:3] == [False, False, True]
    with pytest.raises(NotFound, match="no selection 'nope'.*default, wide, P1\\+W"):
        _eff(catalog, run_dir, "nope")


def test_group_decision_and_counts(catalog, run):
    run_dir, ids = run
    n = decisions.record_group(catalog, "run-a", "cluster", 2, "keep", note="all good")
    assert n == 10
    decisions.record(catalog, "run-a", [ids[2]], "drop")  # a member of cluster 2, decided later
    with catalog.connect() as con:
        log = decisions.history(con, "run-a").to_pydict()
        counts = decisions.effective_counts(con, run_dir, None, "cluster").to_pydict()
    assert set(log["scope"][:10]) == {"group:cluster=2"}
    algo = [i % 3 == 0 for i in range(40)]
    eff = [(i % 4 == 2 and i != 2) or (algo[i] and i % 4 != 2) for i in range(40)]
    assert counts["group"] == [0, 1, 2, 3]
    assert counts["n"] == [10, 10, 10, 10]
    assert counts["kept_algo"] == [sum(algo[i] for i in range(40) if i % 4 == g) for g in range(4)]
    assert counts["kept_effective"] == [
        sum(eff[i] for i in range(40) if i % 4 == g) for g in range(4)
    ]
    assert _eff(catalog, run_dir)["effective"] == eff
    with catalog.connect() as con:  # the one count Home, the browser and `thresher runs` show
        assert decisions.effective_totals(con, run_dir) == (40, sum(eff), 10)
    with pytest.raises(NotFound, match="no cluster = 9; values include: 0, 1, 2, 3"):
        decisions.record_group(catalog, "run-a", "cluster", 9, "keep")
    with pytest.raises(NotFound, match="no column 'clutser'"):
        decisions.record_group(catalog, "run-a", "clutser", 1, "keep")
    with catalog.connect() as con, pytest.raises(NotFound, match="no column 'clutser'"):
        decisions.effective_counts(con, run_dir, None, "clutser")


def test_bad_decisions_record_nothing(catalog, run):
    _, ids = run
    insert_synthetic_samples(catalog, "other", 3)
    foreign = sample_ids(catalog, "other")
    with pytest.raises(NotFound, match="not in the dataset of run run-a"):
        decisions.record(catalog, "run-a", [ids[0], foreign[0]], "keep")
    with pytest.raises(ThresherError, match="unknown decision 'maybe'"):
        decisions.record(catalog, "run-a", [ids[0]], "maybe")
    with pytest.raises(NotFound, match="no run 'ghost'"):
        decisions.record(catalog, "ghost", [ids[0]], "keep")
    with catalog.connect() as con:
        assert con.execute("SELECT count(*) FROM decisions").fetchone()[0] == 0


def test_run_without_result_or_outputs_is_explained(catalog, run):
    run_dir, ids = run
    for p in (run_dir / "result").glob("*.parquet"):
        p.unlink()
    with pytest.raises(ThresherError, match="has no result yet"):
        _eff(catalog, run_dir)
    write_run(catalog, "ft", "syn", _result(ids), outputs={}, method="finetune", register=False)
    with pytest.raises(ThresherError, match="selects nothing"):
        _eff(catalog, catalog.workspace.run_dir("ft"))


def test_a_50k_cluster_override_is_one_fast_batch(catalog):
    insert_synthetic_samples(catalog, "big", 60_000)
    ids = sample_ids(catalog, "big")
    run_dir = write_run(catalog, "big-run", "big", _result(ids, k=2), shards=4)
    decisions.record(catalog, "big-run", ids[:10], "drop")  # warm the catalog file
    cluster0 = decisions.group_sample_ids(run_dir, "cluster", 0)
    assert len(cluster0) == 30_000
    t0 = time.perf_counter()
    n = decisions.record(
        catalog, "big-run", pa.concat_arrays([cluster0, pa.array(ids[1:40001:2])]), "keep"
    )
    elapsed = time.perf_counter() - t0
    assert n == 50_000
    print(f"50K decisions in one batch: {elapsed:.3f}s")
    assert elapsed < 1.0, f"50K decisions took {elapsed:.2f}s"
    t0 = time.perf_counter()
    with catalog.connect() as con:
        eff = decisions.effective(con, run_dir)
    assert time.perf_counter() - t0 < 2.0
    assert pa.compute.sum(eff["effective"]).as_py() == 50_000 + sum(
        1 for i in range(40000, 60000) if i % 2 == 1 and i % 3 == 0
    )
