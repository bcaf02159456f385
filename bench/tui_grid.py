"""Thumbnail grid benchmark: key -> page of half-cell thumbnails painted, cold (decode) and warm (cache).

Usage: .venv/bin/python bench/tui_grid.py [--samples 400] [--size 640x480] [--pages 12]

A fake OFA run (tests/tui/fake_runs.py) over `--samples` samples whose images are JPEGs of
`--size` (random blocks, so they do not compress to nothing), driven headless by Textual's Pilot
at 120x40 (5 x 3 = 15 tiles a page). Time = from the key to the page's tiles updated on screen
(GridScreen.paint_ms: worker reads ids/decisions, decodes + downsizes every image, builds the
half-cell Text, the UI thread updates the 15 tiles). Cold pages decode; going back is warm.
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
from tests.tui.fake_runs import add_dataset, make_ofa_run  # noqa: E402


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(int(round(p / 100 * (len(values) - 1))), len(values) - 1)]


def write_images(catalog: Catalog, n: int, size: tuple[int, int]) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    folder = catalog.workspace.root / "data" / "demo"
    for i in range(n):
        blocks = rng.integers(0, 255, (size[1] // 40, size[0] // 40, 3), dtype=np.uint8)
        img = Image.fromarray(blocks).resize(size, Image.Resampling.BILINEAR)
        img.save(folder / f"img{i:04d}.png", format="JPEG", quality=85)  # the fixture's names


async def measure(ws: Workspace, pages: int) -> dict[str, float]:
    from tui.app import ThresherApp
    from tui.screens.grid import GridScreen

    app = ThresherApp(ws, image_mode="halfcell")
    async with app.run_test(size=(120, 40)) as pilot:
        await app.workers.wait_for_complete()
        view = app.view("ofa-1")
        app.open_grid(view, list(range(view.n_rows)), "bench")
        screen = app.screen
        assert isinstance(screen, GridScreen)

        async def wait_page(page: int) -> float:
            while screen.page != page or screen.paint_ms is None:
                await asyncio.sleep(0.002)
            await pilot.pause()
            return float(screen.paint_ms)

        cold = [await wait_page(0)]
        for p in range(1, pages):
            screen.paint_ms = None
            await pilot.press("pagedown")
            cold.append(await wait_page(p))
        warm = []
        for p in range(pages - 2, -1, -1):
            screen.paint_ms = None
            await pilot.press("pageup")
            warm.append(await wait_page(p))
        return {
            "tiles_per_page": screen.per_page,
            "cold_p50_ms": pct(cold, 50),
            "cold_p95_ms": pct(cold, 95),
            "cold_max_ms": max(cold),
            "warm_p50_ms": pct(warm, 50),
            "warm_p95_ms": pct(warm, 95),
        }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=400)
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--pages", type=int, default=12)
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory(prefix="thresher-grid-") as tmp:
        ws = Workspace(Path(tmp) / "ws").ensure()
        catalog = Catalog.open(ws)
        add_dataset(catalog, n=args.samples)
        make_ofa_run(catalog)
        t0 = time.perf_counter()
        write_images(catalog, args.samples, (w, h))
        print(f"wrote {args.samples} JPEGs {w}x{h} in {time.perf_counter() - t0:.1f} s")
        out = asyncio.run(measure(ws, args.pages))
        print(
            " ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in out.items())
        )


if __name__ == "__main__":
    main()
