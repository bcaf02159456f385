"""A page of thumbnails of a cluster, subset or search result: arrow keys move, k/d/u decide.

A page's tiles (ids, decisions, thumbnails) are built in a worker; the thumbnails come from a
process-wide cache (tui/widgets/thumbs.py), so paging back paints from memory. The header says
how long the last page took from the key to the paint.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Vertical
from textual.message import Message
from textual.widgets import Footer, Label

from tui.data.grid import Tile, tiles
from tui.data.run_view import RunView
from tui.screens.base import DecidingScreen
from tui.widgets import keys
from tui.widgets.thumbs import ThumbView, graphics_class, thumbnail, thumbnail_image
from tui.worker_errors import describe

THUMB_W, THUMB_H = 20, 8  # cells; a tile adds a caption line and a border


class TileView(ThumbView):
    """One half-cell thumbnail and its caption (source id, decision)."""


class GraphicTile(Vertical):
    """One thumbnail drawn by textual-image (Kitty or Sixel) and its caption."""

    def __init__(self, image_cls, **kw) -> None:
        super().__init__(**kw)
        self.image_cls = image_cls

    def compose(self) -> ComposeResult:
        yield self.image_cls(None, classes="tile-image")
        yield Label("", classes="tile-caption")

    def show(self, image, caption: str = "", bold: bool = False) -> None:
        self.query_one(".tile-image").image = image
        label = self.query_one(".tile-caption", Label)
        label.update(caption)
        label.set_class(bold, "-override")


class GridScreen(DecidingScreen):
    CSS_PATH = "views.tcss"
    HELP = (
        "## Thumbnail grid\n\nA page of thumbnails of the samples you came from (a group, a "
        "search result). **arrows** move, **PgUp / PgDn** page, **space** marks (across pages), "
        "**k / d / u** keep, drop or clear the marked samples (else the focused one), **enter** opens its detail, **esc** goes back. Decisions in capitals "
        "(KEEP, DROP) are yours; lower case is the algorithm's."
    )
    BINDINGS = [
        keys.back("grid"),
        Binding("left", "move(-1)", "Left", show=False, id="grid.left"),
        Binding("right", "move(1)", "Right", show=False, id="grid.right"),
        Binding("up", "move_row(-1)", "Up", show=False, id="grid.up"),
        Binding("down", "move_row(1)", "Down", show=False, id="grid.down"),
        Binding("pageup", "page(-1)", "Prev page", id="grid.prev"),
        Binding("pagedown", "page(1)", "Next page", id="grid.next"),
        keys.mark("grid"),
        *keys.decide("grid"),
        Binding("enter", "open", "Detail", id="grid.open"),
    ]
    WORK_LABELS = DecidingScreen.WORK_LABELS | {"grid": "thumbnails"}

    @dataclass
    class PageReady(Message):
        page: int
        tiles: list[Tile]
        thumbs: list  # strips (half-cell) or Pillow images (graphics)
        started: float

    def __init__(self, view: RunView, rids: list[int], title: str) -> None:
        super().__init__()
        self.view, self.rids, self.title_text = view, rids, title
        self.cursor = 0
        self.page = -1
        self.cols, self.rows_per_page = 4, 2
        self.tiles: list[Tile] = []
        self.thumbs: list = []
        self.graphics = None  # textual-image widget class (Kitty/Sixel), None = half-cell
        self.paint_ms: float | None = None
        self.marked: set[int] = set()  # rids, across pages

    @property
    def per_page(self) -> int:
        return self.cols * self.rows_per_page

    def compose(self) -> ComposeResult:
        yield Label(self.title_text, id="run-header")
        yield Label("loading…", id="grid-status", classes="hint")
        yield Grid(id="grid")
        yield Footer()

    def on_mount(self) -> None:
        self.graphics = graphics_class(getattr(self.app, "image_mode", "none"))
        self.layout_grid()
        self.load_page(0)

    def on_resize(self) -> None:
        if self.layout_grid():
            self.load_page(self.cursor // self.per_page, force=True)

    def layout_grid(self) -> bool:
        """Fit as many tiles as the screen holds; True when the shape changed."""
        width, height = self.size.width or 80, self.size.height or 24
        cols = max(1, width // (THUMB_W + 2))
        rows = max(1, (height - 4) // (THUMB_H + 3))
        changed = (cols, rows) != (self.cols, self.rows_per_page)
        self.cols, self.rows_per_page = cols, rows
        grid = self.query_one("#grid", Grid)
        grid.styles.grid_size_columns = cols
        grid.remove_children()
        grid.mount_all(
            [
                GraphicTile(self.graphics, classes="tile")
                if self.graphics
                else TileView(classes="tile")
                for _ in range(self.per_page)
            ]
        )
        return changed

    def load_page(self, page: int, force: bool = False) -> None:
        if page == self.page and not force:
            self.paint()
            return
        self.query_one("#grid-status", Label).update(f"page {page + 1}: loading…")
        start = page * self.per_page
        self.build(page, self.rids[start : start + self.per_page], time.perf_counter())

    @work(thread=True, exclusive=True, group="grid", exit_on_error=False)
    def build(self, page: int, rids: list[int], started: float) -> None:
        page_tiles = tiles(self.view, rids)
        if self.graphics is not None:  # decoded and downsized here; the widget only encodes
            thumbs = [thumbnail_image(t.image, THUMB_W * 8, THUMB_H * 16) for t in page_tiles]
        else:
            thumbs = [thumbnail(t.image, THUMB_W, THUMB_H) for t in page_tiles]
        self.post_message(self.PageReady(page, page_tiles, thumbs, started))

    def on_grid_screen_page_ready(self, message: PageReady) -> None:
        self.page, self.tiles, self.thumbs = message.page, message.tiles, message.thumbs
        self.paint()
        self.paint_ms = (time.perf_counter() - message.started) * 1000

    def worker_failed(self, group: str, error: BaseException | None) -> None:
        self.query_one("#grid-status", Label).update(f"could not load: {describe(error)}")

    def paint(self) -> None:
        cells = list(self.query(".tile"))
        focus = self.cursor - self.page * self.per_page
        for i, cell in enumerate(cells):
            if i >= len(self.tiles):
                cell.show(None if self.graphics else [])
                cell.set_class(False, "-focused")
                continue
            t = self.tiles[i]
            mark = "*" if t.rid in self.marked else " "
            caption = f"{mark}{t.orig_id[: THUMB_W - 7]:<{THUMB_W - 6}}{t.decision:>5}"
            cell.show(self.thumbs[i], caption, bold=t.override is not None)
            cell.set_class(i == focus, "-focused")
        n_pages = max(1, -(-len(self.rids) // self.per_page))
        took = f" · painted in {self.paint_ms:.0f} ms" if self.paint_ms is not None else ""
        self.query_one("#grid-status", Label).update(
            f"page {self.page + 1}/{n_pages} · sample {self.cursor + 1}/{len(self.rids)}{took}"
        )

    # ---------------------------------------------------------------- keys

    def go(self, index: int) -> None:
        if not self.rids:
            return
        self.cursor = max(0, min(len(self.rids) - 1, index))
        self.load_page(self.cursor // self.per_page)

    def action_move(self, step: int) -> None:
        self.go(self.cursor + step)

    def action_move_row(self, step: int) -> None:
        self.go(self.cursor + step * self.cols)

    def action_page(self, step: int) -> None:
        self.go(self.cursor + step * self.per_page)

    @property
    def current(self) -> Tile | None:
        i = self.cursor - self.page * self.per_page
        return self.tiles[i] if 0 <= i < len(self.tiles) else None

    def action_mark(self) -> None:
        tile = self.current
        if tile is not None:
            self.marked ^= {tile.rid}
            self.go(self.cursor + 1)
            self.paint()

    def action_decide(self, action: str) -> None:
        """Decide the marked samples (any page), else the focused one."""
        tile = self.current
        self.decide_rows(
            sorted(self.marked) if self.marked else ([tile.rid] if tile else []), action
        )
        self.marked = set()
        self.paint()

    def shown_rids(self) -> list[int]:
        return [t.rid for t in self.tiles]

    def show_decisions(self, found: dict[int, tuple[bool, str | None]]) -> None:
        self.tiles = [
            replace(t, algo=found[t.rid][0], override=found[t.rid][1]) if t.rid in found else t
            for t in self.tiles
        ]
        self.paint()

    def action_open(self) -> None:
        tile = self.current
        if tile is not None:
            self.app.open_detail(self.view, tile.rid)
