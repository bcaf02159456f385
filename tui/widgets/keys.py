"""Key bindings that mean the same on every screen: Esc goes back, space marks, k / d / u decide."""

from __future__ import annotations

from textual.binding import Binding


def back(scope: str) -> Binding:
    """Esc: back to the screen this one was opened from."""
    return Binding("escape", "app.pop_screen", "Back", id=f"{scope}.back")


def mark(scope: str) -> Binding:
    """space: mark / unmark the focused sample (the node's `action_mark`)."""
    return Binding(
        "space", "mark", "Mark", id=f"{scope}.mark", tooltip="Mark this sample for k/d/u"
    )


def decide(scope: str) -> list[Binding]:
    """k / d / u: keep or drop (your override), or back to the algorithm's choice; the node's
    `action_decide(action)` applies them to the marked samples, else the focused one."""
    return [
        Binding("k", "decide('keep')", "Keep", id=f"{scope}.keep", tooltip="Keep (override)"),
        Binding("d", "decide('drop')", "Drop", id=f"{scope}.drop", tooltip="Drop (override)"),
        Binding(
            "u", "decide('clear')", "Clear", id=f"{scope}.clear", tooltip="Back to the algorithm"
        ),
    ]
