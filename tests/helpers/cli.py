"""Run the `thresher` command line in-process, as a user would, and get its exit code."""

from __future__ import annotations

from typing import Any


def thresher(ws: Any, *args: str) -> int | str | None:
    """`thresher --workspace WS ARGS...` through the real entry point; 0 when it returned."""
    from tui.cli import main

    try:
        main(["--workspace", str(ws.root), *args])
    except SystemExit as exc:
        return exc.code
    return 0
