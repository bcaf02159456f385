"""Fault tests: run `thresher` as a separate process (so it can be killed) on a real workspace."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def run_cli(ws_root: Path, *args: str, fault: str | None = None, timeout: float = 120):
    """`thresher -w WS ARGS` in a child process; THRESHER_FAULT=fault when given."""
    env = {**os.environ, "THRESHER_WORKSPACE": str(ws_root)}
    env.pop("THRESHER_FAULT", None)
    if fault:
        env["THRESHER_FAULT"] = fault
    return subprocess.run(
        [sys.executable, "-m", "tui", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=Path(__file__).resolve().parents[2],
    )


def one_line_error(proc) -> str:
    """The stderr of a failed command, checked to be one `error:` line and no traceback."""
    err = proc.stderr.strip()
    lines = [ln for ln in err.splitlines() if not ln.startswith("note: ")]
    assert proc.returncode == 1, (proc.returncode, err)
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def small_json(tmp_path) -> Path:
    """A LLaVA-format file of 500 text-only samples (no images: fast to ingest)."""
    rows = [
        {"id": f"s{i}", "conversations": [{"from": "human", "value": f"What is {i} + 1?"},
                                          {"from": "gpt", "value": str(i + 1)}]}
        for i in range(500)
    ]  # fmt: skip
    path = tmp_path / "small.json"
    path.write_text(json.dumps(rows))
    return path


class Result:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def cli_inproc(ws_root: Path, *args: str, fault: str | None = None) -> Result:
    """Like run_cli, in this process (no interpreter start-up): for faults that do not kill."""
    import contextlib
    import io

    from tui.cli import main

    out, err = io.StringIO(), io.StringIO()
    old = os.environ.pop("THRESHER_FAULT", None)
    if fault:
        os.environ["THRESHER_FAULT"] = fault
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main(["--workspace", str(ws_root), *args])
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        os.environ.pop("THRESHER_FAULT", None)
        if old is not None:
            os.environ["THRESHER_FAULT"] = old
    return Result(code, out.getvalue(), err.getvalue())
