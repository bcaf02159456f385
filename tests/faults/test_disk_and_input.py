"""Full disks, deep JSON, table cells that are not text, and FIFOs: each is one clear error.

Full disk: a 3 MB tmpfs when this process may mount one (root in CI containers), else the
THRESHER_FAULT=enospc hook raises ENOSPC at the same write. The test id says which ran.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading

import pytest

from store.errors import DiskFull, IngestError
from store.export import export
from store.ingest import ingest
from tests.faults.conftest import cli_inproc, one_line_error


def _mount_tmpfs(path, size="3m") -> bool:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
    )
    return proc.returncode == 0


@pytest.fixture(params=["tmpfs", "hook"])
def full_disk(request, tmp_path):
    """(folder, fault): a folder on a 3 MB tmpfs and no fault, or a plain folder and the hook."""
    folder = tmp_path / "small-disk"
    if request.param == "tmpfs":
        if not _mount_tmpfs(folder):
            pytest.skip("cannot mount a tmpfs here (not root?); the hook variant covers it")
        yield folder, None
        subprocess.run(["umount", "-l", str(folder)], check=False)
    else:
        folder.mkdir()
        yield folder, "enospc"


def _fill(folder) -> None:
    """Leave ~8 KB free on a tmpfs: most of a manifest will not fit."""
    st = os.statvfs(folder)
    free = st.f_bavail * st.f_frsize
    (folder / "ballast").write_bytes(b"\0" * max(0, free - 8_000))


def test_full_disk_during_export_is_one_line_and_leaves_no_temp(catalog, small_json, full_disk):
    folder, fault = full_disk
    ingest(catalog, small_json, name="small", fmt="llava")
    if fault is None:
        _fill(folder)
    out = folder / "out.jsonl"
    proc = cli_inproc(
        catalog.workspace.root,
        *("export", "--dataset", "small", "-f", "swift", "-o", str(out)),
        fault=f"{fault}:export.written" if fault else None,
    )
    line = one_line_error(proc)
    assert "no space left" in line and "Free some space" in line, line
    left = sorted(p.name for p in folder.iterdir() if p.name != "ballast")
    assert left == [], left  # no manifest, no sidecar, no hidden temp
    with catalog.connect() as con:
        assert con.execute("SELECT count(*) FROM exports").fetchone()[0] == 0


def test_full_disk_during_ingest_is_an_ingest_error(tmp_path, small_json, full_disk):
    folder, fault = full_disk
    ws = folder / "ws"
    assert cli_inproc(ws, "init").returncode == 0
    if fault is None:
        _fill(folder)
    proc = cli_inproc(
        ws, "ingest", str(small_json), fault=f"{fault}:catalog.commit" if fault else None
    )
    line = one_line_error(proc)
    assert "no space left" in line and "run the same command again" in line, line
    if fault is None:
        (folder / "ballast").unlink()  # with room again, the catalog is intact and empty
    proc = cli_inproc(ws, "datasets")
    assert proc.returncode == 0, proc.stderr
    assert "No datasets" in proc.stdout, proc.stdout


def test_full_disk_in_process_raises_documented_classes(catalog, small_json, monkeypatch):
    monkeypatch.setenv("THRESHER_FAULT", "enospc:catalog.commit")
    with pytest.raises(IngestError, match="no space left") as info:
        ingest(catalog, small_json, name="small", fmt="llava")
    assert isinstance(info.value, DiskFull) and info.value.exit_code == 1
    monkeypatch.setenv("THRESHER_FAULT", "enospc:export.publish")
    monkeypatch.delenv("THRESHER_FAULT")
    ingest(catalog, small_json, name="small", fmt="llava")
    monkeypatch.setenv("THRESHER_FAULT", "enospc:export.publish")
    with pytest.raises(DiskFull):
        export(catalog, dataset="small", fmt="llava")
    assert list(catalog.workspace.exports_dir.iterdir()) == []


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("layout", ["array", "lines"])
def test_json_nested_past_the_recursion_limit_is_an_ingest_error(catalog, tmp_path, layout):
    ok = {
        "id": "a",
        "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}],
    }
    deep = '{"id": "b", "meta": ' + _deep(50_000) + ', "conversations": []}'
    path = tmp_path / ("deep.json" if layout == "array" else "deep.jsonl")
    if layout == "array":
        path.write_text("[" + json.dumps(ok) + ",\n" + deep + "]")
    else:
        path.write_text(json.dumps(ok) + "\n" + deep + "\n")
    with pytest.raises(IngestError, match="nested deeper than") as info:
        ingest(catalog, path, name="deep", fmt="llava")
    assert "sample 1" in str(info.value)
    proc = cli_inproc(catalog.workspace.root, "ingest", str(path))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: ") and "nested deeper" in proc.stderr


@pytest.mark.parametrize("bad", [{"text": "what?"}, ["what", "?"], True])
def test_table_cells_must_be_text(catalog, tmp_path, bad):
    rows = [{"q": "fine", "a": "yes"}, {"q": bad, "a": "no"}]
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(IngestError, match=r"sample 1.*'q' column holds a (dict|list|bool)"):
        ingest(catalog, path, name="t", fmt="table", mapping={"question": "q", "answer": "a"})
    # Numbers are text enough (a count answer column); a string stays as it is.
    path.write_text(json.dumps({"q": "how many?", "a": 3}) + "\n")
    ingest(catalog, path, name="t", fmt="table", mapping={"question": "q", "answer": "a"})
    with catalog.connect() as con:
        assert con.execute("SELECT answer FROM samples").fetchone()[0] == "3"


def test_a_fifo_is_refused_not_waited_on(catalog, tmp_path):
    fifo = tmp_path / "data.jsonl"
    os.mkfifo(fifo)
    result: dict = {}

    def run() -> None:
        try:
            ingest(catalog, fifo, name="pipe")
        except IngestError as exc:
            result["error"] = str(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout=20)
    if t.is_alive():  # unblock the reader so the test process can end, then fail
        with open(fifo, "w"):
            pass
        pytest.fail("ingest blocked on a FIFO")
    assert "named pipe (FIFO)" in result["error"] and "regular file" in result["error"]
