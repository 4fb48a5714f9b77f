"""Which metrics the runs table shows as columns: every metric any run logged, ticked with
space; Enter keeps the choice (for this project), Escape leaves it as it was."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, SelectionList


class MetricColumnsScreen(ModalScreen[list[str] | None]):
    BINDINGS = [
        Binding("enter", "keep", "Keep", id="columns.keep", priority=True),
        Binding("escape", "dismiss(None)", "Cancel", id="columns.cancel"),
    ]
    DEFAULT_CSS = """
    MetricColumnsScreen { align: center middle; }
    MetricColumnsScreen > Vertical {
        width: 60; max-width: 100%; height: auto; max-height: 90%;
        border: thick $accent; background: $surface; padding: 0 1;
    }
    MetricColumnsScreen SelectionList { height: auto; max-height: 20; }
    """

    def __init__(self, names: list[str], shown: list[str]):
        super().__init__()
        self.names = names
        self.shown = shown

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Metric columns (space: show/hide, enter: keep, escape: cancel)")
            if not self.names:
                yield Label("no run has logged a metric yet")
            yield SelectionList[str](*((n, n, n in self.shown) for n in self.names))

    def on_mount(self) -> None:
        self.query_one(SelectionList).focus()

    def action_keep(self) -> None:
        picked = set(self.query_one(SelectionList).selected)
        self.dismiss([n for n in self.names if n in picked])
