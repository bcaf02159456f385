"""`thresher export` and `thresher decide` through the real command line entry point."""

from __future__ import annotations

import json

import pytest

from store.catalog import Catalog
from tests.helpers.cli import thresher
from tests.helpers.datasets import insert_synthetic_samples, ofa_result, sample_ids, write_run
from tui.cli import main


@pytest.fixture
def run_ws(catalog):
    insert_synthetic_samples(catalog, "syn", 24)
    ids = sample_ids(catalog, "syn")
    result = ofa_result(ids, clusters=4, selected=lambda i: i < 12)
    write_run(catalog, "ofa-1", "syn", result)
    return catalog.workspace


def test_decide_by_ids_file_and_group_then_export(run_ws, tmp_path, capsys):
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("s1\ns2\n\n")
    assert (
        thresher(run_ws, "decide", "ofa-1", "drop", "--ids-file", str(ids_file), "--note", "dup")
        == 0
    )
    out = capsys.readouterr().out
    assert "Recorded drop for 2 samples of run ofa-1" in out
    assert "10 kept of 24 (algorithm alone: 12)" in out
    assert (
        thresher(run_ws, "decide", "ofa-1", "keep", "--group", "cluster=3", "--author", "eve") == 0
    )
    assert "13 kept of 24" in capsys.readouterr().out  # cluster 3 adds s15, s19, s23
    assert thresher(run_ws, "decide", "ofa-1", "clear", "--ids", "s1,s15") == 0
    assert "13 kept of 24" in capsys.readouterr().out  # s1 back to kept, s15 back to dropped

    out_file = tmp_path / "m.jsonl"
    assert thresher(run_ws, "export", "--run", "ofa-1", "-f", "swift", "-o", str(out_file)) == 0
    out = capsys.readouterr().out
    assert f"Wrote {out_file}" in out and "run ofa-1 (ofa, selection default) of dataset syn" in out
    assert "decisions applied: 6 (3 changed" in out and "sha256" in out
    got = [json.loads(line)["id"] for line in out_file.read_text().splitlines()]
    want = [f"s{i}" for i in range(24) if (i < 12 and i != 2) or i in (19, 23)]
    assert got == want
    with Catalog(run_ws).connect() as con:
        authors = dict(
            con.execute("SELECT action, any_value(author) FROM decisions GROUP BY 1").fetchall()
        )
    assert authors["keep"] == "eve"


def test_export_whole_dataset_prints_skips(catalog, tmp_path, capsys):
    insert_synthetic_samples(catalog, "syn", 20, flag_every=4)
    assert thresher(catalog.workspace, "export", "--dataset", "syn", "--format", "llava") == 0
    out = capsys.readouterr().out
    assert "16 samples exported of 20 selected" in out
    assert "skipped 4: missing_image 4" in out
    assert (catalog.workspace.exports_dir / "syn-llava.json.meta.json").exists()


def test_user_errors_are_one_line_exit_2(run_ws, capsys):
    assert thresher(run_ws, "decide", "ofa-1", "keep", "--ids", "nope") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ids ['nope'] are not in the dataset of run ofa-1")
    assert "Traceback" not in err and err.count("\n") == 1
    assert thresher(run_ws, "decide", "ofa-1", "keep", "--group", "cluster=99") == 2
    assert "no cluster = 99" in capsys.readouterr().err
    assert thresher(run_ws, "decide", "ofa-1", "keep") == 2  # usage: no samples chosen
    assert "exactly one of --ids, --ids-file, --group" in capsys.readouterr().err
    assert thresher(run_ws, "export", "--dataset", "nope", "-f", "ids") == 2
    assert "no dataset 'nope'" in capsys.readouterr().err
    assert thresher(run_ws, "export", "--run", "ofa-1", "--selection", "zzz", "-f", "ids") == 2
    assert "no selection 'zzz'" in capsys.readouterr().err


def test_help_explains_the_options(capsys):
    main(["export", "--help"])
    text = capsys.readouterr().out
    for word in ("--format", "sharegpt", "--paths", "--include-flagged", "sidecar", "--selection"):
        assert word in text
    main(["decide", "--help"])
    text = capsys.readouterr().out
    for word in ("keep", "clear", "--ids-file", "--group", "--note", "never deleted"):
        assert word in text
