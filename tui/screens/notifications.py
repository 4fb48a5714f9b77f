"""Every notification of this session, newest first: an error that timed out off the screen is
still readable here (``e``)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

SEVERITY_STYLES = {"error": "bold red", "warning": "yellow", "information": ""}


@dataclass(frozen=True)
class Notice:
    at: float
    severity: str
    title: str
    message: str


class NotificationsScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,e,q", "dismiss", "Close", id="notifications.close")]
    DEFAULT_CSS = """
    NotificationsScreen { align: center middle; }
    NotificationsScreen > VerticalScroll {
        width: 100; max-width: 100%; height: 80%; border: thick $accent; background: $surface;
        padding: 0 1;
    }
    """

    def __init__(self, notices: list[Notice]):
        super().__init__()
        self.notices = notices

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Label(f"Messages ({len(self.notices)}), newest first")
            if not self.notices:
                yield Static("none yet")
            for notice in reversed(self.notices):
                line = Text(time.strftime("%H:%M:%S ", time.localtime(notice.at)), style="dim")
                line.append(f"{notice.title}: " if notice.title else "",
                            style=SEVERITY_STYLES.get(notice.severity, ""))
                line.append(notice.message)
                yield Static(line, classes=f"-{notice.severity}")
