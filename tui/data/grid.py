"""What a thumbnail grid needs per sample: source id, first image, the run's choice and the override.

Rows are read from the run's input.parquet by row group (only the groups that hold the page's
rows), so a page costs the same at any depth of a million-row run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow.parquet as pq

from tui.data.run_view import RunView, spelled_decision


@dataclass(frozen=True)
class Tile:
    rid: int
    sample_id: int
    orig_id: str
    image: str | None
    algo: bool | None
    override: str | None

    @property
    def decision(self) -> str:
        return spelled_decision(self.algo, self.override)


def input_rows(path, rids: list[int]) -> dict[int, tuple[int, str, str | None]]:
    """rid -> (sample_id, orig_id, first image) for these input rows."""
    pf = pq.ParquetFile(path)
    starts = np.cumsum([0] + [pf.metadata.row_group(i).num_rows for i in range(pf.num_row_groups)])
    out: dict[int, tuple[int, str, str | None]] = {}
    want = sorted(set(rids))
    groups = sorted({int(np.searchsorted(starts, r, side="right")) - 1 for r in want})
    for g in groups:
        table = pf.read_row_group(g, columns=["sample_id", "orig_id", "images"])
        ids, origs, images = (table.column(c) for c in ("sample_id", "orig_id", "images"))
        for r in want:
            if starts[g] <= r < starts[g + 1]:
                i = r - int(starts[g])
                imgs = images[i].as_py() or []
                out[r] = (ids[i].as_py(), str(origs[i].as_py()), imgs[0] if imgs else None)
    return out


def tiles(view: RunView, rids: list[int]) -> list[Tile]:
    """One tile per rid, in the given order."""
    found = input_rows(view.input_path, rids)
    decided = view.decisions(rids)  # one query for the page, not one a tile
    out = []
    for rid in rids:
        sid, orig, image = found[rid]
        algo, override = decided.get(rid, (None, None))
        out.append(Tile(rid, sid, orig, image, algo, override))
    return out


GRID_LIMIT = 20_000  # rows of the browser's current view a grid opens with


def shown_rids(view: RunView, limit: int = GRID_LIMIT) -> list[int]:
    """The rids of the browser's current filter/sort, in order (the first `limit`)."""
    return [row.rid for row in view.page(0, min(view.n_rows, limit))]
