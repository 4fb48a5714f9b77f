"""F1: what labdeck's dashboard does and every key binding, as currently mapped."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.keys import format_key
from textual.screen import ModalScreen
from textual.widgets import DataTable, Markdown

from ..keymap import (
    APP_BINDINGS,
    LIST_BINDINGS,
    LOG_BINDINGS,
    RUNS_BINDINGS,
    TARGETS_BINDINGS,
    keymap_path,
)
from ..widgets.table import FittedTable

INTRO = """\
# labdeck

Runs belong to their supervisors: quitting the dashboard leaves them going, and reopening it
shows them with their logs caught up. Select a run in **Runs** to see its **Log** and
**Details**. `ctrl+p` opens the command palette. Keys can be remapped in `{path}`
(`[keymap]` table: binding id = "keys").
"""


FOCUS_ROWS = [
    ("anywhere", "Tab, shift+Tab", "Next / previous panel (the focused one is outlined)", ""),
]


PRINTED = {"enter": "Enter", "escape": "Esc", "space": "space", "tab": "Tab", "home": "Home",
           "end": "End", "pageup": "PgUp", "pagedown": "PgDn", "up": "↑", "down": "↓",
           "f1": "F1"}


def printed(keys: str) -> str:
    """Key names as they are printed on the keyboard: ``/`` not ``slash``, Enter, F1."""
    shown = []
    for key in keys.split(","):
        key = key.strip()
        shown.append(PRINTED.get(key) or format_key(key))
    return ", ".join(shown)


def binding_rows(keymap: dict[str, str]) -> list[tuple[str, str, str, str]]:
    rows = list(FOCUS_ROWS)
    seen: set[tuple[str, str]] = set()
    for area, bindings in (("anywhere", APP_BINDINGS), ("runs", RUNS_BINDINGS),
                           ("lists", LIST_BINDINGS), ("targets", TARGETS_BINDINGS),
                           ("log", LOG_BINDINGS)):
        for b in bindings:
            if (b.id and (b.id, area) in seen) or (area != "anywhere" and b.action.startswith(
                    "app.")):
                continue  # a run action shown in a panel is the app's, listed once
            seen.add((b.id or "", area))
            keys = keymap.get(b.id or "", b.key)
            rows.append((area, printed(keys), b.tooltip or b.description, b.id or ""))
    return rows


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,f1,q", "dismiss", "Close", id="help.close")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 90; max-width: 100%; height: 90%; border: thick $accent; background: $surface;
    }
    HelpScreen DataTable { height: auto; }
    """

    def __init__(self, keymap: dict[str, str]):
        super().__init__()
        self.keymap = keymap

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Markdown(INTRO.format(path=keymap_path()))
            table: DataTable[Any] = FittedTable(cursor_type="row")
            yield table

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("where", "keys", "action", "id")
        table.add_rows(binding_rows(self.keymap))
        table.focus()
