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

from backends import phasetrace
from backends.engine import Engine
from backends.logfile import LogEntry, format_ts, last_lines, read_bytes_from, supersedes
from backends.store import RunRecord

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO

_TAG_AT = len(format_ts(0.0))  # where " out " follows a log line's timestamp
_PLAIN = ("Z out ", "Z err ")
_PLAIN_B = (b"Z out ", b"Z err ")
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

    def chunk(self, data: bytes) -> None:
        """Complete log lines as read (bytes, each ending with its newline). A run of plain
        lines sharing one prefix (a batch: the supervisor writes a read's lines with one
        timestamp) goes out as bytes with that prefix removed by one ``replace``: a flooding
        script's log costs a few C calls per batch here, not Python work per line."""
        if not data:
            return
        if not self._bytes_ok():
            self.lines(data[:-1].decode("utf-8", errors="replace").split("\n"))
            return
        if self.live is not None:
            self.live.erase()
        pos, end = 0, len(data)
        while pos < end:
            if not self.pending:
                pos = self._print_plain_bytes(data, pos)
            if pos < end:
                stop = data.index(b"\n", pos)
                self._line(data[pos:stop].decode("utf-8", errors="replace"))
                pos = stop + 1
        if self.live is not None:
            newest = max(self.pending.values(), key=lambda e: e.ts, default=None)
            self.live.entry = newest
            sys.stdout.flush()
            self.live.draw()

    def _bytes_ok(self) -> bool:
        """Plain lines may go out as the log's bytes: printed as they are, to UTF-8 streams."""
        if self.emit is not print_entry or self.timestamps:
            return False
        for stream in (sys.stdout, sys.stderr):
            if getattr(stream, "buffer", None) is None or \
                    (getattr(stream, "encoding", "") or "").lower().replace("-", "") != "utf8":
                return False
        return True

    def _print_plain_bytes(self, data: bytes, pos: int) -> int:
        """Print the runs of plain ``out``/``err`` lines from ``pos``; where the line-by-line
        path takes over."""
        end, width = len(data), _TAG_AT + 5
        while pos < end:
            prefix = data[pos:pos + width]
            if prefix[_TAG_AT - 1:] not in _PLAIN_B or b"\n" in prefix:
                break
            stop = _prefix_run_end(data, pos, prefix)
            segment = data[pos:stop]
            body = segment.replace(b"\n" + prefix, b"\n")[width:]
            if len(body) != len(segment) - segment.count(b"\n") * width:
                # A line in between had another prefix (a metric amid a batch's lines): the
                # run ends there, found line by line (once: the rest is the next run's).
                stop = _prefix_run_end_linear(data, pos, prefix)
                segment = data[pos:stop]
                body = segment.replace(b"\n" + prefix, b"\n")[width:]
            if prefix[_TAG_AT - 1:] == _PLAIN_B[0]:
                sys.stdout.flush()  # what went through the text layer comes first
                sys.stdout.buffer.write(body)
            else:  # stderr: after what stdout holds, and at once (as its text layer would)
                sys.stdout.flush()
                sys.stderr.flush()
                sys.stderr.buffer.write(body)
                sys.stderr.buffer.flush()
            pos = stop
        return pos

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


def _prefix_run_end_linear(data: bytes, pos: int, prefix: bytes) -> int:
    """``_prefix_run_end`` by walking the lines (when the run is not contiguous)."""
    end = len(data)
    while True:
        start = data.index(b"\n", pos) + 1
        if start >= end or not data.startswith(prefix, start):
            return start
        pos = start


def _prefix_run_end(data: bytes, pos: int, prefix: bytes) -> int:
    """Where the run of lines starting with ``prefix`` from ``pos`` (a line start that has it)
    ends: a binary search over byte offsets, as a batch's lines are contiguous (the caller
    checks the run, should a later line share the prefix)."""
    low, high = pos, len(data)  # low: a line start with the prefix; high: one without, or end
    while True:
        newline = data.find(b"\n", (low + high) // 2, high - 1)
        if newline < 0:  # no line start in the upper half: the first one after ``low``
            newline = data.find(b"\n", low, high - 1)
            if newline < 0:
                return high
        start = newline + 1
        if data.startswith(prefix, start):
            low = start
        else:
            high = start


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
    seen = False
    last_reconcile = time.monotonic()
    record = engine.store.get(run_id, with_metrics=False)
    try:
        while True:
            data, offset = read_bytes_from(path, offset)
            printer.chunk(data)
            if data:
                sys.stdout.flush()
                if not seen:
                    seen = True
                    phasetrace.mark("cli-first-output")
                delay = POLL_S
                continue
            if not follow:
                return record
            record = engine.store.get(run_id, with_metrics=False)
            if record.status.is_terminal():
                phasetrace.mark("cli-terminal-seen")
                data, offset = read_bytes_from(path, offset)  # the supervisor's last lines
                printer.chunk(data)
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
