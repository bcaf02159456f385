"""Entry point of a detached job: `python -m selection.jobs.worker RUN_DIR` runs one run folder."""

from __future__ import annotations

import signal
import sys

from selection.jobs.runner import run_job
from store.errors import ThresherError


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m selection.jobs.worker RUN_DIR", file=sys.stderr)
        return 2
    # A closing terminal must not end the job; cancellation is SIGTERM or the cancel file.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        status = run_job(args[0])
    except ThresherError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    print(f"run finished: {status}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
