"""The detail screen's image in the terminal graphics protocols: Kitty (Unicode placeholders
after an upload) and Sixel (a DCS sequence injected on the image's last line)."""

from __future__ import annotations

import pytest
from textual.geometry import Region

from tests.tui.helpers import settle

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("mode", ["kitty", "sixel"])
async def test_detail_draws_the_image_with_the_protocol_asked_for(runs_ws, mode):
    from tui.app import ThresherApp

    app = ThresherApp(runs_ws, image_mode=mode)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        app.open_browser("clipper-1")
        await settle(pilot)
        await pilot.press("enter")  # the first sample has a real PNG
        await settle(pilot)
        await pilot.pause(0.2)
        image = app.screen.query_one("#sample-image")
        if mode == "kitty":
            assert type(image).__name__ == "TGPImage"
            lines = [image.render_line(y) for y in range(image.size.height)]
            text = "".join(seg.text for strip in lines for seg in strip)
            assert "\U0010eeee" in text  # Kitty's image placeholder cells
        else:
            impl = image.children[0]
            assert type(impl).__name__ == "_ImageSixelImpl"
            w, h = impl.size
            strips = impl.render_lines(Region(0, 0, w, h))
            data = "".join(seg.text for strip in strips for seg in strip)
            assert "\x1bP" in data and "#" in data  # DCS ... sixel colour registers


@pytest.mark.parametrize("mode", ["kitty", "sixel"])
async def test_grid_tiles_use_the_protocol_asked_for(runs_ws, mode):
    from tui.app import ThresherApp
    from tui.screens.grid import GraphicTile, GridScreen

    app = ThresherApp(runs_ws, image_mode=mode)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        app.open_grid(app.view("ofa-1"), list(range(10)), "graphics")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, GridScreen)
        tiles = list(screen.query(GraphicTile))
        assert len(tiles) == screen.per_page
        image = tiles[0].query_one(".tile-image")
        from textual_image import widget as ti

        assert type(image) is {"kitty": ti.TGPImage, "sixel": ti.SixelImage}[mode]
        assert image.image is not None and image.image.size[0] <= 160  # decoded, downsized
        assert tiles[0].query_one(".tile-caption").render().plain.split()[0] == "s0"
