"""Browser: a run's groups on the left, its samples on the right (virtual table); filters, sort, overrides."""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import DataTable, Label

from tui.data.run_view import STATES, GroupKey, GroupRow, Query, RunView
from tui.data.workspace_view import WorkspaceState
from tui.screens.base import DecisionApplied, ThresherScreen, WorkspaceChanged
from tui.widgets.dialogs import ConfirmScreen, PromptScreen
from tui.widgets.sample_table import SampleTable
from tui.widgets.tables import KeyFooter, RowTable, under_cursor


def _num(value: float | int | None, digits: int = 3) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


class GroupList(RowTable):
    HELP = (
        "## Groups\n\nOFA clusters (size, kept, mean confidence, core-set size) or CLIPPER subsets "
        "per tau and coresets; the column title names the grouping (v switches it). **enter** shows "
        "only that group's samples; **K / D** keep or drop the whole group and **U** clears your "
        "decisions in it, each after a confirmation that states the count."
    )
    BINDINGS = [
        Binding("k,d,u", "sample_keys", show=False, id="groups.sample_keys"),
    ]

    def action_sample_keys(self) -> None:
        """k/d/u decide one sample: say so and hand them to the table instead of doing nothing."""
        self.screen.query_one(SampleTable).focus()
        self.notify(
            "k / d / u decide the sample under the table's cursor (focus is there now); "
            "K / D / U act on the whole group.",
            severity="warning",
        )


