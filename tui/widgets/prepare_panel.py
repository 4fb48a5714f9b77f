"""Preparing a target's environment from the dashboard: its build log as it streams, under a
progress line (``step N/M`` of a Docker build, else the time so far and the last line), and a key
that cancels it (the build's request is closed: the daemon stops the build).

The panel is a tab added to the right-hand side when a prepare starts (``p``); it keeps the last
MAX_LINES lines of the log. ``PrepareProgress`` may be posted from any thread.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Log, Static

from .link_state import LinkFacts

MAX_LINES = 5000
STEP_RE = re.compile(r"^Step (\d+)/(\d+) : (.*)$")  # the classic builder's step lines
LAST_WIDTH = 60


@dataclass
class PrepareProgress(Message):
    """One line of a prepare's output."""

    target: str
    line: str


@dataclass
class PrepareEnded(Message):
    """A prepare ended: built or cached (``ref``), failed (``error``) or canceled."""

    target: str
    ref: str | None = None
    cached: bool = False
    error: str | None = None
    canceled: bool = False


def progress_text(step: tuple[int, int, str] | None, elapsed: float, last: str,
                  sync: str | None = None) -> str:
    """``step 3/7 · 12s · RUN pip install ...``, ``sync 120/5000 files, 1.0/9.0 MB · 12s``
    (a remote target's upload) or ``12s · <last line>``."""
    clock = f"{elapsed:.0f}s"
    if sync is not None:
        return f"{sync} · {clock}"
    if step is not None:
        n, m, command = step
        return f"step {n}/{m} · {clock} · {_clip(command)}"
    return f"{clock} · {_clip(last)}" if last else clock


def _clip(text: str) -> str:
    return text if len(text) <= LAST_WIDTH else text[: LAST_WIDTH - 1] + "…"


class PreparePanel(Vertical):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("x", "cancel_prepare", "Cancel build", id="prepare.cancel"),
    ]
    DEFAULT_CSS = """
    PreparePanel { height: 1fr; }
    PreparePanel > #prepare-status { height: 1; padding: 0 1; text-style: bold; }
    PreparePanel > Log { height: 1fr; }
    """

    def __init__(self, id: str | None = None):
        super().__init__(id=id)
        self.target: str | None = None
        self.started = 0.0
        self.ended: float | None = None
        self.step: tuple[int, int, str] | None = None
        self.last = ""
        self.outcome = ""  # the end, said on the status line
        self.lines = 0
        self.link = LinkFacts()  # a remote target's sync progress

    def compose(self) -> ComposeResult:
        yield Static("", id="prepare-status")
        yield Log(max_lines=MAX_LINES, id="prepare-log")

    def on_mount(self) -> None:
        self.set_interval(1.0, self.show_status, name="prepare-clock")

    @property
    def running(self) -> bool:
        return self.target is not None and self.ended is None

    def begin(self, target: str) -> None:
        self.target = target
        self.started = time.monotonic()
        self.ended = None
        self.step = None
        self.last = ""
        self.outcome = ""
        self.lines = 0
        self.link = LinkFacts()
        self.query_one(Log).clear()
        self.add_line(f"preparing {target}…")

    def focus_log(self) -> None:
        self.query_one(Log).focus()

    def add_line(self, line: str) -> None:
        self.lines += 1
        found = STEP_RE.match(line)
        if found:
            self.step = (int(found[1]), int(found[2]), found[3])
        self.link.feed(line)  # a remote target's sync progress (and its link)
        self.last = line
        self.query_one(Log).write_line(line)
        self.show_status()

    def end(self, message: PrepareEnded) -> None:
        self.ended = time.monotonic()
        took = f"{self.ended - self.started:.0f}s"
        if message.canceled:
            self.outcome = f"✗ canceled after {took}"
        elif message.error is not None:
            self.outcome = f"✗ failed after {took}: {message.error}"
        else:
            self.outcome = (f"✓ {'cached' if message.cached else 'built'} in {took}: "
                            f"{message.ref}")
        self.query_one(Log).write_line(self.outcome)
        self.show_status()

    def status_text(self) -> str:
        if self.target is None:
            return "no prepare yet (p prepares the selected target)"
        if self.ended is not None:
            return f"{self.target}: {self.outcome}"
        progress = progress_text(self.step, time.monotonic() - self.started, self.last,
                                 self.link.sync)
        return f"{self.target}: {progress} · x: cancel"

    def show_status(self) -> None:
        self.query_one("#prepare-status", Static).update(self.status_text())

    async def action_cancel_prepare(self) -> None:
        if self.running:
            await self.app.run_action("cancel_prepare")
