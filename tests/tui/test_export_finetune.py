"""ctrl+f on the export screen starts the fine-tune in-process (create the run, launch it detached)
on the run's own model; it used to shell out to `python -m tui train` without a model and fail."""

from __future__ import annotations

import pytest

from store import runs
from tests.tui.helpers import settle, wait_for, widget_text
from tui.screens.export import ExportScreen

pytestmark = pytest.mark.anyio


async def _export_then_finetune(app, pilot, run_id: str) -> ExportScreen:
    await settle(pilot)
    app.open_browser(run_id)
    await settle(pilot)
    await pilot.press("x")
    await settle(pilot)
    screen = app.screen
    assert isinstance(screen, ExportScreen)
    await pilot.press("ctrl+e")
    await wait_for(pilot, lambda: screen.result is not None or "failed" in widget_text(
        screen.query_one("#export-result")), what="the export")  # fmt: skip
    assert screen.result is not None, widget_text(screen.query_one("#export-result"))
    await pilot.press("ctrl+f")
    await settle(pilot)
    return screen


def _notes(app) -> str:
    return "\n".join(str(n.message) for n in app._notifications)


async def test_finetune_from_export_uses_the_runs_model_and_detaches(app, runs_ws, monkeypatch):
    import selection.jobs.launcher as launching

    meta = runs.read_run_json(runs_ws.run_dir("clipper-1"))
    runs.write_json_atomic(
        runs_ws.run_dir("clipper-1") / runs.RUN_JSON, {**meta, "params": {"model": "/models/vlm"}}
    )
    spawned = []
    monkeypatch.setattr(launching, "spawn_worker", lambda run_dir, ray=None: spawned.append(run_dir) or 4242)  # fmt: skip
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _export_then_finetune(app, pilot, "clipper-1")
        await wait_for(pilot, lambda: spawned, what="the fine-tune launch")
        await settle(pilot)
        (run_dir,) = spawned
        params = runs.read_run_json(run_dir)["params"]
        assert params["model"] == "/models/vlm"
        assert params["manifest"] == str(screen.result.path)
        assert f"fine-tune {run_dir.name}: queued" in _notes(app)


async def test_finetune_from_an_ofa_export_says_which_command_to_type(app, runs_ws):
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await _export_then_finetune(app, pilot, "ofa-1")
        await wait_for(pilot, lambda: "names no base model" in _notes(app), what="the notice")
        assert f"thresher train --manifest {screen.result.path} --model" in _notes(app)
        assert not [p for p in runs_ws.runs_dir.iterdir() if p.name.startswith("finetune")]
        assert isinstance(app.screen, ExportScreen)  # still usable
