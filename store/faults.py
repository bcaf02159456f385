"""Fault injection for the fault tests: `THRESHER_FAULT=ACTION:POINT[,ACTION:POINT...]`.

At a named point a command can be killed (`kill`: SIGKILL, as a crash or `kill -9` would) or
made to meet a full disk (`enospc`: an OSError ENOSPC). Unset (always, outside tests), a point
costs one environment lookup. Points: export.written (the manifest's temp file is complete),
export.publish (before the renames), ingest.committed (after the catalog commit, before the
checkpoint), ingest.write (before the catalog transaction).
"""

from __future__ import annotations

import errno
import os
import signal

ENV = "THRESHER_FAULT"


def point(name: str, path: object = None) -> None:
    """Act on `name` if THRESHER_FAULT asks for it; otherwise do nothing."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    for item in spec.split(","):
        action, _, where = item.strip().partition(":")
        if where != name:
            continue
        if action == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        elif action == "enospc":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path or name))