class BrowserScreen(ThresherScreen):
    HELP = "## Browser\n\nLeft: groups of the run. Right: its samples, one line each."
    BINDINGS = [
        Binding(
            "escape", "back", "Back", id="browser.back", tooltip="Clear the filter, else go home"
        ),
        Binding(
            "slash",
            "search",
            "Search",
            id="browser.search",
            tooltip="Filter by question/answer text or id",
        ),
        Binding(
            "f",
            "cycle_state",
            "Decision filter",
            show=False,  # F1 and the palette list it; the footer keeps to 80 columns
            id="browser.state",
            tooltip="all/kept/dropped/overridden",
        ),
        Binding(
            "s",
            "cycle_sort",
            "Sort",
            show=False,
            id="browser.sort",
            tooltip="Sort by the next score (asc, desc)",
        ),
        Binding(
            "g",
            "jump",
            "Jump to id",
            show=False,
            id="browser.jump",
            tooltip="Jump to a sample id (as in your data)",
        ),
        Binding(
            "K",
            "bulk('keep')",
            "Keep group",
            show=False,
            id="browser.bulk_keep",
            tooltip="Keep the whole group",
        ),
        Binding(
            "D",
            "bulk('drop')",
            "Drop group",
            show=False,
            id="browser.bulk_drop",
            tooltip="Drop the whole group",
        ),
        Binding(
            "U",
            "undo_group",
            "Undo group",
            show=False,
            id="browser.undo_group",
            tooltip="Clear your decisions in the focused group (back to the algorithm)",
        ),
        Binding(
            "v",
            "next_grouping",
            "Grouping",
            show=False,
            id="browser.grouping",
            tooltip="Next grouping column (CLIPPER: subsets at tau=1, tau=2)",
        ),
        Binding(
            "x",
            "export",
            "Export",
            show=False,
            id="browser.export",
            tooltip="Export this run's selection",
        ),
        Binding("m", "monitor", "Monitor", show=False, id="browser.monitor"),
        Binding(
            "S", "meaning", "Search", show=False, id="browser.meaning", tooltip="Search by meaning"
        ),
        Binding(
            "L", "more_like", "Like", show=False, id="browser.like", tooltip="More like this sample"
        ),
        Binding(
            "G", "grid", "Grid", show=False, id="browser.grid", tooltip="Thumbnails of these rows"
        ),
    ]

    WORK_LABELS = {"browser-groups": "counting groups", "browser-query": "filter/sort"}

    @dataclass
    class QueryReady(Message):
        query: Query
        n: int

    @dataclass
    class GroupsReady(Message):
        groups: list[GroupRow]
        totals: tuple[int, int, int]

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, BrowserScreen.GroupsReady)

    @dataclass
    class Synced(Message):
        """The in-memory overrides were re-read from the log (another process decided), or
        not yet (`done` False: the user's own decisions were in flight; try again shortly)."""

        done: bool

    def __init__(self, view: RunView) -> None:
        super().__init__()
        self.view = view
        self.grouping = view.group_columns[0] if view.group_columns else None
        self._grouping_shown: str | None = "?"  # the grouping the group list's columns are for
        self._sorts_ready = False
        self.groups: list[GroupRow] = []
        self.totals: tuple[int, int, int] | None = None
        self.query_state = Query()
        self._shown = False

    def compose(self) -> ComposeResult:
        yield Label(self._title(), id="run-header")
        with Horizontal(id="browser"):
            yield GroupList(id="groups")
            with Vertical(id="samples-pane"):
                yield Label("", id="query-line")
                yield Label("", id="table-header")
                yield SampleTable(self.view, id="samples")
        yield KeyFooter()

    def _title(self, totals: tuple[int, int, int] | None = None) -> str:
        v = self.view
        head = f"{v.run_id} · {v.meta.get('method', '?')} · {v.meta.get('dataset', '')}"
        if self.grouping:
            head += f" · by {v.group_labels.get(self.grouping, self.grouping)}"
        totals = totals or self.totals
        if totals:
            n, kept, overrides = totals
            head += f" · {n} samples · kept {kept} · overrides {overrides}"
        if v.verdicts:  # so a user sees when the judge is guessing (undecided)
            head += f" · {v.verdicts}"
        pending = self.app.writer.pending
        return head + (f" · saving {pending}…" if pending else " · saved")

    def on_decision_saved(self, message) -> None:
        self.query_one("#run-header", Label).update(self._title())

    def on_mount(self) -> None:
        self.query_one(SampleTable).focus()
        self._show_query()
        self.refresh_groups()

    def _group_columns(self) -> None:
        """Column titles say which grouping is shown (Cluster, Subset tau=1, ...); narrow
        terminals get the three columns that matter (group, size, kept), never a cut number."""
        table = self.query_one(GroupList)
        table.clear(columns=True)
        title = self.view.group_labels.get(self.grouping or "", "group")
        wide = self.app.size.width >= 120
        extra = []
        if wide and "confidence" in self.view.columns:
            extra.append("conf")
        if wide and self.view.core_column:
            extra.append("core")
        table.add_columns(title, "size", "kept", *extra)
        self._grouping_shown = self.grouping

    def on_screen_resume(self) -> None:
        if not self._shown:  # the first show: on_mount started the reads, nothing is stale yet
            self._shown = True
            return
        # decisions made on the detail screen (or another run's screens) change rows we cached
        self.query_one(SampleTable).invalidate()
        self.refresh_groups()
        self._maybe_sync(self.app.state)

    def on_workspace_changed(self, message: WorkspaceChanged) -> None:
        self._maybe_sync(message.state)

    def _maybe_sync(self, state: WorkspaceState) -> None:
        if not self.view.loaded:
            return  # the first load reads the log anyway
        seq = state.decision_seq.get(self.view.run_id, 0)
        if seq != self.view.last_seq:
            self.sync_overrides()

    @work(thread=True, exclusive=True, group="browser-sync", exit_on_error=False)
    def sync_overrides(self) -> None:
        self.post_message(
            self.Synced(self.view.sync_overrides(lambda: self.app.writer.pending > 0))
        )

    def on_browser_screen_synced(self, message: Synced) -> None:
        if not message.done:
            self.set_timer(0.3, lambda: self._maybe_sync(self.app.state))
            return
        self.query_one(SampleTable).invalidate()
        self.refresh_groups()

    @on(SampleTable.HeaderChanged)
    def show_header(self, event: SampleTable.HeaderChanged) -> None:
        self.query_one("#table-header", Label).update(event.text)

    # ---------------------------------------------------------------- workers

    @work(thread=True, exclusive=True, group="browser-groups", exit_on_error=False)
    def refresh_groups(self) -> None:
        self.post_message(self.GroupsReady(self.view.groups(self.grouping), self.view.totals()))
        if not self._sorts_ready:  # once: every score's orderings, so `s` answers at once
            self._sorts_ready = True
            self.view.prepare_sorts()

    @work(thread=True, exclusive=True, group="browser-query", exit_on_error=False)
    def run_query(self, query: Query) -> None:
        self.post_message(self.QueryReady(query, self.view.set_query(query)))
        self.view.materialize()  # a sort shows at once; its pages get faster after this

    def worker_failed(self, group: str, error: BaseException | None) -> None:
        if group == "browser-query":
            self._show_query()  # the rows on screen are still the previous, valid view

    def on_browser_screen_groups_ready(self, message: GroupsReady) -> None:
        if not self.groups:  # the first answer: the view's tables exist now, pages come from them
            self.query_one(SampleTable).invalidate()
            self.query_one(SampleTable).post_header()  # the id column's width is known now
        self.groups = message.groups
        if self._grouping_shown != self.grouping:
            self._group_columns()
        table = self.query_one(GroupList)
        row = table.cursor_row
        table.clear()
        n_extra = len(table.columns) - 3
        for g in message.groups:
            label = g.key.label() if g.key.kind != "group" else _num(g.key.value)
            if g.key.kind == "group" and g.key.value is None:
                label = "(none)"  # OFA: samples left out of clustering
            cells = [label, g.size, g.kept]
            extras = []
            if "confidence" in self.view.columns:
                extras.append(_num(g.mean_confidence))
            if self.view.core_column:
                extras.append(_num(g.core_set))
            table.add_row(*cells, *extras[:n_extra])
        if message.groups:
            table.move_cursor(row=min(row, len(message.groups) - 1))
        self.totals = message.totals
        self.query_one("#run-header", Label).update(self._title())

    def on_browser_screen_query_ready(self, message: QueryReady) -> None:
        self.query_state = message.query
        self.query_one(SampleTable).reset()
        self._show_query()

    def _show_query(self) -> None:
        qy = self.query_state
        parts = [f"{self.view.n_rows} shown"]
        if qy.group:
            parts.append(qy.group.label())
        if qy.text:
            parts.append(f"text '{qy.text}'")
        if qy.state != "all":
            parts.append(qy.state)
        if qy.sort:
            parts.append(f"sort {qy.sort} {'desc' if qy.descending else 'asc'}")
        self.query_one("#query-line", Label).update(" · ".join(parts))

    def set_query(self, **changes) -> None:
        """Start the (worker) query; the old rows stay on screen until the new order is ready."""
        self.query_one("#query-line", Label).update(
            "working… (the rows below are the previous view)"
        )
        self.run_query(replace(self.query_state, **changes))

    # ---------------------------------------------------------------- decisions

    @on(SampleTable.Decide)
    def decide(self, event: SampleTable.Decide) -> None:
        self.apply(event.rids, event.action, "sample" if len(event.rids) == 1 else "list")

    def apply(self, rids, action: str, scope: str) -> None:
        """In memory first, off the UI thread and in key order; then the log (the writer)."""
        self.app.decide(self.view, rids, action, scope)

    def on_decision_applied(self, message: DecisionApplied) -> None:
        if message.run_id == self.view.run_id:
            self.query_one(SampleTable).invalidate()
            self.refresh_groups()

    @property
    def focused_group(self) -> GroupRow | None:
        return under_cursor(self.query_one(GroupList), self.groups)

    def palette_commands(self) -> list[tuple[str, object, str]]:
        """Screen actions the command palette offers while this screen is on top."""
        group = self.focused_group
        where = group.key.label() if group else "the focused group"
        return [
            ("group: undo my decisions in " + where, self.action_undo_group, "U, asks first"),
            ("group: keep all of " + where, partial(self.action_bulk, "keep"), "K, asks first"),
            ("group: drop all of " + where, partial(self.action_bulk, "drop"), "D, asks first"),
            ("browse: next grouping", self.action_next_grouping, "v (CLIPPER tau=1, tau=2)"),
            ("browse: jump to a sample id", self.action_jump, "g"),
        ]

    def _members(self, key: GroupKey, overridden: bool = False):
        """The group's rows, looked up on the applier's thread (no DuckDB on the UI thread)."""
        return lambda: self.view.members(key, overridden)["rid"].to_pylist()

    def action_undo_group(self) -> None:
        group = self.focused_group
        if group is None:
            return
        where = "this run" if group.key.kind == "all" else group.key.label()
        if not group.overrides:
            self.notify(f"No decisions of yours in {where}.", severity="warning")
            return
        question = (
            f"Clear your {group.overrides} decisions in {where}? "
            "Those samples go back to the algorithm's choice."
        )

        def done(yes: bool | None) -> None:
            if yes:
                scope = "list" if group.key.kind == "all" else group.key.scope()
                self.apply(self._members(group.key, overridden=True), "clear", scope)
                self.notify(f"clearing {group.overrides} decisions in {where}")

        self.app.push_screen(ConfirmScreen(question), done)

    def action_bulk(self, action: str) -> None:
        group = self.focused_group
        if group is None:
            return
        if group.key.kind == "all":
            self.notify("Pick a cluster or subset in the group list first.", severity="warning")
            return
        question = f"{action.capitalize()} all {group.size} samples of {group.key.label()}?"

        def done(yes: bool | None) -> None:
            if yes:
                self.apply(self._members(group.key), action, group.key.scope())
                self.notify(f"{action} {group.size} samples of {group.key.label()}")

        self.app.push_screen(ConfirmScreen(question), done)

    # ---------------------------------------------------------------- navigation

    @on(DataTable.RowSelected, "#groups")
    def pick_group(self, event: DataTable.RowSelected) -> None:
        if event.cursor_row < len(self.groups):
            key = self.groups[event.cursor_row].key
            self.set_query(group=None if key.kind == "all" else key)
            self.query_one(SampleTable).focus()

    @on(SampleTable.Open)
    def open_detail(self, event: SampleTable.Open) -> None:
        self.app.open_detail(self.view, event.rid)

    def action_back(self) -> None:
        if self.query_state != Query(
            sort=self.query_state.sort, descending=self.query_state.descending
        ):
            self.set_query(text="", state="all", group=None)
        else:
            self.app.pop_screen()

    def action_search(self) -> None:
        def done(text: str | None) -> None:
            if text is not None:
                self.set_query(text=text.strip())

        self.app.push_screen(
            PromptScreen("Filter by text (question, answer) or sample id", self.query_state.text),
            done,
        )

    def action_cycle_state(self) -> None:
        nxt = STATES[(STATES.index(self.query_state.state) + 1) % len(STATES)]
        self.set_query(state=nxt)

    def action_cycle_sort(self) -> None:
        options: list[tuple[str | None, bool]] = [(None, False)]
        for s in self.view.scores:
            options += [(s, False), (s, True)]
        current = (self.query_state.sort, self.query_state.descending)
        nxt = (
            options[(options.index(current) + 1) % len(options)]
            if current in options
            else options[0]
        )
        self.set_query(sort=nxt[0], descending=nxt[1])

    def action_next_grouping(self) -> None:
        cols = self.view.group_columns
        if len(cols) > 1 and self.grouping in cols:
            self.grouping = cols[(cols.index(self.grouping) + 1) % len(cols)]
            self.refresh_groups()

    def action_jump(self) -> None:
        def done(text: str | None) -> None:
            if not text:
                return
            self.jump_to(text.strip())

        self.app.push_screen(
            PromptScreen("Jump to sample id (the id column, as in your data)"), done
        )

    @work(thread=True, exclusive=True, group="browser-jump", exit_on_error=False)
    def jump_to(self, text: str) -> None:
        sample_id = self.view.resolve_id(text)
        if sample_id is None:
            self.app.call_from_thread(
                self.notify, f"run {self.view.run_id} has no sample {text!r}.", severity="error"
            )
            return
        pos = self.view.position_of(sample_id)
        if pos is None:
            self.app.call_from_thread(
                self.notify,
                f"sample {text} is not in this view (clear the filter with Esc).",
                severity="warning",
            )
            return
        self.app.call_from_thread(self.query_one(SampleTable).move_to, pos)

    def action_export(self) -> None:
        self.app.open_export(self.view.run_id)

    def action_monitor(self) -> None:
        self.app.open_monitor(self.view.run_id)

    def action_meaning(self) -> None:
        self.app.open_search(self.view.run_id)

    def action_more_like(self) -> None:
        row = self.query_one(SampleTable).current
        if row is not None:
            self.app.open_search(self.view.run_id, like=row.sample_id)

    def action_grid(self) -> None:
        self.open_grid()

    @work(thread=True, exclusive=True, group="browser-grid", exit_on_error=False)
    def open_grid(self) -> None:
        """The rids of this view (up to 20K rows read from DuckDB: off the UI thread), then the grid."""
        from tui.data.grid import GRID_LIMIT, shown_rids

        rids = shown_rids(self.view)
        if len(rids) == GRID_LIMIT:
            self.app.call_from_thread(
                self.notify, f"grid: the first {GRID_LIMIT:,} rows of this view"
            )
        self.app.call_from_thread(self.app.open_grid, self.view, rids, f"{self.view.run_id}: grid")
