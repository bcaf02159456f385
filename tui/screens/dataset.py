"""Dataset view: a dataset's samples before any run, with flags, task, source and tags; filters,
counts per flag/task/source/tag, a thumbnail of the focused sample, and tagging."""

from __future__ import annotations

from dataclasses import dataclass, replace

from rich.console import Group
from rich.table import Table
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.strip import Strip
from textual.widgets import DataTable, Footer, Label, Static

from tui.data.dataset_view import CLEAN, Counts, DatasetView, Filters, SampleLine
from tui.screens.base import ThresherScreen
from tui.widgets import keys
from tui.widgets.dialogs import PromptScreen
from tui.widgets.thumbs import ThumbView, thumbnail
from tui.worker_errors import describe

PAGE = 200  # rows a page; [ and ] move between pages


def render_counts(c: Counts) -> Group:
    parts = []
    for title, data in (
        ("flags", c.flags),
        ("tasks", c.tasks),
        ("sources", c.sources),
        ("tags", c.tags),
    ):
        table = Table(
            title=title, show_header=False, box=None, padding=(0, 1), title_justify="left"
        )
        table.add_column(justify="right")
        table.add_column()
        for k, n in list(data.items())[:8]:
            table.add_row(f"{n:,}", k)
        if not data:
            table.add_row("", "none")
        parts.append(table)
    return Group(*parts)


def _cycle(options: list[str], current: str | None) -> str | None:
    """The next value of a filter: None (all), then each option in turn, then None again."""
    seq: list[str | None] = [None, *options]
    return seq[(seq.index(current) + 1) % len(seq)] if current in seq else None


