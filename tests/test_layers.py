"""The layer rules from STYLE.md, checked in a fresh interpreter (what a user's process sees)."""

import subprocess
import sys

HEAVY = ("torch", "transformers", "open_clip", "vllm", "faiss")


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys; print('\\n'.join(sys.modules))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return set(out.split())


def test_store_imports_no_ui_and_no_torch():
    mods = _modules_after("import store.catalog, store.workspace")
    assert not {m for m in mods if m.split(".")[0] in {"textual", "tui", *HEAVY}}


def test_cli_and_tui_load_no_torch():
    mods = _modules_after("import tui.cli")
    assert not {m for m in mods if m.split(".")[0] in HEAVY}
