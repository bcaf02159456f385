"""A virtual table over a RunView: draws only visible rows from an LRU cache of keyset pages (toolong's LogLines shape).

Pages are read by thread workers, never on the UI thread: a line whose page is not cached draws
as a placeholder, a page changed by a decision keeps drawing its old rows until the new read
arrives (stale while revalidate), and the pages either side of the screen are read ahead so
PgUp / PgDn mostly paint from memory. A filter or sort change cancels reads of the old order.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.timer import Timer
from textual.worker import get_current_worker

from tui.data.run_view import RunView, SampleRow, spelled
from tui.widgets import keys
from tui.worker_errors import ReportsWorkerErrors

PAGE = 100
CACHE_PAGES = 64
AHEAD = 1  # pages read ahead on either side of the screen
HOLD_S = 0.1  # a move to rows not read yet keeps the screen this long at most, waiting for them
ID_WIDTH = (6, 16)  # the id column fits the run's longest source id within these bounds


def _fmt_score(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def decision_marks(row: SampleRow) -> tuple[str, str, str]:
    """(algorithm, your override, effective) as words (`spelled`: UPPER CASE = yours)."""
    yours = row.override is not None
    return (
        spelled(row.algo, False),
        spelled(row.override == "keep", True) if yours else "",
        spelled(row.effective, yours),
    )


class SampleTable(ReportsWorkerErrors, ScrollView, can_focus=True):
    """Every sample of the current filter/sort; only the rows on screen are ever materialised."""

    HELP = (
        "## Samples\n\nOne line per sample of the current filter and sort.\n\n"
        "- **up/down, PgUp/PgDn, Home/End**: move\n- **space**: mark / unmark (k/d/u then act on all marked)\n"
        "- **k / d / u**: keep / drop / clear the override (the decision log records it at once)\n"
        "- **enter**: sample detail\n\nColumns: id = the sample's id in your source file, "
        "algo = the method's choice, yours = your override, eff = what an export will contain; "
        "UPPER CASE marks your decisions."
    )
    COMPONENT_CLASSES = {
        "sample-table--cursor",
        "sample-table--keep",
        "sample-table--drop",
        "sample-table--marked",
        "sample-table--header",
    }
    BINDINGS = [
        Binding("up", "cursor(-1)", "Up", show=False, id="table.up"),
        Binding("down", "cursor(1)", "Down", show=False, id="table.down"),
        Binding("pageup", "page(-1)", "Page up", show=False, id="table.pageup"),
        Binding("pagedown", "page(1)", "Page down", show=False, id="table.pagedown"),
        Binding("home", "to_start", "Top", show=False, id="table.home"),
        Binding("end", "to_end", "End", show=False, id="table.end"),
        keys.mark("table"),
        *keys.decide("table"),
        Binding("enter", "open", "Detail", id="table.open", tooltip="Open the sample detail"),
    ]

    WORK_LABELS = {"sample-page": "reading samples"}

    cursor: reactive[int] = reactive(0, repaint=False)

    @dataclass
    class Decide(Message):
        """The user decided `action` on these rows (rid = row of input.parquet)."""

        table: SampleTable
        rids: list[int]
        action: str

    @dataclass
    class Open(Message):
        table: SampleTable
        rid: int

    @dataclass
    class PageRead(Message, bubble=False):
        """A worker read page `number` of the order the table showed at `generation`."""

        number: int
        generation: int
        rows: list[SampleRow]

    def __init__(self, view: RunView, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.view = view
        self.marked: set[int] = set()
        # LRU of pages; a page not in `_fresh` is drawn (stale) but read again
        self._pages: OrderedDict[int, list[SampleRow]] = OrderedDict()
        self._fresh: set[int] = set()
        self.reading: set[int] = set()  # pages being read for the current generation
        self._failed: set[int] = set()  # not retried until the next change (the error was shown)
        self._generation = 0  # bumped by every reset / invalidate: older reads are dropped
        self._view_generation = view.generation  # the RunView ordering these pages are of
        self._deferred: tuple[int, Callable[[SampleRow], None]] | None = None
        self._held_top: int | None = None  # where the screen scrolls once its pages are here
        self._hold_timer: Timer | None = None
        # screen line -> perf_counter when it last showed a sample (not a placeholder): the benchmark
        self.drawn_at: dict[int, float] = {}
        self.placeholders = 0  # lines drawn before their page was here (tests, benchmark)
        self._columns_cache: tuple[tuple[int, int, int], list[tuple[str, int]]] | None = None
        self.virtual_size = Size(80, view.n_rows)

    # ---------------------------------------------------------------- data

    def reset(self, keep_cursor: bool = False) -> None:
        """The ordering changed (filter, sort): forget cached pages, resize the virtual space."""
        self._forget(stale=False)
        self._view_generation = self.view.generation
        self.virtual_size = Size(self.size.width or 80, self.view.n_rows)
        if not keep_cursor:
            self.cursor = 0
            self.scroll_to(y=0, animate=False, force=True)
        else:
            self.cursor = min(self.cursor, max(self.view.n_rows - 1, 0))
        self.want_visible(top=None if keep_cursor else 0)
        self.refresh()

    def invalidate(self) -> None:
        """Rows changed in place (a decision): keep drawing them, read them again, keep the position."""
        self._forget(stale=True)
        self.want_visible()

    def _forget(self, stale: bool) -> None:
        self._generation += 1
        self._fresh.clear()
        self.reading.clear()
        self._failed.clear()
        if not stale:
            self._pages.clear()
            self._deferred = None
            self._held_top = None  # the order changed: the move is to rows that are no more
            self._release()
        if self.is_mounted:
            self.workers.cancel_node(self)  # reads of an older generation are dropped anyway

    def want_visible(self, top: int | None = None, ahead: bool = True) -> None:
        """Read the pages on screen unless cached and fresh; once they are (and `ahead`), those
        either side."""
        top = self.scroll_offset.y if top is None else top
        first = top // PAGE
        last = (top + max(self.size.height, 1) - 1) // PAGE
        for number in range(first, last + 1):
            self._want(number)
        if ahead and all(n in self._fresh for n in range(first, last + 1)):  # the screen first
            for step in range(1, AHEAD + 1):
                self._want(last + step)
                self._want(first - step)

    def _want(self, number: int) -> None:
        if number < 0 or number * PAGE >= self.view.n_rows:
            return
        if number in self._fresh or number in self.reading or number in self._failed:
            return
        self.reading.add(number)
        self.run_worker(
            partial(self._read, number, self._generation, self._view_generation),
            thread=True,
            group="sample-page",
            exit_on_error=False,
        )

    def _read(self, number: int, generation: int, view_generation: int) -> None:
        """Worker thread: one keyset page, dropped when the order changed meanwhile."""
        if get_current_worker().is_cancelled or generation != self._generation:
            return
        if self.view.generation != view_generation:
            return  # the view already has the next order; the table's reset follows
        rows = self.view.page(number * PAGE, PAGE)
        if self.view.generation != view_generation:
            return
        self.post_message(self.PageRead(number, generation, rows))

    def on_sample_table_page_read(self, message: PageRead) -> None:
        if message.generation != self._generation:
            return
        number = message.number
        self.reading.discard(number)
        self._fresh.add(number)
        self._pages[number] = message.rows
        self._pages.move_to_end(number)
        while len(self._pages) > CACHE_PAGES:
            old, _ = self._pages.popitem(last=False)
            self._fresh.discard(old)
        self.refresh_lines(number * PAGE, PAGE)
        if self._held_top is not None and self._cached(self._held_top):
            self._release()
        # the pages either side once the screen's are drawn (reading them sooner delays that)
        self.call_after_refresh(self.want_visible)
        if self._deferred is not None and self._deferred[0] // PAGE == number:
            index, act = self._deferred
            self._deferred = None
            row = self.row_at(index)
            if row is not None and index == self.cursor:
                act(row)

    def worker_failed(self, group: str, error: BaseException | None) -> None:
        """The page stays a placeholder (the app notified the error); the next change retries."""
        self._failed |= self.reading
        self.reading.clear()

    def row_at(self, index: int) -> SampleRow | None:
        """The cached row at this position (maybe stale), None while its page is being read."""
        if index < 0 or index >= self.view.n_rows:
            return None
        page_no = index // PAGE
        page = self._pages.get(page_no)
        if page is None:
            return None
        self._pages.move_to_end(page_no)
        offset = index - page_no * PAGE
        return page[offset] if offset < len(page) else None

    @property
    def current(self) -> SampleRow | None:
        return self.row_at(self.cursor)

    def with_current(self, act: Callable[[SampleRow], None]) -> None:
        """Act on the cursor's row now, or as soon as its page arrives (a key is never lost)."""
        row = self.current
        if row is not None:
            act(row)
        elif 0 <= self.cursor < self.view.n_rows:
            self._deferred = (self.cursor, act)
            self._want(self.cursor // PAGE)

    # ---------------------------------------------------------------- drawing

    @property
    def id_width(self) -> int:
        return min(max(self.view.id_length + 1, ID_WIDTH[0]), ID_WIDTH[1])

    def visible_scores(self, width: int) -> int:
        """How many score columns fit while leaving the text columns at least 24 cells (80x24 terminals)."""
        n = len(self.view.scores)
        while n > 0 and width - (18 + self.id_width + 8 * n) < 24:
            n -= 1
        return n

    def columns(self, width: int) -> list[tuple[str, int]]:
        key = (width, len(self.view.scores), self.id_width)
        cached = self._columns_cache
        if cached is not None and cached[0] == key:
            return cached[1]
        cols = self._columns(width)
        self._columns_cache = (key, cols)
        return cols

    def _columns(self, width: int) -> list[tuple[str, int]]:
        n_scores = self.visible_scores(width)
        fixed = 2 + self.id_width + 5 + 6 + 5 + 8 * n_scores
        rest = max(width - fixed, 12)
        answer_w = max(rest // 3, 6)
        cols = [("", 2), ("id", self.id_width), ("algo", 5), ("yours", 6), ("eff", 5)]
        cols += [(s[:7], 8) for s in self.view.scores[:n_scores]]
        cols += [("question", rest - answer_w), ("answer", answer_w)]
        return cols

    def header_text(self, width: int) -> str:
        return "".join(name.ljust(w)[:w] for name, w in self.columns(width))[:width]

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        index = self.scroll_offset.y + y
        if index >= self.view.n_rows:
            return Strip.blank(width, self.rich_style)
        page_no = index // PAGE
        if page_no not in self._fresh:
            self.want_visible(ahead=False)
        row = self.row_at(index)
        if row is None:  # its page is being read: a placeholder, the cursor still visible
            self.placeholders += 1
            style = self.rich_style
            if index == self.cursor:
                style += self.get_component_rich_style("sample-table--cursor")
            return Strip([Segment("  …", style + Style(dim=True))]).adjust_cell_length(width, style)
        self.drawn_at[y] = time.perf_counter()
        cells = []
        marks = decision_marks(row)
        n_scores = self.visible_scores(width)
        for (name, w), value in zip(
            self.columns(width),
            [
                "*" if row.rid in self.marked else "",
                row.orig_id,
                *marks,
                *(_fmt_score(s) for s in row.scores[:n_scores]),
                row.question.replace("\n", " "),
                row.answer.replace("\n", " "),
            ],
            strict=True,
        ):
            del name
            cells.append(value[: w - 1].ljust(w))
        text = "".join(cells)
        base = self.rich_style
        if index == self.cursor:
            style = base + self.get_component_rich_style("sample-table--cursor")
        elif row.rid in self.marked:
            style = base + self.get_component_rich_style("sample-table--marked")
        else:
            style = base
        eff_style = self.get_component_rich_style(
            "sample-table--keep" if row.effective else "sample-table--drop"
        )
        eff_start = 2 + self.id_width + 5 + 6
        segments = [
            Segment(text[:eff_start], style),
            Segment(text[eff_start : eff_start + 5], style + Style(bold=True) + eff_style),
            Segment(text[eff_start + 5 :], style),
        ]
        return Strip(segments).adjust_cell_length(width, base)

    @dataclass
    class HeaderChanged(Message):
        """The column layout changed (width, the id column's width): the screen redraws the header."""

        text: str

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        self.want_visible(ahead=False)
        self.call_after_refresh(self.want_visible)  # read ahead once this screen is drawn

    def on_mount(self) -> None:
        super().on_mount()  # ScrollView's: the scrollbars
        self.want_visible()

    def on_resize(self) -> None:
        self.virtual_size = Size(self.size.width, self.view.n_rows)
        self.post_header()

    def post_header(self) -> None:
        if self.size.width:
            self.post_message(self.HeaderChanged(self.header_text(self.size.width)))

    # ---------------------------------------------------------------- keys

    @property
    def _top(self) -> int:
        """The first row on screen, or the one it is about to be (a held move)."""
        return self.scroll_offset.y if self._held_top is None else self._held_top

    def _cached(self, top: int) -> bool:
        last = min(top + max(self.size.height, 1), self.view.n_rows) - 1
        return all(n in self._pages for n in range(max(top, 0) // PAGE, last // PAGE + 1))

    def _scroll_rows(self, top: int) -> None:
        """Scroll so row `top` is first on screen. Rows not read yet: keep this screen until they
        arrive (HOLD_S at most), so one frame shows them instead of a frame of placeholders and,
        on the next 60 Hz tick after the read, another."""
        top = max(0, min(top, self.view.n_rows - max(self.size.height, 1)))
        if top == self._top:
            return
        self._held_top = top
        self.want_visible(top=top, ahead=False)
        if self._cached(top):
            self._release()
        elif self._hold_timer is None:
            self._hold_timer = self.set_timer(HOLD_S, self._release)

    def _release(self) -> None:
        if self._hold_timer is not None:
            self._hold_timer.stop()
            self._hold_timer = None
        top, self._held_top = self._held_top, None
        if top is not None:
            self.scroll_to(y=top, animate=False, force=True)

    def watch_cursor(self, old: int, new: int) -> None:
        top = self._top
        height = max(self.size.height, 1)
        if new < top:
            self._scroll_rows(new)
        elif new >= top + height:
            self._scroll_rows(new - height + 1)
        if self._held_top is None:  # else the move's one frame comes when its rows do
            self.refresh()

    def move_to(self, index: int) -> None:
        self.cursor = max(0, min(index, self.view.n_rows - 1))

    def action_cursor(self, delta: int) -> None:
        self.move_to(self.cursor + delta)

    def action_page(self, direction: int) -> None:
        height = max(self.size.height, 1)
        self._scroll_rows(self._top + direction * height)
        self.move_to(self.cursor + direction * height)

    def action_to_start(self) -> None:
        self.move_to(0)

    def action_to_end(self) -> None:
        self.move_to(self.view.n_rows - 1)

    def action_mark(self) -> None:
        def mark(row: SampleRow) -> None:
            self.marked.symmetric_difference_update({row.rid})
            self.move_to(self.cursor + 1)
            self.refresh()

        self.with_current(mark)

    def action_decide(self, action: str) -> None:
        if self.marked:
            rids = sorted(self.marked)
            self.marked.clear()
            self.post_message(self.Decide(self, rids, action))
        else:
            self.with_current(lambda row: self.post_message(self.Decide(self, [row.rid], action)))

    def action_open(self) -> None:
        self.with_current(lambda row: self.post_message(self.Open(self, row.rid)))
