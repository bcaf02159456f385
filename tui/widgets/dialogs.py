"""Small modal screens shared by every screen: F1 help, a yes/no confirmation, a one-line prompt."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Button, Input, Label


def help_text(widget: Widget | None, screen: Widget) -> str:
    """The focused widget's HELP, then the screen's, then the keys active here (posting's Helpable idea)."""
    parts = []
    for source in (widget, screen):
        text = getattr(source, "HELP", None) if source is not None else None
        if text and text not in parts:
            parts.append(text)
    keys = []
    node = widget or screen
    seen: set[str] = set()
    while node is not None:
        for binding in getattr(node, "BINDINGS", []):
            if not isinstance(binding, Binding) or binding.key in seen:
                continue
            seen.add(binding.key)
            keys.append(f"- **{binding.key}**: {binding.tooltip or binding.description}")
        node = node.parent if node is not screen else None
    if keys:
        parts.append("## Keys here\n\n" + "\n".join(keys))
    parts.append("Ctrl+P: command palette · Esc: back · q: quit")
    return "\n\n".join(parts)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,f1,q", "dismiss", "Close", id="help.close")]

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def compose(self) -> ComposeResult:
        from textual.widgets import Markdown  # markdown-it: only when help is asked for

        with VerticalScroll(id="help-body", classes="dialog"):
            yield Markdown(self.text)

    def action_dismiss(self, result: None = None) -> None:  # type: ignore[override]
        self.dismiss(None)


class ConfirmScreen(ModalScreen[bool]):
    """A question whose text states exactly what will happen (e.g. how many samples)."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes", id="confirm.yes"),
        Binding("n,escape", "answer(False)", "No", id="confirm.no"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="confirm"):
            yield Label(self.question, id="confirm-question")
            yield Label("y: yes   n / Esc: no", classes="hint")
            yield Button("Yes (y)", id="yes", variant="warning")
            yield Button("No (n)", id="no")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class PromptScreen(ModalScreen[str | None]):
    """One line of input (a sample id, a search text); Esc cancels."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="prompt.cancel")]

    def __init__(self, question: str, value: str = "", placeholder: str = "") -> None:
        super().__init__()
        self.question, self.value, self.placeholder = question, value, placeholder

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="prompt"):
            yield Label(self.question)
            yield Input(self.value, placeholder=self.placeholder, id="prompt-input")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)
