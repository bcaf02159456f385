"""Hub shards streamed: the column-wise conversion gives the row reader's rows byte for byte, rows
are finished and staged in chunks (ids, flags and fingerprint as if read whole), the staging file
never outlives the ingest, and the catalog write's memory cap gives way when DuckDB needs more."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from store.errors import IngestError
from store.ingest import columnar, ingest, shards
from store.ingest.readers import Record
from tests.store.hub_helpers import (
    BLUE,
    IMAGE,
    ONEVISION,
    RED,
    image_bytes,
    write_onevision_shards,
)
from tests.store.ingest_helpers import samples, snapshot

# Text in the shapes real data has: quotes, backslashes, blanks around <image>, tabs, \b and \f
# (JSON's short escapes), non-ASCII, empty and missing values, a system turn, no answer.
TRICKY = [
    ("human", ' \t<image>\n  What does "this" say?\\n  '),
    ("gpt", "Line one.\nLine two\twith a tab, a \b backspace and a \f form feed."),
    ("human", "<image><image>Two more: ünïcødé, 中文, emoji 🙂."),
    ("gpt", None),
]


def _row(i: int, image: dict | None, turns: list | None, **extra: object) -> dict:
    conv = None if turns is None else [{"from": f, "value": v} for f, v in turns]
    return {"id": f"ov-{i}", "image": image, "conversations": conv, "data_source": "mix", **extra}


def _rows() -> list[dict]:
    return [
        _row(0, {"bytes": RED, "path": "a.png"}, TRICKY),
        _row(1, {"bytes": None, "path": "img/b.png"}, [("system", "Be brief."), ("user", "Hi")]),
        _row(2, {"bytes": None, "path": "file:///data/c.png"}, [("gpt", "Answer, no question.")]),
        _row(3, None, [("human", "No image, no token.")]),
        _row(4, {"bytes": BLUE, "path": None}, None),  # no conversation field
        _row(5, {"bytes": None, "path": ""}, [("human", ""), ("assistant", "  ")]),
        {**_row(6, {"bytes": RED, "path": None}, TRICKY[:2]), "id": "", "data_source": None},
        _row(7, {"bytes": None, "path": "file://"}, [("human", "<image>\nA bare scheme.")]),
    ]


def _plan(tmp_path: Path, rows: list[dict], schema: pa.Schema = ONEVISION) -> shards.Plan:
    path = tmp_path / "train-00000-of-00001.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    plan = shards.plan(path, "auto", {})
    assert plan is not None and plan.fmt == "llava"
    return plan


def _both_ways(plan: shards.Plan) -> tuple[tuple, tuple]:
    batch = next(pq.ParquetFile(plan.files[0]).iter_batches())
    fast = columnar.convert(batch, plan.fmt, plan.keys)
    assert fast is not None, "this batch should convert column-wise"
    records = [Record(i, i + 1, r) for i, r in enumerate(batch.to_pylist())]
    ways = []
    for blobs, build in (
        shards._from_columns(fast),
        shards._from_rows(plan.files[0], records, plan),
    ):
        data = [bytes(b) for b in blobs]
        ways.append((data, build([f"/store/{k}.png" for k in range(len(data))])))
    return ways[0], ways[1]


def test_column_wise_rows_equal_the_row_readers_byte_for_byte(tmp_path):
    (fast_blobs, fast), (slow_blobs, slow) = _both_ways(_plan(tmp_path, _rows()))
    assert fast_blobs == slow_blobs == [RED, BLUE, RED]
    assert fast.schema == slow.schema
    for name in fast.schema.names:  # per column, so a failure names it
        assert fast.column(name).to_pylist() == slow.column(name).to_pylist(), name
    assert fast.column("images_raw").to_pylist()[:3] == [
        ["/store/0.png"],
        ["img/b.png"],
        ["/data/c.png"],
    ]


def test_column_wise_extra_columns_ids_and_lists_of_images(tmp_path):
    schema = pa.schema(
        [
            ("id", pa.int64()),
            ("image", pa.list_(IMAGE)),
            ("conversations", ONEVISION.field("conversations").type),
            ("task", pa.string()),
            ("n_objects", pa.int32()),
            ("verified", pa.bool_()),
            ("note", pa.string()),
        ]
    )
    turns = [{"from": "human", "value": "<image>\n<image>\nSame?"}, {"from": "gpt", "value": "No"}]
    rows = [
        {"id": 7, "image": [{"bytes": RED, "path": None}, {"bytes": BLUE, "path": None}],
         "conversations": turns, "task": "compare", "n_objects": 2, "verified": True,
         "note": 'a "quoted" note'},
        {"id": 8, "image": [None, {"bytes": None, "path": "x.png"}], "conversations": turns,
         "task": "", "n_objects": None, "verified": False, "note": None},
        {"id": None, "image": None, "conversations": [], "task": None, "n_objects": 0,
         "verified": None, "note": ""},
    ]  # fmt: skip
    (fast_blobs, fast), (slow_blobs, slow) = _both_ways(_plan(tmp_path, rows, schema))
    assert fast_blobs == slow_blobs == [RED, BLUE]
    for name in fast.schema.names:
        assert fast.column(name).to_pylist() == slow.column(name).to_pylist(), name
    assert fast.column("extra").to_pylist()[0] == (
        '{"n_objects": 2, "verified": true, "note": "a \\"quoted\\" note"}'
    )


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"conversations": [{"from": "robot", "value": "Beep."}]}, "unknown role"),
        ({"conversations": [{"from": "human", "value": "bell \x07 char"}]}, "\\u0007 escape"),
        ({"image": {"bytes": None, "path": "data:image/png;base64,AAAA"}}, "data URL"),
    ],
)
def test_unusual_batches_go_the_row_readers_way(tmp_path, change, why):
    rows = [_row(0, {"bytes": RED, "path": None}, [("human", "Q"), ("gpt", "A")])]
    rows.append({**rows[0], "id": "ov-1", **change})
    batch = next(pq.ParquetFile(_plan(tmp_path, rows).files[0]).iter_batches())
    assert columnar.convert(batch, "llava", shards.hub.keys_for("llava", {})) is None, why


def test_an_unknown_role_is_still_the_row_readers_error(tmp_path, catalog):
    rows = [_row(i, {"bytes": RED, "path": None}, [("human", "Q"), ("gpt", "A")]) for i in range(3)]
    rows[2]["conversations"][1]["from"] = "robot"
    folder = tmp_path / "ov"
    write_onevision_shards(folder, [rows])
    with pytest.raises(IngestError, match=r"sample 2 \(row 3\): turn 1 has role 'robot'"):
        ingest(catalog, folder)


def test_chunks_finish_as_one_table_ids_flags_and_fingerprint(tmp_path, catalog, monkeypatch):
    rows = [_row(i, {"bytes": image_bytes(c), "path": None}, [("human", "<image>\nQ"), ("gpt", "A")])
            for i, c in enumerate(["red", "blue", "green", "gray", "red", "blue", "white"])]  # fmt: skip
    rows[4]["id"] = "ov-0"  # a repeated id two chunks later: renamed and flagged
    rows[5]["id"] = rows[6]["id"] = ""  # missing ids: '#<row>' over the whole dataset
    rows[3]["conversations"][1]["value"] = ""  # flagged empty_answer, and then a duplicate
    rows[3]["id"] = "ov-1"
    folder = tmp_path / "ov"
    write_onevision_shards(folder, [rows[:4], rows[4:]])
    whole = ingest(catalog, folder, name="whole")
    monkeypatch.setattr("store.ingest.core.FINISH_ROWS", 2)
    monkeypatch.setattr("store.ingest.shards.ROWS_PER_BATCH", 1)
    chunked = ingest(catalog, folder, name="chunked")
    assert chunked.fingerprint == whole.fingerprint
    assert chunked.flags == whole.flags == {"duplicate_id": 2, "empty_answer": 1}
    assert chunked.n_flagged == whole.n_flagged == 2
    got = samples(catalog, "chunked")
    assert [s["orig_id"] for s in got] == ["ov-0", "ov-1", "ov-2", "ov-1#2", "ov-0#2", "#5", "#6"]
    assert got[3]["flags"] == ["duplicate_id", "empty_answer"]  # in the canonical order
    assert got[4]["flags"] == ["duplicate_id"]
    whole_rows = samples(catalog, "whole")
    for a, b in zip(got, whole_rows, strict=True):
        assert {k: v for k, v in a.items() if k not in ("sample_id", "dataset_id")} == {
            k: v for k, v in b.items() if k not in ("sample_id", "dataset_id")
        }


def test_staging_file_is_gone_after_success_failure_and_a_killed_ingest(tmp_path, catalog):
    staging = catalog.workspace.root / ".ingest"
    folder = tmp_path / "ov"
    good = [_row(i, {"bytes": RED, "path": None}, [("human", "Q"), ("gpt", "A")]) for i in range(3)]
    write_onevision_shards(folder, [good, good])
    ingest(catalog, folder, name="ok")
    assert list(staging.iterdir()) == []
    # A killed ingest's file (its pid is gone) is swept by the next one; a live one's is kept.
    dead, live = staging / "999999999-dead.parquet", staging / f"{os.getpid()}-live.parquet"
    dead.write_bytes(b"PAR1")
    live.write_bytes(b"PAR1")
    bad = [dict(r) for r in good]
    bad[2] = {**bad[2], "conversations": [{"from": "robot", "value": "?"}]}
    write_onevision_shards(folder, [good, bad])  # the second shard fails after rows were staged
    before = snapshot(catalog)
    with pytest.raises(IngestError, match="robot"):
        ingest(catalog, folder, name="bad")
    assert snapshot(catalog) == before
    assert sorted(p.name for p in staging.iterdir()) == [live.name]


def test_catalog_write_memory_cap_gives_way_and_is_reset(tmp_path, catalog, monkeypatch):
    import store.ingest.merge as merge

    calls = []
    real = merge._merge

    def spy(*args):
        calls.append(args[-1])
        return real(*args)

    monkeypatch.setattr(merge, "_merge", spy)
    monkeypatch.setattr(merge, "MERGE_MEMORY", "1MB")  # less than DuckDB needs for anything
    folder = tmp_path / "ov"
    rows = [
        _row(i, {"bytes": RED, "path": None}, [("human", "Q"), ("gpt", "A")]) for i in range(50)
    ]
    write_onevision_shards(folder, [rows])
    assert ingest(catalog, folder).n_samples == 50
    assert calls == ["1MB", None]  # out of memory under the cap: written again without it
    with catalog.connect() as con:
        limit = con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
    assert limit != "1.0 MiB" and "KiB" not in limit
