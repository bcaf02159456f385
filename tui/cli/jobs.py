"""CLI for jobs: `runs`, `attach`, `cancel`, `resume`, and the helpers every method command uses.

A method command (e.g. `thresher run ofa`) decorates itself with `job_options` and calls
`start_run(...)`: `selection.jobs.start_run` creates the run folder and runs it here (Rich progress
bars) or detaches it into its own process session; this module prints the `Launched` it returns.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from store import runs
from store.catalog import Catalog
from store.errors import ThresherError
from store.workspace import Workspace
from tui.cli.output import json_option, plain, print_json

if TYPE_CHECKING:
    from selection.jobs.launcher import Launched


def job_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Adds --detach, --seed, --name (the command receives `detach`, `seed`, `name`) and the Ray
    options, which `launch` reads from the click context so commands need not pass them on."""

    @click.option(
        "--detach",
        "-d",
        is_flag=True,
        help="Run in the background (new process session, log in the run folder); "
        "watch with `thresher attach RUN`.",
    )
    @click.option("--seed", type=int, default=0, show_default=True, help="Run seed.")
    @click.option(
        "--name",
        default=None,
        metavar="RUN",
        help="Run id. Default: <method>-<dataset>-<hash of the settings>, so rerunning the same "
        "command resumes the same run.",
    )
    @ray_options
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    return wrapper


def ray_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--ray-workers N (0 = no Ray), --ray-gpus G, --ray-address ADDR; stored for `launch`."""

    @click.option(
        "--ray-workers",
        type=click.IntRange(0),
        default=0,
        show_default=True,
        help="Run stages with several shards on N Ray actors (pip install 'thresher[ray]'); "
        "0 runs everything in the job process.",
    )
    @click.option(
        "--ray-gpus",
        type=click.FloatRange(0),
        default=0.0,
        show_default=True,
        help="GPUs per Ray actor (1 for VLM inference or CLIP encoding on a GPU box).",
    )
    @click.option(
        "--ray-address",
        default=None,
        metavar="ADDR",
        help="Join a running Ray cluster ('auto', ray://host:10001); default: a local Ray.",
    )
    @functools.wraps(fn)
    def wrapper(*args: Any, ray_workers: int, ray_gpus: float, ray_address: str | None, **kw: Any):
        if not ray_workers and (ray_address or ray_gpus):
            raise ThresherError("--ray-address and --ray-gpus need --ray-workers N")
        from selection.jobs import RayOptions

        options = RayOptions.from_workers(ray_workers, ray_gpus, ray_address)
        if options is not None:
            click.get_current_context().meta[_RAY_KEY] = options
        return fn(*args, **kw)

    return wrapper


_RAY_KEY = "thresher.ray"


def _ray_from_context() -> Any:
    ctx = click.get_current_context(silent=True)
    return ctx.meta.get(_RAY_KEY) if ctx is not None else None


def start_run(
    workspace: Workspace, method: str, dataset: str, config: Any, detach: bool, **kw: Any
) -> str:
    """`selection.jobs.start_run` (keywords: seed, name, sample_ids) with Rich bars and the
    command line's --ray-* options; prints what happened and returns the run id."""
    from selection.jobs import start_run as start

    catalog = Catalog.open(workspace)
    return _run_and_say(
        lambda **opts: start(catalog, method, dataset, config, **kw, **opts), detach
    ).run_id


def launch(catalog: Catalog, run_dir: Path, detach: bool) -> Launched:
    """Start or resume an existing run folder from the command line; prints what happened."""
    from selection.jobs import launch as launch_run

    return _run_and_say(lambda **kw: launch_run(catalog, run_dir, **kw), detach)


def _run_and_say(go: Callable[..., Launched], detach: bool) -> Launched:
    """Run `go` (a selection.jobs launch) with bars that appear only when it runs here."""
    import contextlib

    bars = StageBars()
    started: list[Launched] = []

    def on_start(launched: Launched) -> None:
        started.append(launched)
        _say_resuming(launched)
        stack.enter_context(bars)

    with contextlib.ExitStack() as stack:
        try:
            launched = go(detach=detach, ray=_ray_from_context(), on_event=bars.update,
                          on_start=on_start)  # fmt: skip
        except KeyboardInterrupt:
            stack.close()
            run = started[0].run_id if started else "RUN"
            click.echo(f"Stopped; `thresher resume {run}` continues where it left off.", err=True)
            raise
    if launched.detached:
        _say_resuming(launched)
    click.echo(describe(launched))
    return launched


