"""An `ids` export read back by `decide --ids-file` addresses exactly the samples it lists.

Ids with line breaks, tabs, blanks at either end, right-to-left marks and NUL used to be
flattened (newline -> space) or stripped, so a decision could land on a neighbour.
"""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from store.export import export
from store.ids import parse_id_lines, read_id_file
from store.ingest import ingest
from tests.helpers.cli import thresher
from tests.helpers.datasets import sample_ids, write_run

HOSTILE = [
    "x\ny",
    "x y",  # what "x\ny" used to be written as
    "x\r\ny",
    "tab\there",
    " lead",
    "trail ",
    "  ",
    "\u202eevil-rtl",
    "a\x00b",
    '"quoted"',
    "plain-1",
    "comma,id",
]


@pytest.fixture
def hostile_ws(catalog, tmp_path):
    rows = [
        {"id": i, "conversations": [{"from": "human", "value": f"q{n}"}, {"from": "gpt", "value": "a"}]}
        for n, i in enumerate(HOSTILE)
    ]  # fmt: skip
    src = tmp_path / "hostile.json"
    src.write_text(json.dumps(rows))
    ingest(catalog, src, name="hostile", fmt="llava")
    ids = sample_ids(catalog, "hostile")
    result = pa.table({"sample_id": ids, "selected": [False] * len(ids)})
    write_run(catalog, "r1", "hostile", result, shards=1)
    return catalog.workspace


def _kept(catalog) -> list[str]:
    with catalog.connect() as con:
        return sorted(
            r[0]
            for r in con.execute(
                "SELECT orig_id FROM decisions JOIN samples USING (sample_id) "
                "WHERE run_id = 'r1' AND action = 'keep'"
            ).fetchall()
        )


def test_ingest_keeps_hostile_ids_exactly(catalog, hostile_ws):
    with catalog.connect() as con:
        got = sorted(r[0] for r in con.execute("SELECT orig_id FROM samples").fetchall())
    assert got == sorted(HOSTILE)


def test_ids_export_round_trips_every_id(catalog, hostile_ws):
    res = export(catalog, dataset="hostile", fmt="ids")
    text = res.path.read_text(encoding="utf-8")
    assert text.count("\n") == len(HOSTILE)  # one line per id, whatever the id holds
    lines = text.split("\n")
    assert "plain-1" in lines and "comma,id" in lines  # plain ids stay plain
    assert '"x\\ny"' in lines and '" lead"' in lines and '"a\\u0000b"' in lines
    assert sorted(read_id_file(res.path)) == sorted(HOSTILE)


@pytest.mark.parametrize("subset", [["x\ny"], ["x y"], [" lead", "trail "], ["a\x00b", "  "]])
def test_decide_from_ids_export_touches_only_the_listed_samples(
    catalog, hostile_ws, tmp_path, subset
):
    ids_file = tmp_path / "some.txt"
    ids_file.write_text("".join(json.dumps(i) + "\n" for i in subset), encoding="utf-8")
    assert thresher(hostile_ws, "decide", "r1", "keep", "--ids-file", str(ids_file)) == 0
    assert _kept(catalog) == sorted(subset)


def test_full_ids_export_as_ids_file_keeps_each_sample_once(catalog, hostile_ws):
    res = export(catalog, dataset="hostile", fmt="ids")
    assert thresher(hostile_ws, "decide", "r1", "keep", "--ids-file", str(res.path)) == 0
    assert _kept(catalog) == sorted(HOSTILE)


def test_unknown_id_is_an_error_naming_it(catalog, hostile_ws, tmp_path, capsys):
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("plain-1\nx\n", encoding="utf-8")  # "x" alone is not an id
    assert thresher(hostile_ws, "decide", "r1", "keep", "--ids-file", str(ids_file)) != 0
    err = capsys.readouterr().err
    assert "'x'" in err and "nothing was recorded" in err and "Traceback" not in err
    assert _kept(catalog) == []
    # --ids is matched exactly: blanks are part of the id, never stripped.
    assert thresher(hostile_ws, "decide", "r1", "keep", "--ids", "lead") != 0
    assert "'lead'" in capsys.readouterr().err
    assert thresher(hostile_ws, "decide", "r1", "keep", "--ids", " lead") == 0
    assert _kept(catalog) == [" lead"]


def test_ids_option_splits_commas_only_when_the_value_is_not_an_id(catalog, hostile_ws):
    assert thresher(hostile_ws, "decide", "r1", "keep", "--ids", "comma,id") == 0
    assert _kept(catalog) == ["comma,id"]
    assert thresher(hostile_ws, "decide", "r1", "keep", "--ids", "plain-1,x y") == 0
    assert _kept(catalog) == ["comma,id", "plain-1", "x y"]


def test_id_lines_parser_reads_both_forms():
    text = 'plain\r\n"json\\tid"\n\n  spaced  \n"\\u0000"\n'
    assert parse_id_lines(text) == ["plain", "json\tid", "  spaced  ", "\x00"]
    with pytest.raises(Exception, match="line 1.*not a JSON string"):
        parse_id_lines('"unterminated\n')
    with pytest.raises(Exception, match="line 2.*not a JSON string"):
        parse_id_lines('ok\n"1"x\n')
