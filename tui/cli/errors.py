"""The command line's one error path: every failure ends as one line saying what happened and
what to do, with exit code 1 (2 for usage errors and input the user can correct); `--debug`
(or THRESHER_DEBUG=1) also prints the traceback. Text passes store.redact first."""

from __future__ import annotations

import logging
import os
import sys
import traceback

import click

from store.errors import ThresherError
from store.redact import redact

# Set by the group's --debug flag; the environment variable also works for `python -m`.
debug = {"on": False}


def debug_on() -> bool:
    return debug["on"] or os.environ.get("THRESHER_DEBUG", "") not in ("", "0")


def _say(line: str) -> None:
    click.secho(f"error: {redact(line)}", fg="red", err=True)


def _advice(exc: BaseException) -> str:
    """One line for a failure no store or selection code turned into a ThresherError."""
    from store.failures import is_disk_full

    if is_disk_full(exc):
        where = getattr(exc, "filename", None)
        return (
            f"no space left on the device{f' writing {where}' if where else ''}; free some "
            "space (`df -h` shows where) and run the same command again."
        )
    if isinstance(exc, RecursionError):
        return (
            "the input nests lists or objects deeper than can be read (about 1000 levels); "
            "flatten or remove that part and try again."
        )
    if isinstance(exc, MemoryError):
        return "out of memory; try a smaller --batch-size or --limit, or a machine with more RAM."
    if isinstance(exc, PermissionError):
        return f"permission denied: {exc.filename or exc}; fix the file's permissions and retry."
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename or ''}; check the path and the device, then retry."
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return (
        f"unexpected {type(exc).__name__}{f': {text[:300]}' if text else ''}. Run the same "
        "command with --debug for the traceback and report it."
    )


def handle(exc: BaseException) -> int:
    """Print `exc` as one line (after the traceback under --debug); returns the exit code."""
    if debug_on():
        click.echo(redact("".join(traceback.format_exception(exc))), err=True)
    if isinstance(exc, ThresherError):
        _say(str(exc))
        return int(getattr(exc, "exit_code", 2))
    _say(_advice(exc))
    return 1


class _Notice(logging.Handler):
    """Store notices (a checkpointed WAL, removed temp files, a backup) as `note:` lines."""

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(f"note: {redact(record.getMessage())}", err=True)


def show_notices() -> None:
    logger = logging.getLogger("thresher.notice")
    if not any(isinstance(h, _Notice) for h in logger.handlers):
        logger.addHandler(_Notice())
        logger.setLevel(logging.INFO)
        logger.propagate = False


def repair(catalog_path: object) -> None:
    """`thresher doctor --repair`: checkpoint a stale WAL, check every table, restore a backup."""
    from pathlib import Path

    from store.catalog_health import repair as do_repair

    for line in do_repair(Path(str(catalog_path))):
        click.echo(line)
    sys.stdout.flush()