def _say_resuming(launched: Launched) -> None:
    if launched.resumed:
        click.echo(
            f"Resuming run {launched.run_id} ({launched.previous}); finished shards are kept."
        )


def describe(launched: Launched) -> str:
    """One line (two for a detached start) saying what a launch did, for people."""
    run_id = launched.run_id
    if launched.already_done:
        return f"Run {run_id} is already done; `thresher runs` shows it."
    if launched.detached:
        return (
            f"Started run {run_id} in the background (PID {launched.pid}, log "
            f"{launched.run_dir / runs.LOG}).\n"
            f"Watch it: thresher attach {run_id}    Stop it: thresher cancel {run_id}"
        )
    if launched.status == "cancelled":
        return f"Run {run_id} cancelled; `thresher resume {run_id}` continues it."
    summary = runs.result_summary(launched.run_dir, runs.read_run_json(launched.run_dir))
    selected = summary.get("selected") or {}
    extra = ", ".join(f"{k}: {v}/{summary.get('rows')}" for k, v in selected.items())
    return f"Run {run_id} done{' (' + extra + ')' if extra else ''}."


# ---------------------------------------------------------------- Rich views


def _fmt_rate(sp: runs.StageProgress) -> str:
    return f"{sp.rate:,.1f} {sp.unit}/s" if sp.rate else ""


