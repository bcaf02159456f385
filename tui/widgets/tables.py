"""Shared widgets: a row-cursor DataTable whose Home/End move by rows, and a footer that fits 80 columns."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from textual.binding import Binding
from textual.widgets import DataTable, Footer

T = TypeVar("T")


def under_cursor(table: DataTable, items: Sequence[T]) -> T | None:
    """The item a table's cursor row shows (rows are drawn from `items`, in order); None when
    the table is empty or the cursor is past the items (a redraw in progress)."""
    row = table.cursor_row
    return items[row] if 0 <= row < len(items) else None


class RowTable(DataTable):
    """Lists where a row is the unit (groups, runs, datasets): Home/End go to the first/last row
    instead of scrolling to the first/last column, which cut the names off."""

    BINDINGS = [
        Binding("home", "scroll_top", "First row", show=False, id="rows.first"),
        Binding("end", "scroll_bottom", "Last row", show=False, id="rows.last"),
    ]

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("cursor_type", "row")
        super().__init__(**kwargs)


class KeyFooter(Footer):
    """The key hints, compact below 120 columns so an 80-column terminal shows whole names."""

    def on_resize(self) -> None:
        self.compact = self.size.width < 120
