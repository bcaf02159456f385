"""TUI paging benchmark: a 1M-sample synthetic run with 40K decisions; first paint and key-to-page latency.

Usage: .venv/bin/python bench/tui_paging.py [--rows 1000000] [--decisions 40000] [--presses 30]

Measures, headless (Textual Pilot, 120x40):
  - first paint: app start -> the browser's first sample line drawn (RunView load included);
  - PgDn latency, key -> last line of the new page drawn, at the top, middle and end, with the
    page cache emptied before every key (so each press runs a keyset page query);
  - sort change (key `s`) -> first line of the re-sorted order drawn, then PgDn latency in it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from store.catalog import Catalog  # noqa: E402
from store.workspace import Workspace  # noqa: E402
from tests.tui.fake_runs import make_big_run  # noqa: E402


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(int(round(p / 100 * (len(values) - 1))), len(values) - 1)]


async def measure(ws: Workspace, run_id: str, presses: int) -> dict[str, object]:
    from tui.app import ThresherApp
    from tui.screens.browser import BrowserScreen
    from tui.widgets.sample_table import SampleTable

    out: dict[str, object] = {}
    t0 = time.perf_counter()
    app = ThresherApp(ws, image_mode="none", open_run=run_id)
    async with app.run_test(size=(120, 40)) as pilot:
        while not (
            isinstance(app.screen, BrowserScreen)
            and app.screen.query(SampleTable)  # the screen is pushed before it is composed
            and app.screen.query_one(SampleTable).last_render
        ):
            await asyncio.sleep(0.005)
        out["first_paint_s"] = app.screen.query_one(SampleTable).last_render - t0
        screen = app.screen
        table = screen.query_one(SampleTable)
        await app.workers.wait_for_complete()
        await pilot.pause()

        async def pagedowns(label: str, start: int) -> None:
            table.move_to(start)
            await pilot.pause()
            lat = []
            for _ in range(presses):
                table._pages.clear()  # every press pays for a keyset page query
                before = table.pages_fetched
                k0 = time.perf_counter()
                await pilot.press("pagedown")
                await pilot.pause()
                assert table.pages_fetched > before, "the press drew no new page"
                lat.append((table.last_render - k0) * 1000)
            out[label] = (pct(lat, 50), pct(lat, 95))

        n = table.view.n_rows
        await pagedowns("top", 0)
        await pagedowns("middle", n // 2)
        await pagedowns("end", n - presses * 40 - 100)
        k0 = time.perf_counter()
        render_before = table.last_render
        await pilot.press("s")
        while screen.query_state.sort is None or table.last_render == render_before:
            await pilot.pause()
        out["sort_change_ms"] = (table.last_render - k0) * 1000
        await pagedowns("after_sort_middle", n // 2)
        out["groups_ms"] = _time(lambda: table.view.groups("cluster")) * 1000
    return out


def _time(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--decisions", type=int, default=40_000)
    ap.add_argument("--presses", type=int, default=30)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(Path(tmp) / "ws").ensure()
        Catalog.open(ws)
        t = time.perf_counter()
        make_big_run(ws, "big", args.rows, args.decisions)
        print(
            f"built {args.rows:,} rows + {args.decisions:,} decisions in {time.perf_counter() - t:.1f}s"
        )
        res = asyncio.run(measure(ws, "big", args.presses))
    print(f"first paint (app start -> first sample line): {res['first_paint_s']:.3f} s")
    for key in ("top", "middle", "end", "after_sort_middle"):
        p50, p95 = res[key]
        print(f"PgDn {key:18s} p50 {p50:6.1f} ms  p95 {p95:6.1f} ms")
    print(f"sort change (s -> first line of new order): {res['sort_change_ms']:.0f} ms")
    print(f"group summary over all rows: {res['groups_ms']:.0f} ms")


if __name__ == "__main__":
    main()