def _fmt_eta(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(seconds)
    return f"ETA {seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class StageBars:
    """Foreground progress: one Rich bar per stage, fed by the runner's events."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, Progress, TextColumn

        self.progress = Progress(
            TextColumn("[bold]{task.description:<12}"),
            BarColumn(),
            TextColumn("{task.completed:,.0f}/{task.total:,.0f} {task.fields[unit]}"),
            TextColumn("{task.fields[rate]}"),
            TextColumn("{task.fields[eta]}"),
        )
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> StageBars:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)

    def update(self, event: dict[str, Any]) -> None:
        stage = event.get("stage")
        if not stage or event.get("done") is None:
            return
        sp = runs.StageProgress(stage)
        runs.fold_events([event], {stage: sp})
        fields = {"unit": sp.unit, "rate": _fmt_rate(sp), "eta": _fmt_eta(sp.eta_s)}
        if stage not in self.tasks:
            self.tasks[stage] = self.progress.add_task(stage, total=sp.total, **fields)
        self.progress.update(self.tasks[stage], completed=sp.done, total=sp.total, **fields)


def runs_table(
    found: list[runs.RunInfo],
    now: float,
    summaries: dict[str, dict[str, Any]] | None = None,
    effective: dict[str, int] | None = None,
) -> Any:
    """The `thresher runs` table; `summaries` (the catalog's, by run id) saves re-reading results."""
    from datetime import datetime, timezone

    from rich.markup import escape
    from rich.table import Table

    colour = {"done": "green", "failed": "red", "running": "cyan", runs.INTERRUPTED: "yellow"}
    table = Table(title="Runs", header_style="bold")
    for col in ("run", "method", "dataset", "status", "progress", "selected", "age"):
        table.add_column(
            col, justify="right" if col in ("selected", "age") else "left", no_wrap=col == "run"
        )
    for run in found:
        cur = run.current_stage
        progress = ""
        if cur is not None and run.state != "done":
            total = f"/{cur.total:,}" if cur.total is not None else ""
            progress = f"{cur.stage} {cur.done:,}{total}"
        if run.state == "failed" and run.status.get("error"):
            progress += f" [red]{escape(run.status['error'][:60])}[/]"
        if run.state == "done":
            progress = runs.verdict_line(runs.judge_verdicts(run.path, run.meta).get("zeroshot"))
        selected = ""
        if run.state == "done":
            summary = (summaries or {}).get(run.run_id) or runs.result_summary(run.path, run.meta)
            default = (run.meta.get("outputs") or {}).get("default_selection")
            if default in summary.get("selected", {}):
                # with every override (what an export writes, what the TUI shows)
                kept = (effective or {}).get(run.run_id, summary["selected"][default])
                selected = f"{kept:,}/{summary['rows']:,}"
        try:
            created = datetime.fromisoformat(run.meta["created_at"]).replace(tzinfo=timezone.utc)
            age = _fmt_age(now - created.timestamp())
        except (KeyError, ValueError):
            age = "?"
        state = run.state
        table.add_row(
            run.run_id,
            run.meta.get("method", "?"),
            run.meta.get("dataset", "?"),
            f"[{colour.get(state, 'white')}]{state}[/]",
            progress,
            selected,
            age,
        )
    return table


def _fmt_age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _log_tail(run_dir: Path, lines: int = 6) -> list[str]:
    try:
        with open(run_dir / runs.LOG, "rb") as fh:
            fh.seek(0, 2)
            fh.seek(max(0, fh.tell() - 4096))
            text = fh.read().decode(errors="replace")
    except FileNotFoundError:
        return []
    return text.splitlines()[-lines:]


def attach_view(run_dir: Path, info: dict[str, Any], stages: dict[str, runs.StageProgress]) -> Any:
    from rich.console import Group
    from rich.panel import Panel
    from rich.progress_bar import ProgressBar
    from rich.table import Table

    grid = Table.grid(padding=(0, 1))
    for _ in range(5):
        grid.add_column()
    for sp in stages.values():
        total = sp.total or 0
        grid.add_row(
            f"[bold]{sp.stage}",
            ProgressBar(total=total or None, completed=sp.done, width=40),
            f"{sp.done:,}/{total:,} {sp.unit}",
            _fmt_rate(sp),
            "done" if sp.finished else _fmt_eta(sp.eta_s),
        )
    parts: list[Any] = [grid]
    for gpu in info.get("gpu") or []:
        mem = gpu["mem_used"] / max(gpu["mem_total"], 1)
        power = f"{gpu['power_w']:.0f} W" if gpu.get("power_w") is not None else ""
        parts.append(
            f"GPU{gpu['index']} {gpu['name']}: util {gpu['util']:3d}%  "
            f"mem {gpu['mem_used'] / 2**30:.1f}/{gpu['mem_total'] / 2**30:.1f} GiB ({mem:.0%})  {power}"
        )
    parts.append(Panel("\n".join(_log_tail(run_dir)) or "(no log yet)", title="job.log"))
    title = f"{run_dir.name}: {info['status']}  (Ctrl-C detaches; the job keeps running)"
    return Panel(Group(*parts), title=title)


def _starting(run_dir: Path) -> bool:
    """A queued run is worth waiting for only while a launched worker may still take its lock."""
    try:
        pid = int((run_dir / runs.PID).read_text())
    except (FileNotFoundError, ValueError):
        return runs.is_locked(run_dir)
    return runs.is_locked(run_dir) or runs.pid_alive(pid)


def attach(run_dir: Path, poll_s: float = 0.5) -> str | None:
    """Live view until the run stops (returns its status) or Ctrl-C (returns None)."""
    from rich.live import Live

    stages: dict[str, runs.StageProgress] = {}
    offset = 0
    info: dict[str, Any] = {}
    try:
        with Live(refresh_per_second=4, transient=False) as live:
            while True:
                events, offset = runs.read_events(run_dir, offset)
                runs.fold_events(events, stages)
                for ev in events:
                    if "gpu" in ev:
                        info["gpu"] = ev["gpu"]
                info["status"] = runs.read_status(run_dir)["status"]
                live.update(attach_view(run_dir, info, stages))
                if info["status"] in runs.FINISHED or info["status"] == runs.INTERRUPTED:
                    return info["status"]
                if info["status"] == "queued" and not _starting(run_dir):
                    return "queued (not started; `thresher resume` starts it)"
                time.sleep(poll_s)
    except KeyboardInterrupt:
        return None


# ---------------------------------------------------------------- commands


def _workspace_catalog(ctx: click.Context) -> Catalog:
    workspace: Workspace = ctx.obj
    if not workspace.exists():
        raise ThresherError(
            f"no workspace at {workspace.root}; create one with `thresher init` or `thresher demo`."
        )
    return Catalog.open(workspace)


@click.command("runs")
@click.option("--all", "show_all", is_flag=True, help="Show every run (default: the latest 30).")
@json_option
@click.pass_context
def runs_command(ctx: click.Context, show_all: bool, as_json: bool) -> None:
    """List runs: status (interrupted = its process died; resume it), progress, selection size."""
    catalog = _workspace_catalog(ctx)
    runs.sync_runs(catalog)
    found = runs.list_runs(catalog.workspace.runs_dir)
    if as_json:
        print_json([_run_json(r) for r in (found if show_all else found[:30])])
        return
    if not found:
        click.echo("No runs yet; start one with `thresher run ofa|clipper ...`.")
        return
    from rich.console import Console

    from store import decisions

    shown = found if show_all else found[:30]
    with catalog.connect() as con:
        rows = con.execute("SELECT run_id, summary FROM runs WHERE summary IS NOT NULL").fetchall()
        decided = {r[0] for r in con.execute("SELECT DISTINCT run_id FROM decisions").fetchall()}
        effective = {
            r.run_id: decisions.effective_totals(con, r.path)[1]
            for r in shown
            if r.run_id in decided and r.state == "done" and r.has_result
        }
    summaries = {run_id: json.loads(text) for run_id, text in rows}
    Console().print(runs_table(shown, time.time(), summaries, effective))


@click.command("attach")
@click.argument("run")
@click.pass_context
def attach_command(ctx: click.Context, run: str) -> None:
    """Watch a run live (stage bars, rate, ETA, GPU meters, log). Ctrl-C leaves it running.

    Exit status: 0 when the run finished (or you detached), 1 when it failed, was cancelled,
    its process died or it was never started, so `thresher attach RUN && next-step` goes on only
    after a good result.
    """
    catalog = _workspace_catalog(ctx)
    run_dir = runs.resolve_run_dir(catalog.workspace.runs_dir, run)
    state = attach(run_dir)
    runs.sync_runs(catalog, only=[run_dir.name])
    if state is None:
        click.echo(f"Detached; run {run_dir.name} keeps going.")
    elif state == "done":
        click.echo(f"Run {run_dir.name}: {state}.")
    else:
        error = runs.read_status(run_dir).get("error")
        click.echo(f"Run {run_dir.name}: {state}." + (f" {error}" if error else ""), err=True)
        ctx.exit(1)


@click.command("cancel")
@click.argument("run")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait until it stopped.")
@click.pass_context
def cancel_command(ctx: click.Context, run: str, wait: bool) -> None:
    """Stop a run after its current shard; `thresher resume RUN` continues it later."""
    catalog = _workspace_catalog(ctx)
    run_dir = runs.resolve_run_dir(catalog.workspace.runs_dir, run)
    state = runs.read_status(run_dir)["status"]
    if state in runs.FINISHED or state == runs.INTERRUPTED:
        click.echo(f"Run {run_dir.name} is not running ({state}).")
        return
    pid = runs.request_cancel(run_dir)
    click.echo(f"Cancel requested for {run_dir.name}" + (f" (PID {pid})." if pid else "."))
    if wait:
        while runs.is_locked(run_dir) or runs.read_status(run_dir)["status"] == "queued":
            time.sleep(0.1)
            if runs.read_status(run_dir)["status"] == runs.INTERRUPTED:
                break
        click.echo(f"Run {run_dir.name}: {runs.read_status(run_dir)['status']}.")
    runs.sync_runs(catalog, only=[run_dir.name])


@click.command("resume")
@click.argument("run")
@click.option("--detach", "-d", is_flag=True, help="Resume in the background.")
@ray_options
@click.pass_context
def resume_command(ctx: click.Context, run: str, detach: bool) -> None:
    """Continue an interrupted, cancelled or failed run; finished shards are not recomputed."""
    catalog = _workspace_catalog(ctx)
    launch(catalog, runs.resolve_run_dir(catalog.workspace.runs_dir, run), detach)


def _run_json(run: Any) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "method": run.method,
        "dataset": run.dataset,
        "state": run.state,
        "created_at": run.created_at,
        "path": str(run.path),
        "error": run.status.get("error"),
        "stages": {name: plain(sp) for name, sp in run.stages.items()},
        "verdicts": runs.judge_verdicts(run.path, run.meta),
    }


def register(cli: click.Group) -> None:
    """Add this module's commands to the top-level group."""
    for command in (runs_command, attach_command, cancel_command, resume_command):
        cli.add_command(command)
