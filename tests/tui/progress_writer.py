"""A stand-in job process for the monitor test: appends progress events (and a torn line) to a run folder.

Usage: python -m tests.tui.progress_writer RUN_DIR TOTAL STEP_SECONDS
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from store.runs import append_event, write_status


def main(run_dir: Path, total: int, step_s: float) -> None:
    write_status(run_dir, "running", pid=os.getpid())
    run_id = run_dir.name
    with open(run_dir / "job.log", "a") as log:
        log.write("writer: started\n")
    for done in range(0, total + 1, total // 4):
        event = {"t": time.time(), "run_id": run_id, "stage": "encode", "done": done,
                 "total": total, "unit": "samples", "rate": 50.0, "eta_s": (total - done) / 50.0,
                 "event": "progress",
                 "gpu": [{"index": 0, "name": "Fake H100", "util": 20 + done % 80,
                          "mem_used": 2.0e10, "mem_total": 8.0e10, "power_w": 300.0}]}  # fmt: skip
        line = json.dumps(event) + "\n"
        # a torn write: half a line, a pause, then the rest (readers must wait for the newline)
        with open(run_dir / "progress.jsonl", "a") as fh:
            fh.write(line[: len(line) // 2])
            fh.flush()
            time.sleep(step_s / 2)
            fh.write(line[len(line) // 2 :])
        time.sleep(step_s / 2)
    append_event(run_dir, {"t": time.time(), "run_id": run_id, "stage": "encode", "done": total,
                           "total": total, "event": "stage_done"})  # fmt: skip
    with open(run_dir / "job.log", "a") as log:
        log.write("writer: finished encode\n")
    write_status(run_dir, "done")


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]))
