"""Importing the app loads no torch (or other heavy ML libraries): the first paint must not wait for them."""

import subprocess
import sys

HEAVY = {"torch", "transformers", "open_clip", "vllm", "faiss"}


def test_tui_app_import_loads_no_torch():
    code = (
        "import tui.app, tui.screens.browser, tui.screens.detail, tui.screens.monitor, "
        "tui.screens.export, tui.screens.compare, tui.screens.start_run\n"
        "import sys; print('\\n'.join(sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    loaded = {m.split(".")[0] for m in out.stdout.split()}
    assert "textual" in loaded  # the probe really imported the app
    assert not loaded & HEAVY


def test_home_paints_before_duckdb_and_pyarrow_load():
    """The app and Home import no DuckDB, pyarrow, numpy or markdown: the first worker loads them
    after the first paint (they were ~0.4 s of the 1.6-1.8 s first paint on a loaded box)."""
    code = "import tui.app, tui.screens.home\nimport sys; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    loaded = {m.split(".")[0] for m in out.stdout.split()}
    assert "textual" in loaded
    assert not loaded & {"duckdb", "pyarrow", "numpy", "markdown_it"}, loaded & {
        "duckdb",
        "pyarrow",
        "numpy",
        "markdown_it",
    }
