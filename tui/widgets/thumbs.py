"""Thumbnails as half-cell blocks: each character cell shows two pixels ("▀", top = foreground,
bottom = background), which every colour terminal draws, tmux included.

`thumbnail()` decodes (JPEG at a reduced scale via Pillow's draft mode), fits the image into
`width x 2*height` pixels and returns one `Strip` per cell row, ready for `render_line`; results
are kept in a process-wide LRU so a page seen before paints from memory. It is meant to run in a
worker thread. `ThumbView` draws a thumbnail and a caption line.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip
from textual.widget import Widget

CACHE_SIZE = 512  # thumbnails; a 20x8-cell one is 160 segments
_cache: OrderedDict[tuple[str, int, int], list[Strip]] = OrderedDict()
_lock = threading.Lock()
_DIM = Style(dim=True)


def _placeholder(width: int, height: int, why: str) -> list[Strip]:
    rows = [Strip([Segment(" " * width)], width) for _ in range(height)]
    rows[height // 2] = Strip([Segment(why[:width].center(width), _DIM)], width)
    return rows


def render_halfcell(img, width: int, height: int) -> list[Strip]:
    """A Pillow image drawn in `width x height` cells (aspect kept, centred on black)."""
    from PIL import Image

    img = img.convert("RGB")
    img.thumbnail((width, height * 2), Image.Resampling.BILINEAR)
    canvas = Image.new("RGB", (width, height * 2))
    canvas.paste(img, ((width - img.width) // 2, (height * 2 - img.height) // 2))
    data = canvas.tobytes()
    rgb = Color.from_rgb
    strips = []
    for y in range(height):
        top = 2 * y * width * 3
        bottom = top + width * 3
        segments = [
            Segment(
                "▀",
                Style.from_color(
                    rgb(data[top + 3 * x], data[top + 3 * x + 1], data[top + 3 * x + 2]),
                    rgb(data[bottom + 3 * x], data[bottom + 3 * x + 1], data[bottom + 3 * x + 2]),
                ),
            )
            for x in range(width)
        ]
        strips.append(Strip(segments, width))
    return strips


def thumbnail(path: str | None, width: int, height: int) -> list[Strip]:
    """The cached half-cell thumbnail of an image file, or a placeholder that says why not."""
    if not path:
        return _placeholder(width, height, "no image")
    key = (path, width, height)
    with _lock:
        found = _cache.get(key)
        if found is not None:
            _cache.move_to_end(key)
            return found
    from PIL import Image

    try:
        with Image.open(path) as img:
            if img.format == "JPEG":
                img.draft("RGB", (width * 2, height * 4))
            strips = render_halfcell(img, width, height)
    except (OSError, ValueError) as exc:  # missing, unreadable, not an image
        why = "missing" if isinstance(exc, FileNotFoundError) else "unreadable"
        strips = _placeholder(width, height, why)
    with _lock:
        _cache[key] = strips
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return strips


class ThumbView(Widget):
    """A thumbnail (strips from `thumbnail`) with one caption line under it."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.strips: list[Strip] = []
        self.caption = Strip([])

    def show(self, strips: list[Strip], caption: str = "", bold: bool = False) -> None:
        self.strips = strips
        style = Style(bold=True) if bold else Style()
        self.caption = Strip([Segment(caption, style)]) if caption else Strip([])
        self.refresh()

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if y < len(self.strips):
            return self.strips[y].crop(0, width)
        if y == len(self.strips):
            return self.caption.crop(0, width)
        return Strip.blank(width)

    def plain(self) -> str:
        """The drawn characters, a line each (tests)."""
        return "\n".join(s.text for s in [*self.strips, self.caption])


# ---------------------------------------------------------------- terminal graphics (Kitty, Sixel)

_pil_cache: OrderedDict[tuple[str, int, int], object] = OrderedDict()


def graphics_class(mode: str):
    """textual-image's widget for Kitty or Sixel when `mode` asks for (or auto-detects) one; None
    means half-cell blocks (our own, cached). Inside tmux auto is always half-cell."""
    import os

    if mode == "auto" and os.environ.get("TMUX"):
        return None
    if mode not in ("auto", "kitty", "sixel"):
        return None
    from textual_image import renderable
    from textual_image import widget as ti

    if mode == "kitty":
        return ti.TGPImage
    if mode == "sixel":
        return ti.SixelImage
    found = {renderable.TGPImage: ti.TGPImage, renderable.SixelImage: ti.SixelImage}
    return found.get(renderable.Image)  # what textual-image detected when it was imported


def thumbnail_image(path: str | None, width_px: int, height_px: int):
    """A decoded, downsized Pillow image (cached) for a graphics widget; None when unreadable."""
    if not path:
        return None
    key = (path, width_px, height_px)
    with _lock:
        if key in _pil_cache:
            _pil_cache.move_to_end(key)
            return _pil_cache[key]
    from PIL import Image

    try:
        with Image.open(path) as img:
            if img.format == "JPEG":
                img.draft("RGB", (width_px, height_px))
            small = img.convert("RGB")
            small.thumbnail((width_px, height_px), Image.Resampling.BILINEAR)
    except (OSError, ValueError):
        small = None
    with _lock:
        _pil_cache[key] = small
        while len(_pil_cache) > CACHE_SIZE:
            _pil_cache.popitem(last=False)
    return small
