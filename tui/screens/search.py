"""Search a run by meaning: a text box (the run's own CLIP encodes it) or "more like" a sample;
the results are a list you mark and keep/drop in bulk, tag, or open as a thumbnail grid."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Footer, Input, Label

from selection.search import SearchResult
from tui.data.run_view import RunView, spelled_decision
from tui.data.search import HitRow, hit_rows, searcher_for
from tui.screens.base import DecidingScreen
from tui.widgets import keys
from tui.widgets.dialogs import ConfirmScreen, PromptScreen
from tui.widgets.tables import under_cursor
from tui.worker_errors import describe


def decision_text(row: HitRow) -> str:
    return spelled_decision(row.algo, row.override)


class SearchScreen(DecidingScreen):
    CSS_PATH = "views.tcss"
    HELP = (
        "## Search\n\nType a text and press **enter**: the run's own CLIP encoder turns it into a "
        "vector and the samples nearest it come back, best first (score = cosine). **m** on a "
        "result searches for more like that sample. **space** marks a result; **k / d / u** keep, "
        "drop or clear the marked results (or the focused one when none is marked); **K / D** "
        "keep or drop every result after a confirmation; **t** tags the marked results; **G** "
        "opens them as a thumbnail grid; **enter** opens a result's detail."
    )
    BINDINGS = [
        keys.back("search"),
        keys.mark("search"),
        *keys.decide("search"),
        Binding("K", "decide_all('keep')", "Keep all", id="search.keep_all"),
        Binding("D", "decide_all('drop')", "Drop all", id="search.drop_all"),
        Binding("m", "more_like", "More like this", id="search.more"),
        Binding("t", "tag", "Tag", id="search.tag"),
        Binding("G", "grid", "Grid", id="search.grid"),
        Binding("slash", "focus_input", "Search", show=False, id="search.focus"),
    ]
    WORK_LABELS = DecidingScreen.WORK_LABELS | {"search": "search"}

    @dataclass
    class Done(Message):
        result: SearchResult
        rows: list[HitRow]

    def __init__(
        self, view: RunView, text: str | None = None, like: int | None = None, top: int = 50
    ) -> None:
        super().__init__()
        self.view = view
        self.initial = (text, like)
        self.top = top
        self.rows: list[HitRow] = []
        self.marked: set[int] = set()
        self.result: SearchResult | None = None

    def compose(self) -> ComposeResult:
        yield Label(f"Search {self.view.run_id}", id="run-header")
        yield Input(placeholder="search by meaning, e.g. a bar chart of sales", id="search-input")
        yield Label("type a query and press enter", id="search-status", classes="hint")
        table: DataTable = DataTable(id="search-results", cursor_type="row", zebra_stripes=True)
        table.add_columns(" ", "#", "score", "id", "decision", "tags", "question")
        yield table
        yield Footer()

    def on_mount(self) -> None:
        text, like = self.initial
        if text is not None or like is not None:
            if text:
                self.query_one(Input).value = text
            self.start(text, like)
            self.query_one(DataTable).focus()
        else:
            self.query_one(Input).focus()

    # ---------------------------------------------------------------- searching

    def start(self, text: str | None, like: int | None) -> None:
        what = f"more like {like}" if like is not None else repr(text)
        self.query_one("#search-status", Label).update(f"searching {what}…")
        self.search(text, like)

    @work(thread=True, exclusive=True, group="search", exit_on_error=False)
    def search(self, text: str | None, like: int | None) -> None:
        searcher = searcher_for(self.view.run_dir)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a random-weight encoder warns; the run said so
            result = searcher.search(text, like=like, top=self.top)
        self.post_message(self.Done(result, hit_rows(self.view, result.hits, self.app.catalog)))

    def on_search_screen_done(self, message: Done) -> None:
        self.result, self.rows, self.marked = message.result, message.rows, set()
        r = message.result
        self.query_one("#search-status", Label).update(
            f"{len(r.hits)} results for {r.query} (on {r.on}) · {r.rows_searched:,} rows · "
            f"{r.backend} · {r.seconds * 1000:.0f} ms"
        )
        self.redraw()

    def worker_failed(self, group: str, error: BaseException | None) -> None:
        self.query_one("#search-status", Label).update(f"search failed: {describe(error)}")

    def redraw(self) -> None:
        table = self.query_one(DataTable)
        cursor = table.cursor_row
        table.clear()
        for r in self.rows:
            h = r.hit
            table.add_row(
                "*" if h.row in self.marked else " ",
                str(h.rank),
                f"{h.score:.3f}",
                h.orig_id,
                decision_text(r),
                ",".join(r.tags) or "-",
                h.question[:80],
                key=str(h.row),
            )
        if self.rows:
            table.move_cursor(row=min(cursor, len(self.rows) - 1))

    @on(Input.Submitted, "#search-input")
    def submitted(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.start(event.value.strip(), None)
            self.query_one(DataTable).focus()

    def action_focus_input(self) -> None:
        self.query_one(Input).focus()

    # ---------------------------------------------------------------- acting on results

    @property
    def current(self) -> HitRow | None:
        return under_cursor(self.query_one(DataTable), self.rows)

    def picked(self) -> list[int]:
        """Marked rows, else the focused one."""
        if self.marked:
            return sorted(self.marked)
        row = self.current
        return [row.hit.row] if row else []

    def action_mark(self) -> None:
        row = self.current
        if row is None:
            return
        self.marked ^= {row.hit.row}
        self.redraw()
        self.query_one(DataTable).action_cursor_down()

    def apply(self, rids: list[int], action: str) -> None:
        self.decide_rows(rids, action)
        self.marked = set()
        self.redraw()

    def shown_rids(self) -> list[int]:
        return [r.hit.row for r in self.rows]

    def show_decisions(self, found: dict[int, tuple[bool, str | None]]) -> None:
        self.rows = [
            replace(r, algo=found[r.hit.row][0], override=found[r.hit.row][1])
            if r.hit.row in found
            else r
            for r in self.rows
        ]
        self.redraw()

    def action_decide(self, action: str) -> None:
        self.apply(self.picked(), action)

    def action_decide_all(self, action: str) -> None:
        rids = [r.hit.row for r in self.rows]
        if not rids:
            return

        def done(yes: bool | None) -> None:
            if yes:
                self.apply(rids, action)
                self.notify(f"{action} {len(rids)} search results")

        self.app.push_screen(ConfirmScreen(f"{action.capitalize()} all {len(rids)} results?"), done)

    def action_more_like(self) -> None:
        row = self.current
        if row is not None:
            self.query_one(Input).value = ""
            self.start(None, row.hit.sample_id)

    def action_tag(self) -> None:
        rids = self.picked()
        if not rids:
            return
        ids = [r.hit.sample_id for r in self.rows if r.hit.row in set(rids)]

        def done(text: str | None) -> None:
            if text:
                self.tag_samples(ids, text.strip())

        self.app.push_screen(PromptScreen(f"Tag {len(ids)} sample(s) with:"), done)

    @work(thread=True, group="search", exit_on_error=False)
    def tag_samples(self, ids: list[int], name: str) -> None:
        from store import tags

        n = tags.tag(self.app.catalog, ids, name, run_id=self.view.run_id)
        rows = hit_rows(self.view, [r.hit for r in self.rows], self.app.catalog)
        self.app.call_from_thread(self.tags_written, rows, f"tagged {n} sample(s) {name!r}")

    def tags_written(self, rows: list[HitRow], text: str) -> None:
        self.rows, self.marked = rows, set()
        self.redraw()
        self.notify(text)

    def action_grid(self) -> None:
        if not self.rows:
            return
        title = f"search: {self.result.query if self.result else ''}"
        self.app.open_grid(self.view, [r.hit.row for r in self.rows], title)

    @on(DataTable.RowSelected, "#search-results")
    def open_detail(self, event: DataTable.RowSelected) -> None:
        if event.cursor_row < len(self.rows):
            self.app.open_detail(self.view, self.rows[event.cursor_row].hit.row)
