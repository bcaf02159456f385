"""Home and the start-a-run form: a real detached job (the job tests' `sleepy` method) started from the TUI,
followed by the monitor to the end, then browsed; plus F1 help, the command palette and NO_COLOR."""

from __future__ import annotations

import pytest

from tests.tui.helpers import settle, wait_for, widget_text
from tui.screens.browser import BrowserScreen
from tui.screens.home import HomeScreen
from tui.screens.monitor import MonitorScreen
from tui.screens.start_run import StartRunScreen
from tui.widgets.dialogs import HelpScreen

pytestmark = pytest.mark.anyio


async def test_start_a_detached_run_from_the_form_then_monitor_and_browse(workspace, catalog):
    from tests.helpers.jobs import make_dataset  # registers the `sleepy` method
    from tui.app import ThresherApp

    make_dataset(catalog, "toy", n=20)
    app = ThresherApp(workspace, image_mode="none")
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        await pilot.press("n")
        await settle(pilot)
        form = app.screen
        assert isinstance(form, StartRunScreen)
        method = form.query_one("#method")
        assert "sleepy" in [str(o[1]) for o in method._options if o[1] is not method.BLANK]
        method.value = "sleepy"
        form.query_one("#dataset").value = "toy"
        await settle(pilot)
        form.query_one("#run-name").value = "from-tui"
        # a bad parameter is reported on the form, nothing starts
        form.query_one("#param-shard_size").value = "four"
        await pilot.press("ctrl+r")
        await settle(pilot)
        assert "shard_size: 'four' is not a int" in widget_text(form.query_one("#start-result"))
        assert not (workspace.runs_dir / "from-tui").exists()
        form.query_one("#param-shard_size").value = "5"
        form.query_one("#param-sleep_s").value = "0.01"
        await pilot.press("ctrl+r")
        await wait_for(
            pilot, lambda: isinstance(app.screen, MonitorScreen), timeout=30, what="monitor"
        )
        monitor = app.screen
        assert monitor.run_id == "from-tui"
        await wait_for(pilot, lambda: monitor.snapshot is not None and monitor.snapshot.status == "done",
                       timeout=60, what="the detached job to finish")  # fmt: skip
        assert [s.stage for s in monitor.snapshot.stages][:1] == ["score"]
        assert all(s.finished for s in monitor.snapshot.stages)
        # the finished job is reaped by the app, not left a zombie until it quits
        pid = int((workspace.runs_dir / "from-tui" / "job.pid").read_text())
        await wait_for(pilot, lambda: not is_zombie(pid), timeout=10, what="the job to be reaped")
        await pilot.press("b")
        await settle(pilot)
        assert isinstance(app.screen, BrowserScreen)
        assert app.screen.view.n_rows == 20


def is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return False


async def test_f1_help_palette_and_no_color(app, monkeypatch):
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, HomeScreen)
        app.open_browser("ofa-1")
        await settle(pilot)
        await pilot.press("f1")
        await settle(pilot)
        assert isinstance(app.screen, HelpScreen)
        text = app.screen.text
        assert "## Samples" in text and "**k**: Keep (override)" in text  # the focused table's help
        await pilot.press("escape")
        await settle(pilot)
        # command palette: "category: action" entries for this workspace's runs
        from tui.app import ThresherCommands

        names = [c[0] for c in ThresherCommands(app.screen).commands()]
        assert {"browse: ofa-1", "monitor: clipper-1", "export: ofa-1", "view: home"} <= set(names)


