"""Progress events: progress.jsonl, appended whole lines, read back (torn tails skipped), folded per stage."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from store.redact import redact
from store.runs.layout import PROGRESS


def append_event(run_dir: Path, event: dict[str, Any]) -> None:
    """One JSON line, written with a single O_APPEND write so a reader sees whole lines or a tail."""
    if event.get("error"):
        event = {**event, "error": redact(event["error"])}  # never a key echoed by a server
    line = (json.dumps(event, separators=(",", ":"), default=float) + "\n").encode()
    fd = os.open(run_dir / PROGRESS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def read_last_events(run_dir: Path, max_bytes: int = 65536) -> list[dict[str, Any]]:
    """The events in the last `max_bytes` of the log: enough for "where is this run now"."""
    try:
        size = (run_dir / PROGRESS).stat().st_size
    except FileNotFoundError:
        return []
    start = max(0, size - max_bytes)
    if start:
        with open(run_dir / PROGRESS, "rb") as fh:
            fh.seek(start - 1)
            # Begin after the first newline at or past `start`: the line cut in half is skipped.
            start += fh.read(max_bytes).find(b"\n")
    return read_events(run_dir, start)[0]


def read_events(run_dir: Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Events from byte `offset` on, and the offset to continue from.

    A last line without its newline is being written right now (or the writer died mid-line):
    it is skipped and will be read again from the same offset next time.
    """
    try:
        with open(run_dir / PROGRESS, "rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n")
    if end < 0:
        return [], offset
    events = []
    for raw in data[: end + 1].splitlines():
        try:
            event = json.loads(raw)
        except json.JSONDecodeError:
            continue  # a torn line left by a killed writer, followed by newer whole lines
        if isinstance(event, dict):
            events.append(event)
    return events, offset + end + 1


@dataclass
class StageProgress:
    stage: str
    done: int = 0
    total: int | None = None
    unit: str = "items"
    rate: float | None = None
    eta_s: float | None = None
    finished: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def fold_events(events: list[dict[str, Any]], into: dict[str, StageProgress]) -> None:
    """Fold events into the latest state per stage (what `runs` and `attach` display)."""
    for ev in events:
        name = ev.get("stage")
        if not name:
            continue
        sp = into.setdefault(name, StageProgress(name))
        for key in ("done", "total", "unit", "rate", "eta_s"):
            if ev.get(key) is not None:
                setattr(sp, key, ev[key])
        if ev.get("extra"):
            sp.extra.update(ev["extra"])
        if ev.get("event") == "stage_start":
            sp.finished = False
        if ev.get("event") == "stage_done":
            sp.finished = True
            sp.eta_s = 0.0