class DatasetScreen(ThresherScreen):
    CSS_PATH = "views.tcss"
    HELP = (
        "## Dataset\n\nEvery sample of a dataset with its flags, task, source (first image "
        "folder) and tags; on the right the counts and the focused sample's image. Filters: "
        "**f** flag (each flag, then (clean)), **t** task, **s** source, **T** tag, **/** text "
        "(question, answer or id); **esc** clears them, then goes back. **space** marks, **a** "
        "tags the marked (or focused) samples, **n** adds a note; **[ / ]** previous / next "
        f"{PAGE} rows."
    )
    BINDINGS = [
        Binding("escape", "back", "Back", id="dataset.back"),
        Binding("f", "cycle('flag')", "Flag", id="dataset.flag"),
        Binding("t", "cycle('task')", "Task", id="dataset.task"),
        Binding("s", "cycle('source')", "Source", id="dataset.source"),
        Binding("T", "cycle('tag')", "Tag filter", id="dataset.tagfilter"),
        Binding("slash", "text", "Text", id="dataset.text"),
        keys.mark("dataset"),
        Binding("a", "tag", "Add tag", id="dataset.tag"),
        Binding("n", "note", "Note", id="dataset.note"),
        Binding("left_square_bracket", "page(-1)", "Prev", show=False, id="dataset.prev"),
        Binding("right_square_bracket", "page(1)", "Next", show=False, id="dataset.next"),
    ]
    WORK_LABELS = {"dataset": "dataset view", "preview": "image preview", "tag": "tagging"}

    @dataclass
    class Loaded(Message):
        filters: Filters
        start: int
        counts: Counts
        lines: list[SampleLine]

    @dataclass
    class Preview(Message):
        sample_id: int
        image: list[Strip]
        caption: str

    def __init__(self, name: str) -> None:
        super().__init__()
        self.dataset_name = name
        self.source: DatasetView | None = None
        self.filters = Filters()
        self.start = 0
        self.lines: list[SampleLine] = []
        self.counts: Counts | None = None
        self.marked: set[int] = set()

    def compose(self) -> ComposeResult:
        yield Label(f"Dataset {self.dataset_name}", id="run-header")
        yield Label("loading…", id="dataset-status", classes="hint")
        with Horizontal(id="dataset-body"):
            table: DataTable = DataTable(
                id="dataset-samples", cursor_type="row", zebra_stripes=True
            )
            table.add_columns(" ", "id", "task", "source", "flags", "tags", "question")
            yield table
            with Vertical(id="dataset-side"):
                yield ThumbView(id="dataset-preview")
                yield Static("", id="dataset-counts")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(DataTable).focus()
        self.reload()

    def reload(self) -> None:
        self.query_one("#dataset-status", Label).update(f"loading {self.filters.describe()}…")
        self.load(self.filters, self.start)

    @work(thread=True, exclusive=True, group="dataset", exit_on_error=False)
    def load(self, filters: Filters, start: int) -> None:
        if self.source is None:
            self.source = DatasetView(self.app.catalog, self.dataset_name)
        counts = self.source.counts(filters)
        self.post_message(
            self.Loaded(filters, start, counts, self.source.page(filters, start, PAGE))
        )

    def on_dataset_screen_loaded(self, message: Loaded) -> None:
        self.counts, self.lines = message.counts, message.lines
        self.redraw()
        self.query_one("#dataset-counts", Static).update(render_counts(message.counts))
        c = message.counts
        end = message.start + len(message.lines)
        self.query_one("#dataset-status", Label).update(
            f"{message.filters.describe()}: {c.matching:,} of {c.total:,} samples · rows "
            f"{message.start + 1 if message.lines else 0}-{end}"
        )
        self.show_preview()

    def worker_failed(self, group: str, error: BaseException | None) -> None:
        if group == "dataset":
            self.query_one("#dataset-status", Label).update(f"could not load: {describe(error)}")

    def redraw(self) -> None:
        table = self.query_one(DataTable)
        cursor = table.cursor_row
        table.clear()
        for line in self.lines:
            table.add_row(
                "*" if line.sample_id in self.marked else " ",
                line.orig_id,
                line.task or "-",
                line.source,
                ",".join(line.flags) or "-",
                ",".join(line.tags) or "-",
                line.question[:70],
                key=str(line.sample_id),
            )
        if self.lines:
            table.move_cursor(row=min(cursor, len(self.lines) - 1))

    # ---------------------------------------------------------------- preview

    @property
    def current(self) -> SampleLine | None:
        row = self.query_one(DataTable).cursor_row
        return self.lines[row] if 0 <= row < len(self.lines) else None

    @on(DataTable.RowHighlighted, "#dataset-samples")
    def highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_preview()

    def show_preview(self) -> None:
        line = self.current
        if line is None:
            return
        if self.app.image_mode != "none":
            self.render_preview(line.sample_id, line.image, line.orig_id)
        else:
            self.query_one(ThumbView).show([], f"{line.orig_id}: {line.image or 'no image'}")

    @work(thread=True, exclusive=True, group="preview", exit_on_error=False)
    def render_preview(self, sample_id: int, image: str | None, caption: str) -> None:
        self.post_message(self.Preview(sample_id, thumbnail(image, 44, 10), caption))

    def on_dataset_screen_preview(self, message: Preview) -> None:
        line = self.current
        if line is not None and line.sample_id == message.sample_id:
            self.query_one(ThumbView).show(message.image, message.caption)

    # ---------------------------------------------------------------- filters

    def set_filters(self, filters: Filters) -> None:
        self.filters, self.start, self.marked = filters, 0, set()
        self.reload()

    def action_cycle(self, what: str) -> None:
        c = self.counts
        if c is None:
            return
        options = {
            "flag": [*c.flags, CLEAN],
            "task": [t for t in c.tasks if t != "(none)"],
            "source": list(c.sources),
            "tag": list(c.tags),
        }[what]
        if not options:
            self.notify(f"this dataset has no {what}s to filter by", severity="warning")
            return
        self.set_filters(
            replace(self.filters, **{what: _cycle(options, getattr(self.filters, what))})
        )

    def action_text(self) -> None:
        def done(text: str | None) -> None:
            if text is not None:
                self.set_filters(replace(self.filters, text=text.strip() or None))

        self.app.push_screen(
            PromptScreen("Filter by text (question, answer, id):", self.filters.text or ""), done
        )

    def action_back(self) -> None:
        if self.filters != Filters():
            self.set_filters(Filters())
        else:
            self.app.pop_screen()

    def action_page(self, step: int) -> None:
        total = self.counts.matching if self.counts else 0
        start = self.start + step * PAGE
        if 0 <= start < max(total, 1):
            self.start = start
            self.reload()

    # ---------------------------------------------------------------- marks, tags, notes

    def action_mark(self) -> None:
        line = self.current
        if line is not None:
            self.marked ^= {line.sample_id}
            self.redraw()
            self.query_one(DataTable).action_cursor_down()

    def picked(self) -> list[int]:
        if self.marked:
            return sorted(self.marked)
        line = self.current
        return [line.sample_id] if line else []

    def action_tag(self) -> None:
        ids = self.picked()
        if ids:
            self.app.push_screen(
                PromptScreen(f"Tag {len(ids)} sample(s) with (prefix - to remove):"),
                lambda text: self.write_tags(ids, text.strip(), None) if text else None,
            )

    def action_note(self) -> None:
        ids = self.picked()
        if ids:
            self.app.push_screen(
                PromptScreen(f"Note on {len(ids)} sample(s):"),
                lambda text: self.write_tags(ids, None, text.strip()) if text else None,
            )

    @work(thread=True, group="tag", exit_on_error=False)
    def write_tags(self, ids: list[int], tag: str | None, note: str | None) -> None:
        from store import tags

        if tag:
            remove = tag.startswith("-")
            n = tags.tag(self.app.catalog, ids, tag.lstrip("-"), remove=remove)
            self.app.call_from_thread(
                self.notify,
                f"{'untagged' if remove else 'tagged'} {n} sample(s) {tag.lstrip('-')!r}",
            )
        if note:
            tags.add_note(self.app.catalog, ids, note)
            self.app.call_from_thread(self.notify, f"noted {len(ids)} sample(s)")
        self.app.call_from_thread(self.reload)
