"""Which textual-image widget draws a sample's image: auto (Kitty/Sixel where supported), halfcell, or none.

textual-image asks the terminal what it supports when it is imported, which must happen
before Textual takes the terminal over; `prepare()` does that from the CLI. Inside tmux the
graphics protocols are unreliable, so auto means half-cell blocks there.
"""

from __future__ import annotations

import os

from textual.widget import Widget

MODES = ("auto", "kitty", "sixel", "halfcell", "none")


def resolve_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"image mode {mode!r}: use one of {', '.join(MODES)}")
    if mode == "auto" and os.environ.get("TMUX"):
        return "halfcell"
    return mode


def prepare(mode: str) -> str:
    """Resolve the mode and, for auto, let textual-image probe the terminal now (before the app starts)."""
    mode = resolve_mode(mode)
    if mode != "none":
        import textual_image.widget  # noqa: F401  (the import runs the terminal query)
    return mode


def image_widget(mode: str, path: str) -> Widget | None:
    if mode == "none":
        return None
    from textual_image import widget as ti

    cls = {
        "auto": ti.Image,
        "kitty": ti.TGPImage,
        "sixel": ti.SixelImage,
        "halfcell": ti.HalfcellImage,
    }[mode]
    return cls(path, id="sample-image")
