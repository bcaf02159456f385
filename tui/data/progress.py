"""Follows a run's progress.jsonl and job.log from a byte offset: stage bars, GPU history, log tail."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from store import runs as run_files

GPU_HISTORY = 60  # samples kept per GPU for the sparkline (~30 s at 2 polls/s)
LOG_LINES = 200


@dataclass
class GpuState:
    index: int
    name: str = ""
    util: deque[float] = field(default_factory=lambda: deque(maxlen=GPU_HISTORY))
    mem: deque[float] = field(default_factory=lambda: deque(maxlen=GPU_HISTORY))  # fraction used
    mem_used: float = 0.0
    mem_total: float = 0.0


@dataclass
class RunSnapshot:
    """What the monitor draws; a fresh copy is posted to the UI after every poll that changed it."""

    run_id: str
    status: str
    stages: list[run_files.StageProgress]
    gpus: list[GpuState]
    log: list[str]
    events_seen: int


class ProgressFollower:
    """Incremental reader: each poll() reads only the bytes appended since the last one."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.run_id = run_dir.name
        self.offset = 0
        self.log_offset = 0
        self.stages: dict[str, run_files.StageProgress] = {}
        self.gpus: dict[int, GpuState] = {}
        self.log: deque[str] = deque(maxlen=LOG_LINES)
        self.events_seen = 0
        self.status = "queued"

    def poll(self) -> tuple[RunSnapshot, bool]:
        """Read what is new; returns the snapshot and whether anything changed."""
        events, self.offset = run_files.read_events(self.run_dir, self.offset)
        changed = bool(events)
        run_files.fold_events(events, self.stages)
        for ev in events:
            self._fold_gpu(ev.get("gpu") or [])
            if ev.get("event") == "log" and ev.get("message"):
                self.log.append(str(ev["message"]))
        self.events_seen += len(events)
        changed |= self._read_log()
        status = run_files.read_status(self.run_dir).get("status", "queued")
        changed |= status != self.status
        self.status = status
        return self.snapshot(), changed

    def _fold_gpu(self, gpus: list[dict[str, Any]]) -> None:
        for g in gpus:
            idx = int(g.get("index", 0))
            state = self.gpus.setdefault(idx, GpuState(idx))
            state.name = str(g.get("name", state.name))
            state.util.append(float(g.get("util") or 0.0))
            used, total = float(g.get("mem_used") or 0.0), float(g.get("mem_total") or 0.0)
            state.mem_used, state.mem_total = used, total
            state.mem.append(used / total if total else 0.0)

    def _read_log(self) -> bool:
        try:
            with open(self.run_dir / run_files.LOG, "rb") as fh:
                fh.seek(self.log_offset)
                data = fh.read(1 << 20)
        except FileNotFoundError:
            return False
        end = data.rfind(b"\n")
        if end < 0:
            return False
        self.log_offset += end + 1
        for line in data[: end + 1].decode("utf-8", "replace").splitlines():
            self.log.append(line)
        return True

    def snapshot(self) -> RunSnapshot:
        stages = [
            run_files.StageProgress(
                s.stage, s.done, s.total, s.unit, s.rate, s.eta_s, s.finished, dict(s.extra)
            )
            for s in self.stages.values()
        ]
        gpus = [
            GpuState(g.index, g.name, deque(g.util), deque(g.mem), g.mem_used, g.mem_total)
            for g in self.gpus.values()
        ]
        return RunSnapshot(
            self.run_id, self.status, stages, gpus, list(self.log)[-50:], self.events_seen
        )
