"""Leftovers of interrupted atomic writes: `.NAME.tmp-*` beside a target, removed by the next writer.

Exports (and run files) are written to a hidden temp name beside their target and renamed into
place. A process killed in between leaves the temp behind; the next command that writes the
same target removes it and says how many bytes it freed.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger("thresher.notice")


def temp_names(target: Path) -> list[str]:
    """The glob patterns of temp files that writers of `target` create beside it."""
    return [f".{target.name}.tmp-*", f".{target.name}.meta.json.tmp-*"]


def remove_stale_temps(target: Path, also: tuple[Path, ...] = ()) -> int:
    """Delete temp files left by killed writers of `target` (and of `also`); returns bytes freed.

    Call it only while holding what serialises writers of `target` (for exports: the catalog
    connection, which one process at a time can hold).
    """
    freed, n = 0, 0
    for t in (target, *also):
        if not t.parent.is_dir():
            continue
        for pattern in temp_names(t):
            for stale in t.parent.glob(pattern):
                try:
                    size = stale.stat().st_size
                    stale.unlink()
                except OSError:
                    continue
                freed += size
                n += 1
    if n:
        log.warning(
            "removed %d temp file(s) (%s bytes) left beside %s by an interrupted command",
            n,
            f"{freed:,}",
            target,
        )
    return freed
