"""Run monitor: a bar per stage, GPU meters with a short history, the log tail; follows progress.jsonl from a worker."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Group
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import Label, Log, Static
from textual.worker import get_current_worker

from store.runs import resolve_run_dir
from tui.data.progress import ProgressFollower, RunSnapshot
from tui.screens.base import ThresherScreen
from tui.widgets import keys
from tui.widgets.tables import KeyFooter
from tui.worker_errors import describe

POLL_S = 0.5
SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float], lo: float = 0.0, hi: float = 100.0, width: int = 30) -> str:
    vals = values[-width:]
    if not vals:
        return ""
    span = (hi - lo) or 1.0
    return "".join(
        SPARK[min(int((v - lo) / span * (len(SPARK) - 1)), len(SPARK) - 1)] for v in vals
    )


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    return (
        f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        if seconds >= 3600
        else f"{seconds // 60}:{seconds % 60:02d}"
    )


def stage_table(snap: RunSnapshot) -> Table:
    table = Table.grid(padding=(0, 1), expand=True)
    for col in ("stage", "bar", "count", "rate", "eta"):
        table.add_column(col, ratio=3 if col == "bar" else None, no_wrap=True)
    if not snap.stages:
        table.add_row("(no progress events yet)", "", "", "", "")
    for s in snap.stages:
        total = s.total or 0
        done_txt = f"{s.done}/{total}" if total else str(s.done)
        rate = f"{s.rate:.1f} {s.unit}/s" if s.rate else "-"
        eta = "done" if s.finished else _duration(s.eta_s)
        bar = ProgressBar(total=float(total or 1), completed=float(s.done if total else 0))
        table.add_row(s.stage, bar, done_txt, rate, eta)
    return table


def gpu_panel(snap: RunSnapshot) -> Group | Text:
    if not snap.gpus:
        return Text("no GPU telemetry")
    lines = []
    for g in snap.gpus:
        util = list(g.util)
        mem = [m * 100 for m in g.mem]
        lines.append(
            Text(
                f"GPU{g.index} {g.name[:18]:18} util {util[-1] if util else 0:3.0f}% {sparkline(util)}  "
                f"mem {g.mem_used / 2**30:5.1f}/{g.mem_total / 2**30:.0f} GiB {sparkline(mem)}"
            )
        )
    return Group(*lines)


class MonitorScreen(ThresherScreen):
    HELP = (
        "## Run monitor\n\nFollows the run's progress.jsonl (any process may write it; the run may "
        "have started before the app). One bar per stage with done/total, rate and ETA; GPU "
        "utilisation and memory with a short history; the tail of job.log."
    )
    BINDINGS = [
        keys.back("monitor"),
        Binding(
            "b", "browse", "Browse", id="monitor.browse", tooltip="Browse the result (when done)"
        ),
        Binding(
            "C", "cancel_run", "Cancel run", id="monitor.cancel", tooltip="Ask the job to stop"
        ),
        Binding("r", "retry", "Follow", show=False, id="monitor.retry", tooltip="Follow again"),
    ]

    WORK_LABELS = {"monitor": "following the run"}

    @dataclass
    class Updated(Message):
        snapshot: RunSnapshot

        def can_replace(self, message: Message) -> bool:  # only the newest snapshot matters
            return isinstance(message, MonitorScreen.Updated)

    def __init__(self, runs_dir: Path, run_id: str) -> None:
        super().__init__()
        self.run_dir = resolve_run_dir(runs_dir, run_id)
        self.run_id = run_id
        self.snapshot: RunSnapshot | None = None

    def compose(self) -> ComposeResult:
        yield Label(f"{self.run_id} · waiting for events", id="monitor-title")
        yield Static("", id="stages")
        yield Static("", id="gpus")
        yield Log(id="log", max_lines=500)
        yield KeyFooter()

    def on_screen_resume(self) -> None:
        self.follow()  # (re)start following; the follower re-reads from the start, which is cheap

    def on_screen_suspend(self) -> None:
        # a hidden monitor polls nothing (and lets tests wait for "all workers done")
        self.workers.cancel_group(self, "monitor")

    @work(thread=True, exclusive=True, group="monitor", exit_on_error=False)
    def follow(self) -> None:
        """Poll about twice a second; post only when something changed."""
        follower = ProgressFollower(self.run_dir)
        worker = get_current_worker()
        first = True
        while not worker.is_cancelled:
            snap, changed = follower.poll()
            if changed or first:
                self.post_message(self.Updated(snap))
                first = False
            time.sleep(POLL_S)

    def worker_failed(self, group: str, error: BaseException | None) -> None:
        title = self.query_one("#monitor-title", Label)
        title.update(Text(f"{self.run_id} · stopped following (r retries): {describe(error)}"))

    def action_retry(self) -> None:
        self.follow()

    def on_monitor_screen_updated(self, message: Updated) -> None:
        snap = message.snapshot
        self.snapshot = snap
        self.query_one("#monitor-title", Label).update(
            f"{self.run_id} · {snap.status} · {snap.events_seen} events"
        )
        self.query_one("#stages", Static).update(stage_table(snap))
        self.query_one("#gpus", Static).update(gpu_panel(snap))
        log = self.query_one(Log)
        log.clear()
        log.write_lines(snap.log)

    def action_browse(self) -> None:
        self.app.open_browser(self.run_id)

    def action_cancel_run(self) -> None:
        from store.runs import request_cancel

        pid = request_cancel(self.run_dir)
        self.notify(f"cancel requested{f' (PID {pid})' if pid else ''}")
