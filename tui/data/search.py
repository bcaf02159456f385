"""The TUI's side of search: one `RunSearcher` per run, kept while the app runs, and each hit's decision.

Opening a searcher copies the run's embeddings into the index (seconds at a million rows), so
screens build it in a worker and share it; the text encoder loads on the first text query.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from selection.search import Hit, RunSearcher
from store.catalog import Catalog
from store.tags import current_tags
from tui.data.run_view import RunView

_searchers: dict[Path, RunSearcher] = {}
_lock = threading.Lock()


def searcher_for(run_dir: Path) -> RunSearcher:
    with _lock:
        found = _searchers.get(run_dir)
        if found is None:
            if len(_searchers) >= 2:  # two runs' matrices at most (1M x 1024 is 2 GB each)
                _searchers.pop(next(iter(_searchers)))
            found = _searchers[run_dir] = RunSearcher(run_dir)
        return found


@dataclass(frozen=True)
class HitRow:
    hit: Hit
    algo: bool | None  # the algorithm's choice (default selection)
    override: str | None  # keep | drop | None
    tags: tuple[str, ...] = ()


def hit_rows(view: RunView, hits: list[Hit], catalog: Catalog | None = None) -> list[HitRow]:
    """Each hit with the run's choice, the current override (rid = the hit's input row) and,
    given the catalog, the sample's tags."""
    found: dict[int, list[str]] = {}
    if catalog is not None and hits:
        with catalog.connect() as con:
            found = current_tags(con, [h.sample_id for h in hits])
    decided = view.decisions([h.row for h in hits])  # one query for all hits
    out = []
    for h in hits:
        algo, override = decided.get(h.row, (None, None))
        out.append(HitRow(h, algo, override, tuple(found.get(h.sample_id, ()))))
    return out
