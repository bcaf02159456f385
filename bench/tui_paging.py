"""TUI paging benchmark: a 1M-sample synthetic run with 40K decisions; first paint and key-to-page latency.

Usage: .venv/bin/python bench/tui_paging.py [--rows 1000000] [--decisions 40000] [--presses 30]

Measures, headless (Textual Pilot, 120x40), always until every line on screen shows a sample
(pages are read by workers; a line whose page is not here yet is a placeholder):
  - first paint: app start -> the browser's screen of samples drawn (RunView load included);
  - PgDn latency, key -> screen drawn, at the top, middle and end, each key to rows whose page
    is not cached (so each press waits for a keyset page query: the worst case), and as a user
    meets it (cache and read-ahead on);
  - sort change (key `s`) -> the screen of the re-sorted order drawn, then PgDn latency in it at
    once from the top (read-ahead on, while the new order is still being written as a table),
    and from the middle with each key to a page not cached.
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


async def painted(table, k0: float) -> float:
    """Milliseconds from k0 until every line on screen has shown a sample drawn after k0."""
    while True:
        lines = min(table.size.height, table.view.n_rows - table.scroll_offset.y)
        drawn = [table.drawn_at.get(y, 0.0) for y in range(lines)]
        if lines > 0 and min(drawn) > k0:
            return (max(drawn) - k0) * 1000
        await asyncio.sleep(0.001)  # a timestamp is measured; this only yields to the app


async def idle(app) -> None:
    """Until no worker runs (a page read cancelled by a newer order raises: wait again)."""
    from textual.worker import WorkerCancelled

    while True:
        try:
            return await app.workers.wait_for_complete()
        except WorkerCancelled:
            continue


async def measure(ws: Workspace, run_id: str, presses: int) -> dict[str, object]:
    from tui.app import ThresherApp
    from tui.screens.browser import BrowserScreen
    from tui.widgets.sample_table import PAGE, SampleTable

    out: dict[str, object] = {}
    t0 = time.perf_counter()
    app = ThresherApp(ws, image_mode="none", open_run=run_id)
    async with app.run_test(size=(120, 40)) as pilot:
        while not (
            isinstance(app.screen, BrowserScreen)
            and app.screen.query(SampleTable)  # the screen is pushed before it is composed
        ):
            await asyncio.sleep(0.005)
        screen = app.screen
        table = screen.query_one(SampleTable)
        out["first_paint_s"] = await painted(table, t0) / 1000
        await idle(app)
        await pilot.pause()

        async def pagedowns(label: str, start: int, cold: bool = True) -> None:
            """PgDn `presses` times from row `start`. cold: before each key the screen ends on a
            page boundary and only its pages are cached, so the new screen's page is read after
            the key (what a PgDn past the read-ahead, End or a jump meet); else read-ahead on."""
            table.move_to(start)
            await pilot.pause()
            await idle(app)
            height = table.size.height
            lat = []
            for i in range(presses):
                if cold:
                    top = (start // PAGE + 2 * i + 1) * PAGE - height
                    table.scroll_to(y=top, animate=False, force=True)
                    table.move_to(top)
                    await pilot.pause()
                    await idle(app)
                    shown = range(top // PAGE, (top + height - 1) // PAGE + 1)
                    for number in [n for n in table._pages if n not in shown]:
                        del table._pages[number]
                        table._fresh.discard(number)
                k0 = time.perf_counter()
                await pilot.press("pagedown")
                lat.append(await painted(table, k0))
                await idle(app)  # read-ahead done before the next key
            out[label] = (pct(lat, 50), pct(lat, 95))

        n = table.view.n_rows
        await pagedowns("top", 0)
        await pagedowns("middle", n // 2)
        await pagedowns("end", n - presses * 2 * PAGE - 2 * PAGE)
        await pagedowns("middle_read_ahead", n // 2, cold=False)
        k0 = time.perf_counter()
        await pilot.press("s")
        while screen.query_state.sort is None:
            await asyncio.sleep(0.001)
        out["sort_change_ms"] = await painted(table, k0)
        # at once, as a user pages a new order (the order is still being written as a table)
        await pagedowns("after_sort_read_ahead", 0, cold=False)
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
    print(f"first paint (app start -> a screen of samples): {res['first_paint_s']:.3f} s")
    for key in (
        "top",
        "middle",
        "end",
        "middle_read_ahead",
        "after_sort_read_ahead",
        "after_sort_middle",
    ):
        p50, p95 = res[key]
        print(f"PgDn {key:21s} p50 {p50:6.1f} ms  p95 {p95:6.1f} ms")
    print(f"sort change (s -> a screen of the new order): {res['sort_change_ms']:.0f} ms")
    print(f"group summary over all rows: {res['groups_ms']:.0f} ms")


if __name__ == "__main__":
    main()
