"""What each entry point loads, checked in a fresh interpreter (what a user's process sees).

The layer rules from STYLE.md (store never loads the UI, nothing light loads torch) and the
import budgets of the fast paths: `thresher --help` and `thresher runs` must not wait for
pyarrow or numpy, and the TUI's first paint must not wait for DuckDB or pyarrow.
"""

import subprocess
import sys

import pytest

HEAVY = {"torch", "transformers", "open_clip", "vllm", "faiss", "peft"}

# (what is imported, top-level packages it must not load, one it must load: the probe ran)
CASES = {
    "store": ("store.catalog, store.workspace", {"textual", "tui", *HEAVY}, "duckdb"),
    "cli": ("tui.cli", HEAVY, "click"),
    "jobs": (
        "store.runs, selection.jobs, selection.jobs.worker",
        {"pyarrow", "numpy", "torch", "duckdb", "textual", "tui"},
        "selection",
    ),
    "engines and judges": (
        "selection.engines, selection.judges, selection.judges.rules, selection.judges.llm, "
        "selection.engines.openai_engine, selection.engines.vllm_engine, "
        "selection.engines.transformers_engine, selection.demo.model",
        {*HEAVY, "httpx", "PIL"},
        "selection",
    ),
    "fine-tune, eval, report": (
        "selection.finetune.report, selection.finetune.evaluate, selection.finetune.train, "
        "selection.finetune.commands, store.evaluations, tui.cli.training",
        HEAVY,
        "selection",
    ),
    "the app's screens": (
        "tui.app, tui.screens.browser, tui.screens.detail, tui.screens.monitor, "
        "tui.screens.export, tui.screens.compare, tui.screens.start_run",
        HEAVY,
        "textual",
    ),
    # The first worker loads these after the first paint (~0.4 s of a 1.6-1.8 s first paint).
    "the app and Home": (
        "tui.app, tui.screens.home",
        {"duckdb", "pyarrow", "numpy", "markdown_it"},
        "textual",
    ),
}


def packages_loaded_by(modules: str) -> set[str]:
    code = f"import {modules}\nimport sys; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return {m.split(".")[0] for m in out.stdout.split()}


@pytest.mark.parametrize("case", list(CASES))
def test_entry_point_loads_only_what_it_needs(case):
    modules, forbidden, expected = CASES[case]
    loaded = packages_loaded_by(modules)
    assert expected in loaded  # the probe really imported what it names
    assert not loaded & forbidden, sorted(loaded & forbidden)
