"""Thumbnails as half-cell blocks: each character cell shows two pixels ("▀", top = foreground,
bottom = background), which every colour terminal draws, tmux included.

`thumbnail()` decodes (JPEG at a reduced scale via Pillow's draft mode), fits the image into
`width x 2*height` pixels and returns a Rich Text; results are kept in a process-wide LRU so a
page seen before paints from memory. It is meant to run in a worker thread.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from rich.color import Color
from rich.style import Style
from rich.text import Text

CACHE_SIZE = 512  # thumbnails (a 20x8-cell one is a few KB of spans)
_cache: OrderedDict[tuple[str, int, int], Text] = OrderedDict()
_lock = threading.Lock()


def _placeholder(width: int, height: int, why: str) -> Text:
    lines = [" " * width] * height
    mid = height // 2
    lines[mid] = why[:width].center(width)
    return Text("\n".join(lines), style="dim")


def render_halfcell(img, width: int, height: int) -> Text:
    """A Pillow image drawn in `width x height` cells (aspect kept, centred on black)."""
    from PIL import Image

    img = img.convert("RGB")
    img.thumbnail((width, height * 2), Image.Resampling.BILINEAR)
    canvas = Image.new("RGB", (width, height * 2))
    canvas.paste(img, ((width - img.width) // 2, (height * 2 - img.height) // 2))
    px = canvas.load()
    text = Text()
    for y in range(height):
        for x in range(width):
            top, bottom = px[x, 2 * y], px[x, 2 * y + 1]
            text.append("▀", Style(color=Color.from_rgb(*top), bgcolor=Color.from_rgb(*bottom)))
        if y < height - 1:
            text.append("\n")
    return text


def thumbnail(path: str | None, width: int, height: int) -> Text:
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
            text = render_halfcell(img, width, height)
    except (OSError, ValueError) as exc:  # missing, unreadable, not an image
        text = _placeholder(
            width, height, "missing" if isinstance(exc, FileNotFoundError) else "unreadable"
        )
    with _lock:
        _cache[key] = text
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return text


def cache_clear() -> None:
    with _lock:
        _cache.clear()
