"""Tail a run's log file until the run ends (used by ``submit`` and ``runs logs -f``).

Progress entries (a bar the script redraws with ``\\r``, see backends/logfile.py) are shown in
place on a terminal, below the lines, and are not printed as lines: the output keeps each bar's
last state, where its line ended (or, for a line that never ended, at the end).
"""

from __future__ import annotations

import os
import select
import sys
import time
from collections.abc import Callable

from backends.engine import Engine
from backends.logfile import LogEntry, format_ts, last_lines, read_from, supersedes
from backends.store import RunRecord

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO

_TAG_AT = len(format_ts(0.0))  # where " out " follows a log line's timestamp
_PLAIN = ("Z out ", "Z err ")
POLL_S = 0.01
POLL_MAX_S = 0.1
RECONCILE_EVERY_S = 2.0


def print_entry(entry: LogEntry, timestamps: bool = False) -> None:
    from .render import log_line

    stream = sys.stderr if entry.stream in ("err", "sys") else sys.stdout
    stream.write(log_line(entry, timestamps) + "\n")


class LiveProgress:
    """The latest progress entry drawn on the terminal's last row, erased before a line is
    printed and drawn again after it (as a progress bar behaves in a terminal). Off when the
    output is not a terminal: there only the bars' final states are printed, as lines."""

    def __init__(self, timestamps: bool):
        self.timestamps = timestamps
        self.entry: LogEntry | None = None
        self.drawn: TextIO | None = None

    @staticmethod
    def stream_of(entry: LogEntry) -> TextIO:
        return sys.stderr if entry.stream == "err" else sys.stdout

    def enabled(self, entry: LogEntry) -> bool:
        return self.stream_of(entry).isatty()

    def set(self, entry: LogEntry | None) -> None:
        self.erase()
        self.entry = entry
        self.draw()

    def erase(self) -> None:
        if self.drawn is not None:
            self.drawn.write("\r\x1b[K")
            self.drawn.flush()
            self.drawn = None

    def draw(self) -> None:
        from .render import log_line

        if self.entry is None or not self.enabled(self.entry):
            return
        out = self.stream_of(self.entry)
        try:  # (shutil's version would import shutil on every submit)
            width = os.get_terminal_size(out.fileno()).columns - 1
        except OSError:
            width = 79
        out.write("\r" + log_line(self.entry, self.timestamps)[:width] + "\x1b[K")
        out.flush()
        self.drawn = out


class Printer:
    """Entries -> ``emit``, progress entries held until superseded (logfile.py's rule)."""

    def __init__(self, emit: Callable[[LogEntry, bool], None], timestamps: bool):
        self.emit = emit
        self.timestamps = timestamps
        self.pending: dict[str, LogEntry] = {}  # per stream, its progress not yet superseded
        self.live = LiveProgress(timestamps) if emit is print_entry else None

    def lines(self, raws: list[str]) -> None:
        if self.live is not None and raws:
            self.live.erase()
        bulk = self.emit is print_entry and not self.timestamps
        start = 0
        while start < len(raws):
            if bulk and not self.pending:
                start = self._print_plain(raws, start)
            if start < len(raws):
                self._line(raws[start])
                start += 1
        if self.live is not None and raws:
            newest = max(self.pending.values(), key=lambda e: e.ts, default=None)
            self.live.entry = newest
            sys.stdout.flush()
            self.live.draw()

    def _line(self, raw: str) -> None:
        entry = LogEntry.parse(raw)
        base = supersedes(entry.stream)
        if base is not None:
            self.pending.pop(base, None)
            if entry.progress:
                self.pending[base] = entry
                return
        self.emit(entry, self.timestamps)

    def _print_plain(self, raws: list[str], start: int) -> int:
        """Print the run of plain ``out``/``err`` lines from ``start`` in bulk (a flooding
        script's lines are nearly all such: a line each through parse and render cost more
        than the script's own print); where the line-by-line path takes over. The log writer's
        timestamps are fixed-width, so the tag is at a fixed place."""
        at, cut = _TAG_AT - 1, _TAG_AT + 5
        while start < len(raws):
            tag = raws[start][at:cut]
            if tag not in _PLAIN:
                break
            end = start + 1
            while end < len(raws) and raws[end][at:cut] == tag:
                end += 1
            stream = sys.stdout if tag == _PLAIN[0] else sys.stderr
            stream.write("\n".join([raw[cut:] for raw in raws[start:end]]) + "\n")
            start = end
        return start

    def end(self) -> None:
        """The log is read to its end: a bar whose line never ended is printed as it was."""
        if self.live is not None:
            self.live.erase()
        for entry in sorted(self.pending.values(), key=lambda e: e.ts):
            self.emit(entry, self.timestamps)
        self.pending.clear()


def follow(
    engine: Engine,
    run_id: str,
    *,
    follow: bool = True,
    timestamps: bool = False,
    emit: Callable[[LogEntry, bool], None] = print_entry,
    tail: int | None = None,
) -> RunRecord:
    """Print the log from the start (or its last ``tail`` lines); with ``follow``, keep printing
    until the run is terminal and its log is fully read."""
    path = engine.log_path(run_id)
    printer = Printer(emit, timestamps)
    offset = 0
    if tail is not None:
        lines, offset = last_lines(path, tail)
        printer.lines(lines)
    delay = POLL_S
    last_reconcile = time.monotonic()
    record = engine.store.get(run_id, with_metrics=False)
    try:
        while True:
            lines, offset = read_from(path, offset)
            printer.lines(lines)
            if lines:
                sys.stdout.flush()
                delay = POLL_S
                continue
            if not follow:
                return record
            record = engine.store.get(run_id, with_metrics=False)
            if record.status.is_terminal():
                lines, offset = read_from(path, offset)  # the supervisor's last lines
                printer.lines(lines)
                return record
            if time.monotonic() - last_reconcile > RECONCILE_EVERY_S:
                record = engine.reconcile(record)
                last_reconcile = time.monotonic()
            done = engine.done_fd(run_id)
            if done is not None:
                # Wakes the moment our supervisor exits, instead of a poll later.
                readable, _, _ = select.select([done], [], [], delay)
                if readable:
                    engine.forget_done_fd(run_id)
            else:
                time.sleep(delay)
            delay = min(delay * 1.5, POLL_MAX_S)
    finally:
        printer.end()
        sys.stdout.flush()