async def test_no_color_env_is_respected(runs_ws, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    from tui.app import ThresherApp

    app = ThresherApp(runs_ws, image_mode="none")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert app.no_color
        svg = app.export_screenshot()
    # only greys are drawn (the SVG theme's default foreground c5c8c6 is near-grey too)
    import re

    fills = set(re.findall(r"fill: #([0-9a-f]{6})", svg))

    def spread(hex6: str) -> int:
        channels = [int(hex6[i : i + 2], 16) for i in (0, 2, 4)]
        return max(channels) - min(channels)

    assert fills and all(spread(f) <= 8 for f in fills), fills


async def test_resume_from_home_relaunches_the_run_detached(workspace, catalog):
    from selection.jobs import create_run
    from tests.helpers.jobs import SleepyConfig, make_dataset
    from tui.app import ThresherApp

    make_dataset(catalog, "toy", n=10)
    create_run(catalog, "sleepy", "toy", SleepyConfig(sleep_s=0.01), seed=0, run_id="waiting")
    app = ThresherApp(workspace, image_mode="none")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        assert [r.run_id for r in app.screen.runs] == ["waiting"]
        assert app.screen.runs[0].status == "queued" and not app.screen.runs[0].has_result
        await pilot.press("R")
        await wait_for(
            pilot, lambda: isinstance(app.screen, MonitorScreen), timeout=30, what="monitor"
        )
        monitor = app.screen
        await wait_for(pilot, lambda: monitor.snapshot is not None and monitor.snapshot.status == "done",
                       timeout=60, what="the resumed job to finish")  # fmt: skip
    assert sorted(p.name for p in (workspace.run_dir("waiting") / "result").glob("*.parquet"))


async def _open_form(app, pilot, method: str, dataset: str) -> StartRunScreen:
    """Home -> n -> the start form with `method` and `dataset` picked."""
    await settle(pilot)
    await pilot.press("n")
    await settle(pilot)
    form = app.screen
    assert isinstance(form, StartRunScreen)
    form.query_one("#method").value = method
    form.query_one("#dataset").value = dataset
    await settle(pilot)
    return form


async def test_the_form_offers_every_field_including_ofa_encoder_settings(workspace, catalog):
    from tests.helpers.jobs import make_dataset
    from tui.app import ThresherApp
    from tui.data.start import build_config

    make_dataset(catalog, "toy", n=4)
    app = ThresherApp(workspace, image_mode="none")
    async with app.run_test(size=(80, 24)) as pilot:
        form = await _open_form(app, pilot, "ofa", "toy")
        names = [f.name for f in form.fields]
        assert names[:2] == ["encode.encoder", "encode.pretrained"] and "budget" in names
        assert len(names) > 14  # no cap: the form scrolls
        assert form.query_one("#param-encode--pretrained").value == "openai"
    values = {"encode.encoder": "ViT-B-16", "encode.batch_size": "16", "k": "8"}
    config = build_config("ofa", values)
    assert (config.encode.encoder, config.encode.batch_size, config.k) == ("ViT-B-16", 16, 8)
    assert config.encode.pretrained == "openai"  # left alone: its default


async def test_the_form_starts_a_run_on_ray_actors(workspace, catalog):
    pytest.importorskip("ray")
    from store import runs
    from tests.helpers.jobs import make_dataset
    from tui.app import ThresherApp

    make_dataset(catalog, "toy", n=12)
    app = ThresherApp(workspace, image_mode="none")
    async with app.run_test(size=(100, 40)) as pilot:
        form = await _open_form(app, pilot, "sleepy", "toy")
        form.query_one("#run-name").value = "tui-ray"
        form.query_one("#param-sleep_s").value = "0"
        form.query_one("#ray-workers").value = "two"
        await pilot.press("ctrl+r")
        await settle(pilot)
        assert "ray workers: 'two'" in widget_text(form.query_one("#start-result"))
        form.query_one("#ray-workers").value = "2"
        await pilot.press("ctrl+r")
        await wait_for(
            pilot, lambda: isinstance(app.screen, MonitorScreen), timeout=30, what="monitor"
        )
    from tests.jobs.conftest import wait_for as wait_until

    run_dir = workspace.runs_dir / "tui-ray"
    wait_until(lambda: runs.read_status(run_dir)["status"] == "done", timeout=120)
    assert "ray: 2 workers" in (run_dir / runs.LOG).read_text()


async def test_a_start_that_raises_anything_says_so_on_the_form(workspace, catalog, monkeypatch):
    """Only ThresherError used to be caught: any other error left "starting…" forever."""
    import tui.screens.start_run as start_screen
    from tests.helpers.jobs import make_dataset
    from tui.app import ThresherApp

    def broken(method, values):
        raise TypeError("create_run() got None for config")

    monkeypatch.setattr(start_screen, "build_config", broken)
    make_dataset(catalog, "toy", n=4)
    app = ThresherApp(workspace, image_mode="none")
    async with app.run_test(size=(100, 40)) as pilot:
        form = await _open_form(app, pilot, "sleepy", "toy")
        await pilot.press("ctrl+r")
        await settle(pilot)
        text = widget_text(form.query_one("#start-result"))
        assert "not started: TypeError: create_run() got None for config" in text
        assert any("starting the run failed" in n.message for n in app._notifications)
        await pilot.press("escape")  # the form is still a working screen
        await settle(pilot)
        assert isinstance(app.screen, HomeScreen)


async def test_model_fields_complete_from_the_cached_models(workspace, catalog, monkeypatch):
    import threading

    from selection.models import resolve
    from tests.helpers.jobs import make_dataset
    from tui.app import ThresherApp

    cached = [resolve.CachedModel("open_clip", "hf-hub:timm/ViT-B-16-SigLIP", 1, "/x")]
    scanned_on_ui: list[bool] = []

    def cached_models():  # walks the whole Hugging Face cache: never on the UI thread
        scanned_on_ui.append(threading.current_thread() is threading.main_thread())
        return cached

    monkeypatch.setattr(resolve, "cached_models", cached_models)
    make_dataset(catalog, "toy", n=4)
    app = ThresherApp(workspace, image_mode="none")
    async with app.run_test(size=(80, 24)) as pilot:
        form = await _open_form(app, pilot, "ofa", "toy")
        encoder = form.query_one("#param-encode--encoder")
        encoder.value = ""
        encoder.focus()
        await pilot.press(*"hf-hub:timm/v")
        await settle(pilot)
        await pilot.press("right")  # accepts the suggestion, as in any Textual Input
        await settle(pilot)
        assert encoder.value == "hf-hub:timm/ViT-B-16-SigLIP"
        assert scanned_on_ui == [False]


async def test_the_form_at_80x24_reaches_every_field_by_tab_and_types_into_it(workspace, catalog):
    """Three parameter rows showed at 120x36 and none at 80x24; an invisible focus stop (the
    nested scroll area) swallowed typed text."""
    from textual.widgets import Button, Checkbox, Input, Select

    from tests.helpers.jobs import make_dataset
    from tui.app import ThresherApp

    make_dataset(catalog, "toy", n=4)
    app = ThresherApp(workspace, image_mode="none")
    async with app.run_test(size=(80, 24)) as pilot:
        form = await _open_form(app, pilot, "ofa", "toy")
        shown = [f for f in form.fields if "." not in f.name]  # nested ones sit under Advanced
        assert len(shown) > 8
        form.query_one("#method").focus()
        seen = []
        for _ in range(len(shown) + 4):
            await pilot.press("tab")
            await pilot.pause()
            widget = app.focused
            titled = type(widget).__name__ == "CollapsibleTitle"  # opens "Advanced"
            assert isinstance(widget, Input | Select | Checkbox | Button) or titled, widget
            seen.append(widget.id)
            # whatever has focus is on screen (the form scrolls to it), inside the 24 rows
            assert 0 <= widget.region.y < 24, (widget.id, widget.region)
        assert {f"param-{f.name}" for f in shown[:8]} <= set(seen)
        target = form.query_one("#param-k")
        target.focus()
        target.value = ""
        await pilot.press("1", "2")
        assert target.value == "12"
        assert "k:" in widget_text(form.query_one("#field-help"))


async def test_a_clipper_run_starts_from_the_form(workspace, catalog, monkeypatch):
    """The CLI could start CLIPPER and the form could not (its config's validate() returned None)."""
    import selection.jobs.launcher
    from tests.helpers.jobs import make_dataset
    from tui.app import ThresherApp

    spawned = []
    monkeypatch.setattr(
        selection.jobs.launcher,
        "spawn_worker",
        lambda run_dir, ray=None: spawned.append(run_dir) or 0,
    )
    make_dataset(catalog, "toy", n=4)
    app = ThresherApp(workspace, image_mode="none")
    async with app.run_test(size=(100, 40)) as pilot:
        form = await _open_form(app, pilot, "clipper", "toy")
        form.query_one("#run-name").value = "clip-form"
        form.query_one("#param-model").value = "Qwen/Qwen2-VL-2B-Instruct"  # never loaded here
        await pilot.press("ctrl+r")
        await wait_for(
            pilot,
            lambda: (
                isinstance(app.screen, MonitorScreen)
                or "not started" in widget_text(form.query_one("#start-result"))
            ),
            what="the form to answer",
        )
        assert isinstance(app.screen, MonitorScreen), widget_text(form.query_one("#start-result"))
    assert [p.name for p in spawned] == ["clip-form"]
    assert (workspace.runs_dir / "clip-form" / "run.json").exists()
