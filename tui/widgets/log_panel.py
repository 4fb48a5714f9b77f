"""The Log panel: a status line, the log view, and the search/filter input."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Input, Static

from .link_state import link_label
from .log_view import LogView


class LogPanel(Vertical):
    BINDINGS = [Binding("escape", "close_input", "Close", show=False)]
    DEFAULT_CSS = """
    LogPanel { height: 1fr; }
    LogPanel > #log-status { height: 1; color: $text-muted; padding: 0 1; }
    LogPanel > Input { display: none; height: 3; }
    LogPanel > Input.-open { display: block; }
    """

    def __init__(self, path: Path | None = None, *, poll: bool = True, id: str | None = None):
        super().__init__(id=id)
        self._path = path
        self._poll = poll
        self._mode = "search"
        self.run_label = ""

    def compose(self) -> ComposeResult:
        yield Static("", id="log-status")
        yield LogView(self._path, poll=self._poll, id="log-view")
        yield Input(placeholder="search the whole log", id="log-input")

    @property
    def view(self) -> LogView:
        return self.query_one(LogView)

    def on_mount(self) -> None:
        self.set_interval(0.25, self.refresh_status, name="log-status")
        self.refresh_status()

    def show(self, path: Path | None, label: str) -> None:
        self.run_label = label
        if path != self.view.path:
            self.view.set_path(path)
        self.refresh_status()

    def refresh_status(self) -> None:
        label = f"{self.run_label} · " if self.run_label else ""
        link = self.view.link
        if link.state in ("reconnecting", "lost"):
            label += f"{link_label(link.state)} ({link.where}) · "
        if link.sync is not None:
            label += f"{link.sync} · "
        text = self.view.status_text() if self.view.path else "no run selected"
        self.query_one("#log-status", Static).update(label + text)

    # the view's search/filter bindings open the input here
    def open_input(self, mode: str) -> None:
        self._mode = mode
        field = self.query_one(Input)
        field.placeholder = ("filter: show only lines containing… (whole log)" if mode == "filter"
                             else "search the whole log (n/N: next/previous)")
        current = self.view.filter_text if mode == "filter" else self.view.search_text
        field.value = current or ""
        field.add_class("-open")
        field.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        field = self.query_one(Input)
        field.remove_class("-open")
        value = event.value.strip() or None
        if self._mode == "filter":
            self.view.apply_filter(value)
        else:
            self.view.search(value)
        self.view.focus()
        self.refresh_status()

    def on_log_view_input_requested(self, event: LogView.InputRequested) -> None:
        event.stop()
        self.open_input(event.mode)

    def action_close_input(self) -> None:
        self.close_input()

    def close_input(self) -> None:
        field = self.query_one(Input)
        if field.has_class("-open"):
            field.remove_class("-open")
            self.view.focus()
