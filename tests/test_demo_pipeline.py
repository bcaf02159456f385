"""`thresher demo` end to end at a small size: data, OFA, CLIPPER with the demo VLM, export, summary."""

from __future__ import annotations

import json

import pytest

from store.catalog import Catalog
from tests.store.test_export_cli import thresher


@pytest.mark.slow
def test_demo_runs_the_whole_pipeline(workspace, capsys, monkeypatch):
    from tests.helpers.tiny_vlm import demo_model_dir

    # The demo model is built once per test cache; link it where the demo looks for it.
    workspace.models_dir.mkdir(parents=True, exist_ok=True)
    (workspace.models_dir / "demo-vlm").symlink_to(demo_model_dir(), target_is_directory=True)

    args = ("demo", "-n", "40", "--seed", "5", "--clipper-samples", "10", "--no-tui")
    assert thresher(workspace, *args) == 0
    out = capsys.readouterr().out
    assert "Demo ready" in out and "thresher --workspace" in out and "tui" in out

    runs = {
        p.name: json.loads((p / "status.json").read_text()) for p in workspace.runs_dir.iterdir()
    }
    assert runs["demo-ofa"]["status"] == "done" and runs["demo-clipper"]["status"] == "done"
    exports = sorted(workspace.exports_dir.glob("*.json"))
    manifests = [p for p in exports if not p.name.endswith(".meta.json")]
    assert len(manifests) == 1
    meta = json.loads(manifests[0].with_name(manifests[0].name + ".meta.json").read_text())
    assert meta["run"]["run_id"] == "demo-ofa"
    kept = json.loads(manifests[0].read_text())
    assert 0 < len(kept) < 40  # OFA kept a fraction of the 40 samples
    with Catalog(workspace).connect() as con:
        assert con.execute("SELECT count(*) FROM exports").fetchall()[0][0] == 1

    # Rerunning the demo resumes everything: nothing new is exported twice under another name.
    assert thresher(workspace, *args) == 0
    assert "already done" in capsys.readouterr().out
