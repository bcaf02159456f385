"""The data commands end to end: init, ingest, datasets, status, doctor; user errors are one line."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.store.ingest_helpers import llava_row, png, write_json

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def files(tmp_path):
    png(tmp_path / "d" / "img" / "a.png")
    good = write_json(tmp_path / "d" / "train.json", [llava_row(0), llava_row(1, "img/gone.png")])
    bad = tmp_path / "d" / "bad.json"
    bad.write_text('[{"id": "a", "conversations": [')
    return good, bad


def run(ws: Path, *args: str, code: int = 0):
    from tui.cli import cli

    result = CliRunner().invoke(cli, ["-w", str(ws), *args], catch_exceptions=True)
    assert result.exit_code == code, result.output
    return result


def test_init_ingest_datasets_status(tmp_path, files):
    good, _ = files
    ws = tmp_path / "ws"
    assert "created" in run(ws, "init").output
    assert "already there" in run(ws, "init").output
    out = run(ws, "ingest", str(good), "--name", "train", "--check-images", "exists").output
    assert out.startswith("train (llava")  # no progress residue when not a terminal
    assert "train (llava" in out and "2 samples" in out and "2 new" in out
    assert "1 flagged" in out and "missing_image 1" in out and "nearly every image" not in out
    again = run(ws, "ingest", str(good), "--name", "train").output
    assert "0 new" in again and "2 unchanged" in again
    table = run(ws, "datasets").output
    assert "train" in table and "llava" in table and "missing_image 1" in table
    status = run(ws, "status").output
    assert "datasets  1 (2 samples, 1 flagged)" in status and "exports   0" in status
    assert "runs      0" in status


def test_status_counts_runs_by_state(tmp_path):
    from store import runs

    ws = tmp_path / "ws"
    run(ws, "init")
    for run_id, state in [("a", "done"), ("b", "done"), ("c", "failed"), ("d", "cancelled")]:
        folder = ws / "runs" / run_id
        folder.mkdir(parents=True)
        (folder / "run.json").write_text(json.dumps({"run_id": run_id, "method": "ofa"}))
        runs.write_status(folder, state)
    out = run(ws, "status").output
    assert "runs      4 (cancelled 1, done 2, failed 1)" in out


def test_ingest_table_with_map(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"q": ["Why?"], "a": ["Because."]}), path)
    out = run(tmp_path / "ws", "ingest", str(path), "--map", "question=q", "--map", "answer=a")
    assert "t (table" in out.output and "1 samples" in out.output


def test_ingest_hints_at_the_image_root_when_every_image_is_missing(tmp_path, files):
    good, _ = files
    moved = tmp_path / "elsewhere" / "train.json"
    moved.parent.mkdir()
    moved.write_text(good.read_text())
    out = run(tmp_path / "ws", "ingest", str(moved)).output
    assert "missing_image 2" in out and "nearly every image" in out
    again = run(tmp_path / "ws", "ingest", str(moved), "--image-root", str(good.parent)).output
    assert "1 flagged" in again and "nearly every image" not in again


def _main(capsys, *argv: str) -> tuple[int, str, str]:
    from tui.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def test_user_errors_are_one_line_exit_2(tmp_path, files, capsys):
    good, bad = files
    ws = str(tmp_path / "ws")
    code, _, err = _main(capsys, "-w", ws, "ingest", str(bad))
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1
    assert "bad.json: sample 0, line 1: the file ends in the middle" in err
    code, _, err = _main(capsys, "-w", ws, "ingest", str(good), "--map", "nonsense")
    assert code == 2 and "'nonsense' is not KEY=COLUMN" in err and "Traceback" not in err
    code, _, err = _main(capsys, "-w", str(tmp_path / "none"), "datasets")
    assert code == 2 and "no workspace at" in err and err.count("\n") == 1


def test_cli_error_in_a_real_process_has_no_traceback(tmp_path, files):
    _, bad = files
    proc = subprocess.run(
        [sys.executable, "-m", "tui", "-w", str(tmp_path / "ws"), "ingest", str(bad)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.strip().count("\n") == 0
    assert "truncated?" in proc.stderr


@pytest.mark.parametrize("command", ["init", "ingest", "datasets", "status", "doctor"])
def test_every_command_explains_itself(tmp_path, command):
    out = run(tmp_path / "ws", command, "--help").output
    assert "Usage:" in out and len(out.splitlines()) > 3
    if command == "ingest":
        for option in (
            "--name",
            "--format",
            "--image-root",
            "--map",
            "--dataset-key",
            "--check-images",
        ):
            assert option in out


def test_doctor_reports_and_survives_missing_packages(tmp_path, monkeypatch):
    out = run(tmp_path / "ws", "doctor").output
    for label in (
        "torch / CUDA",
        "faiss",
        "vLLM",
        "NVML",
        "Ray",
        "terminal",
        "graphics",
        "workspace",
    ):
        assert label in out
    assert str(tmp_path / "ws") in "".join(out.split())  # folded, never cut

    real = importlib.util.find_spec
    gone = {"torch", "faiss", "vllm", "pynvml", "ray", "textual_image"}
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name in gone else real(name, *a)
    )
    monkeypatch.setenv("NO_COLOR", "1")
    out = run(tmp_path / "ws", "doctor").output
    assert out.count("not installed") == 6 and "thresher[gpu]" in out and "NO_COLOR=1" in out
    assert "thresher[ray]" in out
