"""The evaluations table round-trips, and the report lays out Table I with the right deltas."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from selection.finetune.report import build_report, to_csv, to_markdown
from store.errors import NotFound
from store.evaluations import (
    Evaluation,
    accuracy_by_task,
    get_evaluation,
    insert_evaluation,
    list_evaluations,
)

T0 = datetime(2026, 1, 1, 12, 0, 0)


def _ev(
    eval_id,
    acc,
    *,
    model="m",
    adapter=None,
    ft=None,
    sel_run=None,
    sel=None,
    n_train=None,
    t=None,
    minutes=0,
):
    return Evaluation(
        eval_id=eval_id, dataset="held", model=model, engine="transformers", judge="rule",
        n=100, n_correct=round(acc * 100), n_undecided=0, accuracy=acc,
        per_task={"mc": {"n": 50, "correct": 25, "accuracy": 0.5}}, adapter=adapter,
        finetune_run_id=ft, selection_run_id=sel_run, selection=sel, n_train=n_train,
        n_full=1000, train_time_s=t, created_at=T0 + timedelta(minutes=minutes),
    )  # fmt: skip


def test_accuracy_counts_undecided_as_wrong_and_splits_by_task():
    n, ok, undecided, per = accuracy_by_task(["mc", "mc", "yesno", None], [True, None, False, True])
    assert (n, ok, undecided) == (4, 2, 1)
    assert per == {
        "mc": {"n": 2, "correct": 1, "accuracy": 0.5},
        "yesno": {"n": 1, "correct": 0, "accuracy": 0.0},
        "all": {"n": 1, "correct": 1, "accuracy": 1.0},
    }


def test_evaluations_round_trip_through_the_catalog(catalog):
    ev = _ev("e1", 0.5, adapter="/a", ft="ft1", sel_run="clip", sel="P1+W", n_train=600, t=12.5)
    with catalog.transaction() as con:
        insert_evaluation(con, ev)
        insert_evaluation(con, _ev("e2", 0.4, minutes=1))
    with catalog.connect() as con:
        back = get_evaluation(con, "e1")
        assert back == ev
        assert [e.eval_id for e in list_evaluations(con, "held")] == ["e1", "e2"]
        assert list_evaluations(con, "other") == []
        with pytest.raises(NotFound, match="no evaluation 'zz'"):
            get_evaluation(con, "zz")


def test_report_rows_deltas_and_reduction_per_model():
    evals = [
        _ev("z", 0.40),
        _ev("f-old", 0.10, adapter="/f0", ft="f0", n_train=800, t=100.0),
        _ev("f", 0.60, adapter="/f", ft="f", n_train=800, t=100.0, minutes=5),  # latest full wins
        _ev("c", 0.62, adapter="/c", ft="c", sel_run="clip", sel="P1+W", n_train=600, t=70.0),
        _ev("o", 0.55, adapter="/o", ft="o", sel_run="ofa", sel="default", n_train=200, t=30.0),
        _ev("z2", 0.30, model="other"),
    ]
    rows = build_report(evals)
    assert [(r.model, r.label) for r in rows] == [
        ("m", "zero-shot"), ("m", "full"), ("m", "clip/P1+W"), ("m", "ofa/default"), ("other", "zero-shot"),
    ]  # fmt: skip
    by = {r.label: r for r in rows if r.model == "m"}
    assert by["full"].eval_id == "f" and by["full"].reduction == 0.0
    assert by["clip/P1+W"].delta_accuracy == pytest.approx(0.02)
    assert by["clip/P1+W"].reduction == pytest.approx(0.25)
    assert by["clip/P1+W"].delta_time_s == pytest.approx(-30.0)
    assert by["ofa/default"].delta_accuracy == pytest.approx(-0.05)
    assert by["zero-shot"].delta_accuracy is None and by["zero-shot"].n_train is None
    md = to_markdown(rows).splitlines()
    assert md[0].split(" | ")[:3] == ["| Model", "Training data", "Accuracy"]
    assert (
        "| m | clip/P1+W | 62.00% | +2.00% | 600 | 25.00% | 70.0s | -30.0s | 100 | 50.00% |" in md
    )
    csv_lines = to_csv(rows).splitlines()
    assert csv_lines[0].endswith("n_eval,acc_mc")
    assert csv_lines[3].startswith("m,clip/P1+W,c,0.62,0.02,600,800,0.25,70.0,-30.0,100,0.5")


def test_without_a_full_run_reduction_uses_the_dataset_size():
    rows = build_report([_ev("o", 0.5, adapter="/o", ft="o", sel_run="ofa", sel="d", n_train=250)])
    assert rows[0].reduction == pytest.approx(0.75) and rows[0].delta_accuracy is None


def test_foreign_adapter_is_not_mistaken_for_the_full_data_row():
    ev = _ev("x", 0.5, adapter="/runs/swift-out/checkpoint-100/")
    assert ev.label == "adapter:checkpoint-100"
    assert build_report([ev])[0].delta_accuracy is None


def test_dataset_size_then_insert_on_one_connection(catalog):
    from store.evaluations import dataset_size
    from tests.helpers.datasets import insert_synthetic_samples

    insert_synthetic_samples(catalog, "train", 5)
    with catalog.transaction() as con:
        assert dataset_size(con, "train") == 5 and dataset_size(con, "nope") is None
        insert_evaluation(con, _ev("e", 0.5))
        assert get_evaluation(con, "e").accuracy == 0.5
        insert_evaluation(con, _ev("e2", 0.5))


def test_base_model_mismatch_is_reported(tmp_path):
    from selection.finetune.evaluate import base_model_mismatch

    (tmp_path / "m").mkdir()
    assert base_model_mismatch(str(tmp_path / "m"), {"base_model": str(tmp_path / "m")}) is None
    assert base_model_mismatch("org/x", {}) is None
    assert "trained on org/y, not org/x" in base_model_mismatch("org/x", {"base_model": "org/y"})
