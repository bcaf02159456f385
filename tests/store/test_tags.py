"""Tags and notes: append-only (latest add/remove wins), filterable, counted, carried into exports."""

from __future__ import annotations

import json

import pytest

from store import tags
from store.errors import NotFound, ThresherError
from store.export import export
from tests.helpers.datasets import insert_synthetic_samples, sample_ids


def test_latest_add_or_remove_wins_and_nothing_is_deleted(catalog):
    insert_synthetic_samples(catalog, "syn", 20)
    ids = sample_ids(catalog, "syn")
    assert tags.tag(catalog, ids[:5], "blurry", author="ann") == 5
    assert tags.tag(catalog, [ids[1], ids[1], ids[9]], "ocr:bad") == 2  # duplicates collapse
    tags.tag(catalog, [ids[2]], "blurry", remove=True)
    tags.tag(catalog, [ids[3]], "blurry", remove=True)
    tags.tag(catalog, [ids[3]], "blurry")  # re-added after a remove: on again
    with catalog.connect() as con:
        now = tags.current_tags(con)
        assert now[ids[1]] == ["blurry", "ocr:bad"]
        assert ids[2] not in now and now[ids[3]] == ["blurry"]
        assert tags.tagged_ids(con, "blurry").to_pylist() == [ids[0], ids[1], ids[3], ids[4]]
        assert tags.tag_counts(con) == {"blurry": 4, "ocr:bad": 2}
        assert tags.current_tags(con, [ids[9], ids[10]]) == {ids[9]: ["ocr:bad"]}
        # every row ever written is still there
        assert con.execute("SELECT count(*) FROM tags").fetchone()[0] == 5 + 2 + 1 + 2


def test_notes_accumulate_in_order(catalog):
    insert_synthetic_samples(catalog, "syn", 5)
    sid = sample_ids(catalog, "syn")[0]
    tags.add_note(catalog, [sid], "answer cites the wrong chart", run_id="ofa-1", author="ann")
    tags.add_note(catalog, [sid], "  fixed upstream  ")
    with catalog.connect() as con:
        got = tags.notes(con, sid)
    assert [n.note for n in got] == ["answer cites the wrong chart", "fixed upstream"]
    assert got[0].run_id == "ofa-1" and got[0].author == "ann"


def test_bad_tags_and_unknown_samples_are_refused_whole(catalog):
    insert_synthetic_samples(catalog, "syn", 5)
    ids = sample_ids(catalog, "syn")
    for bad in ("", "has space", "-leading", "x" * 65):
        with pytest.raises(ThresherError, match="letters, digits"):
            tags.tag(catalog, ids, bad)
    with pytest.raises(NotFound, match="not in the catalog"):
        tags.tag(catalog, [ids[0], 123], "ok")
    with pytest.raises(ThresherError, match="needs some text"):
        tags.add_note(catalog, ids, "   ")
    with catalog.connect() as con:
        assert con.execute("SELECT count(*) FROM tags").fetchone()[0] == 0


def test_export_sidecar_carries_tags_of_exported_samples_only(catalog):
    insert_synthetic_samples(catalog, "syn", 30, flag_every=10)
    ids = sample_ids(catalog, "syn")
    plain = export(catalog, dataset="syn", fmt="ids")
    assert plain.meta["tags"] is None  # no tag in the catalog yet
    with catalog.connect() as con:
        flagged = {
            r[0]
            for r in con.execute(
                "SELECT sample_id FROM samples WHERE len(flags) > 0 AND dataset_id = ?",
                [ids[0] >> 32],
            ).fetchall()
        }
        orig = dict(con.execute("SELECT sample_id, orig_id FROM samples").fetchall())
    skipped = sorted(flagged)[0]  # not exported (its image is missing)
    kept = [i for i in ids if i not in flagged][:3]
    tags.tag(catalog, [*kept, skipped], "chart")
    tags.add_note(catalog, [kept[0]], "check the axis labels")
    res = export(catalog, dataset="syn", fmt="ids")
    side = json.loads(res.sidecar_path.read_text())["tags"]
    assert side["counts"] == {"chart": 3}
    assert set(side["samples"]) == {orig[i] for i in kept}
    assert side["samples"][orig[kept[0]]] == {
        "tags": ["chart"],
        "notes": ["check the axis labels"],
    }
    assert side["last_seq"] == 5


def test_tag_and_tags_commands(catalog, workspace, tmp_path):
    from click.testing import CliRunner

    from tui.cli import cli

    insert_synthetic_samples(catalog, "syn", 12)
    with catalog.connect() as con:
        orig = [r[0] for r in con.execute("SELECT orig_id FROM samples ORDER BY 1").fetchall()]

    def run(*args, code=0):
        out = CliRunner().invoke(cli, ["--workspace", str(workspace.root), *args])
        assert out.exit_code == code, out.output
        return out.output

    assert "Tagged 'blurry' on 2 sample(s)" in run(
        "tag", "blurry", "-d", "syn", "-s", orig[0], "-s", orig[1]
    )
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text(f"{orig[2]}\n{orig[3]}\n")
    run("tag", "blurry", "-d", "syn", "--ids-file", str(ids_file), "--note", "soft focus")
    run("tag", "blurry", "--remove", "-d", "syn", "-s", orig[0])
    assert run("tags", "blurry", "-d", "syn").splitlines() == sorted([orig[1], orig[2], orig[3]])
    assert json.loads(run("tags", "--json")) == {"blurry": 3}
    bad = CliRunner().invoke(
        cli, ["--workspace", str(workspace.root), "tag", "x", "-d", "syn", "-s", "nope"]
    )
    assert isinstance(bad.exception, NotFound) and "no sample ['nope']" in str(bad.exception)
    run("tag", "-d", "syn", "-s", orig[0], code=2)  # neither a tag nor a note: usage error
