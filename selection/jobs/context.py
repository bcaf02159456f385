"""RunContext: what a stage sees of its run (input, earlier stages, seeds, progress, cancellation, log)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from selection.jobs.telemetry import GpuSampler
from store import runs
from store.redact import redact

EventHook = Callable[[dict[str, Any]], None]


class RunContext:
    """Built by the runner for one process working on one run folder."""

    def __init__(
        self,
        run_dir: Path,
        meta: dict[str, Any],
        config: Any,
        *,
        on_event: EventHook | None = None,
        sampler: GpuSampler | None = None,
        progress_interval_s: float = 0.5,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.meta = meta
        self.run_id: str = meta["run_id"]
        self.config = config
        self.seed: int = int(meta["seed"])
        self.on_event = on_event
        self.sampler = sampler or GpuSampler()
        self.progress_interval_s = progress_interval_s
        self.log = _job_logger(self.run_dir, self.run_id)
        self._input: Any = None
        self._cancel = threading.Event()
        # Set by the runner around each stage/shard so ctx.progress() can report stage-wide numbers.
        self._stage: str | None = None
        self._unit = "items"
        self._total: int | None = None
        self._base = 0  # units finished before the current shard
        self._resumed = 0  # units found already done when this process started the stage
        self._t0 = time.monotonic()
        self._last_emit = 0.0

    # ------------------------------------------------------------ data

    def input(self) -> Any:
        """input.parquet as a pyarrow Table (read once per process)."""
        if self._input is None:
            import pyarrow.parquet as pq

            self._input = pq.read_table(self.run_dir / runs.INPUT)
        return self._input

    def input_rows(self, shard: Any) -> Any:
        """The input rows a row shard covers."""
        return self.input().slice(shard.start, shard.stop - shard.start)

    def stage_dir(self, name: str) -> Path:
        path = self.run_dir / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def read_stage(self, name: str) -> Any:
        """All shards of an earlier stage, concatenated in shard order (Table, or ndarray for .npy)."""
        npy = runs.stage_files(self.run_dir, name, ".npy")
        if npy:
            import numpy as np

            return np.concatenate([np.load(p, allow_pickle=False) for p in npy])
        files = runs.stage_files(self.run_dir, name)
        if not files:
            raise FileNotFoundError(f"{self.run_dir / name} has no shards yet")
        import pyarrow as pa
        import pyarrow.parquet as pq

        return pa.concat_tables([pq.read_table(p) for p in files])

    # ------------------------------------------------------------ control

    def cancelled(self) -> bool:
        """True once SIGTERM arrived or `thresher cancel` left its flag file."""
        if not self._cancel.is_set() and (self.run_dir / runs.CANCEL).exists():
            self._cancel.set()
        return self._cancel.is_set()

    def request_cancel(self) -> None:
        self._cancel.set()

    # ------------------------------------------------------------ progress

    def progress(self, done: int, total: int | None = None, **extra: Any) -> None:
        """Report `done` units finished *inside the current shard* (the runner adds earlier shards).

        `total` replaces the stage total when a stage only learns it while running. Calls are
        throttled to one event per `progress_interval_s`; `extra` (e.g. loss=1.2) rides along.
        """
        if total is not None:
            self._total = total
        now = time.monotonic()
        if now - self._last_emit < self.progress_interval_s:
            return
        self._emit_progress("progress", self._base + done, extra)

    def _emit_progress(self, kind: str, done: int, extra: dict[str, Any] | None = None) -> None:
        self._last_emit = time.monotonic()
        elapsed = self._last_emit - self._t0
        fresh = done - self._resumed
        rate = fresh / elapsed if elapsed > 0 and fresh > 0 else None
        eta = None
        if rate and self._total is not None:
            eta = max(self._total - done, 0) / rate
        fields: dict[str, Any] = {
            "done": done,
            "total": self._total,
            "unit": self._unit,
            "rate": round(rate, 3) if rate else None,
            "eta_s": round(eta, 2) if eta is not None else None,
        }
        if extra:
            fields["extra"] = extra
        self.emit(kind, **fields)

    def emit(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Append one event to progress.jsonl (and hand it to the foreground display)."""
        event: dict[str, Any] = {"t": round(time.time(), 3), "run_id": self.run_id, "event": kind}
        if self._stage is not None and "stage" not in fields:
            event["stage"] = self._stage
        event.update(fields)
        gpu = self.sampler.sample()
        if gpu:
            event["gpu"] = gpu
        runs.append_event(self.run_dir, event)
        self._last_emit = time.monotonic()
        if self.on_event is not None:
            self.on_event(event)
        return event


class _RedactingFormatter(logging.Formatter):
    """job.log lines (tracebacks included) pass store.redact: no API key reaches the file."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def _job_logger(run_dir: Path, run_id: str) -> logging.Logger:
    """A logger writing to <run>/job.log; one handler per run folder even if the runner is reused."""
    logger = logging.getLogger(f"thresher.job.{run_id}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    target = str((run_dir / runs.LOG).resolve())
    if not any(getattr(h, "baseFilename", None) == target for h in logger.handlers):
        for h in list(logger.handlers):
            logger.removeHandler(h)
            h.close()
        handler = logging.FileHandler(target)
        handler.setFormatter(_RedactingFormatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
    return logger
