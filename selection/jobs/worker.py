"""Entry point of a detached job: `python -m selection.jobs.worker RUN_DIR [--ray-workers N ...]`."""

from __future__ import annotations

import argparse
import signal
import sys
import traceback

from selection.jobs.ray_exec import RayOptions
from selection.jobs.runner import run_job
from store.errors import ThresherError
from store.redact import redact


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m selection.jobs.worker")
    ap.add_argument("run_dir")
    ap.add_argument("--ray-workers", type=int, default=0, help="0: no Ray")
    ap.add_argument("--ray-gpus", type=float, default=0.0)
    ap.add_argument("--ray-address", default=None)
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    ray = RayOptions.from_workers(args.ray_workers, args.ray_gpus, args.ray_address)
    # A closing terminal must not end the job; cancellation is SIGTERM or the cancel file.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        status = run_job(args.run_dir, ray=ray)
    except ThresherError as exc:
        print(f"error: {redact(exc)}", file=sys.stderr, flush=True)
        return 1
    except Exception:  # stderr is job.log: the traceback goes there, redacted
        print(redact(traceback.format_exc()), file=sys.stderr, flush=True)
        return 1
    print(f"run finished: {status}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
