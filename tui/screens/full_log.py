"""One run's log on the whole screen (same widget: live, search, filter, wrap, timestamps)."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer

from ..widgets.log_panel import LogPanel


class FullLogScreen(Screen[None]):
    BINDINGS = [Binding("q,l", "dismiss", "Back", id="fulllog.close")]

    def __init__(self, path: Path, label: str):
        super().__init__()
        self.path = path
        self.label = label

    def compose(self) -> ComposeResult:
        yield LogPanel(self.path, id="full-log")
        yield Footer()

    def on_mount(self) -> None:
        panel = self.query_one(LogPanel)
        panel.run_label = self.label
        panel.view.focus()
