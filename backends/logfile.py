"""A run's log file: one line per output line, ``<UTC timestamp> <stream> <text>``.

Streams: ``out`` and ``err`` (the script's), ``met`` (a metric it logged), ``sys`` (labdeck's own
notes). The file is append-only and the single source every client tails by byte offset.

Progress: ``out~`` / ``err~`` mark a *progress* entry, the latest state of a line the script keeps
redrawing with ``\r`` (a progress bar; linesplit.py). A progress entry is superseded by the next
entry of its stream (a ``met`` entry counts as ``out``: its marker was a stdout line): readers show
it only until then, so the log reads as the bar's last state while a live view shows it moving.
Logs written before progress entries existed simply have none.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from ._records import dataclass

# A script's line (compiled where it is used, a reattach's count: not at every submit's start).
_TAG_PATTERN = rb"^[0-9T:.-]+Z (out|met|err) "

TYPE_CHECKING = False  # importing typing costs ~3 ms of a submit; annotations need none
if TYPE_CHECKING:
    from typing import TextIO

_setattr = object.__setattr__  # hand-written __init__ of hot frozen records
STREAMS = ("out", "err", "met", "sys")
PROGRESS_TAG = "~"  # ``out~``: a progress entry of ``out``
_SUPERSEDES = {"out": "out", "err": "err", "met": "out"}  # whose progress an entry ends
_SUPERSEDES_B = {k.encode(): v for k, v in _SUPERSEDES.items()}


def supersedes(stream: str) -> str | None:
    """The stream whose pending progress entry an entry of ``stream`` ends (None: none)."""
    return _SUPERSEDES.get(stream)


# Most lines share their second with the one before (None: no second can match it).
_last_second: tuple[int | None, str] = (None, "")


def format_ts(ts: float) -> str:
    """``2026-01-01T00:00:00.123456Z``, rounded to microseconds as datetime rounds."""
    global _last_second
    second = int(ts)  # as datetime splits (math.modf: both exact) and rounds it
    micro = round((ts - second) * 1e6)
    if micro >= 1_000_000:
        second, micro = second + 1, micro - 1_000_000
    elif micro < 0:
        second, micro = second - 1, micro + 1_000_000
    if second != _last_second[0]:  # strftime costs more than all the rest of a line
        # time's, not datetime's: the same text, without importing datetime (~2 ms of a submit)
        _last_second = (second, time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second)))
    return f"{_last_second[1]}{micro:06d}Z"


def parse_ts(text: str) -> float:
    from datetime import UTC, datetime

    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


@dataclass(frozen=True)
class LogEntry:
    ts: str
    stream: str
    text: str
    progress: bool = False  # superseded by the next entry of its stream (see above)

    def __init__(self, ts: str, stream: str, text: str, progress: bool = False):  # per line read
        _setattr(self, "ts", ts)
        _setattr(self, "stream", stream)
        _setattr(self, "text", text)
        _setattr(self, "progress", progress)

    @classmethod
    def parse(cls, line: str) -> LogEntry:
        ts, _, rest = line.partition(" ")
        stream, _, text = rest.partition(" ")
        if stream not in STREAMS:
            if stream[-1:] == PROGRESS_TAG and stream[:-1] in STREAMS:
                return cls(ts, stream[:-1], text, True)
            return cls("", "out", line)  # a line we did not write: keep it visible
        return cls(ts, stream, text)


class LogWriter:
    """Appends tagged lines; each batch is flushed so tails see it at once. A text starting with
    ``\r`` (linesplit.PROGRESS) is a progress state: written as a progress entry."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fh: TextIO = open(path, "a", encoding="utf-8", errors="replace", newline="\n")

    def write(self, stream: str, text: str, ts: float | None = None) -> None:
        self.write_many([(stream, text, ts)])

    def write_many(self, entries: Iterable[tuple[str, str, float | None]]) -> None:
        now = time.time()
        parts = []
        for stream, text, ts in entries:
            if text[:1] == "\r":
                stream += PROGRESS_TAG
            clean = text.replace("\r", "").replace("\n", " ")
            parts.append(f"{format_ts(ts if ts is not None else now)} {stream} {clean}\n")
        if parts:
            self._fh.write("".join(parts))
            self._fh.flush()

    def write_lines(self, stream: str, lines: list[str], ts: float | None = None) -> None:
        """Plain lines of one stream at one time (no ``\r``, no newline: what the line
        splitter gives), written with one join: a busy stream's batch costs a few C calls."""
        if lines:
            prefix = f"{format_ts(ts if ts is not None else time.time())} {stream} "
            self._fh.write(prefix + ("\n" + prefix).join(lines) + "\n")
            self._fh.flush()

    def write_block(self, stream: str, block: bytes, ts: float | None = None) -> None:
        """``write_lines`` for lines still in bytes (rawbatch.py: valid UTF-8, no ``\r``, each
        ending with its newline): the prefix goes in with one ``replace``, nothing decoded."""
        if block:
            prefix = f"{format_ts(ts if ts is not None else time.time())} {stream} ".encode()
            self._fh.flush()  # (it is, after every write; the bytes must follow the text)
            out = self._fh.buffer
            out.write(prefix + block[:-1].replace(b"\n", b"\n" + prefix) + b"\n")
            out.flush()

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.flush()
            self._fh.close()


def read_bytes_from(path: Path, offset: int, max_bytes: int = 4 << 20) -> tuple[bytes, int]:
    """The complete lines after ``offset``, as bytes ending with their newline, and the offset
    after them (a partial line waits)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            chunk = fh.read(max_bytes)
    except FileNotFoundError:
        return b"", offset
    end = chunk.rfind(b"\n")
    if end < 0:
        return b"", offset
    return chunk[:end + 1], offset + end + 1


def read_from(path: Path, offset: int, max_bytes: int = 4 << 20) -> tuple[list[str], int]:
    """Complete lines after ``offset`` and the offset after them (a partial line waits)."""
    chunk, new_offset = read_bytes_from(path, offset, max_bytes)
    if not chunk:
        return [], offset
    data = chunk[:-1]
    # split("\n"), not splitlines(): a \x0c or \x1e in a script's line is part of that line
    return data.decode("utf-8", errors="replace").split("\n"), new_offset


def _stream_tag(raw: bytes) -> tuple[bytes, bool]:
    """A raw log line's stream tag (``b"out"``) and whether it is a progress entry."""
    tag = raw.split(b" ", 2)[1] if raw.count(b" ", 0, 40) else b""
    if tag[-1:] == b"~":
        return tag[:-1], True
    return tag, False


def last_lines(path: Path, count: int, block: int = 1 << 20) -> tuple[list[str], int]:
    """The last ``count`` lines a reader shows (complete lines; progress entries already
    superseded left out) and the byte offset after them, read backwards from the end a block at
    a time (a long log is not read whole). A partial last line waits."""
    lines, _back, end = last_lines_placed(path, count, block)
    return lines, end


def last_lines_placed(path: Path, count: int, block: int = 1 << 20
                      ) -> tuple[list[str], list[int], int]:
    """``last_lines`` and, per line, how many complete lines of the file follow it (a view that
    numbers the file's lines places each one with it)."""
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        return [], [], 0
    kept: list[bytes] = []  # newest first
    back: list[int] = []
    seen = 0  # complete lines looked at, from the end
    later: set[str] = set()  # streams with an entry after the lines still to look at
    end: int | None = None  # the offset after the last complete line
    with fh:
        pos = fh.seek(0, os.SEEK_END)
        head = b""  # the first, maybe partial, line of the block read last
        while pos > 0 and (end is None or len(kept) < count):
            step = min(block, pos)
            pos -= step
            fh.seek(pos)
            data = fh.read(step) + head
            lines = data.split(b"\n")
            if end is None:
                if len(lines) == 1:  # no newline yet: read further back
                    head = data
                    continue
                end = pos + len(data) - len(lines.pop())
            head = lines.pop(0) if pos > 0 else b""
            for raw in reversed(lines):
                if len(kept) >= count:
                    break
                seen += 1
                tag, progress = _stream_tag(raw)
                stream = _SUPERSEDES_B.get(tag)
                if progress and stream in later:
                    continue  # superseded: a reader does not show it
                if stream is not None:
                    later.add(stream)
                kept.append(raw)
                back.append(seen - 1)
    if end is None:
        return [], [], 0
    return ([raw.decode("utf-8", errors="replace") for raw in reversed(kept)], back[::-1],
            end)


def iter_entries(path: Path) -> Iterator[LogEntry]:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                yield LogEntry.parse(line.rstrip("\n"))
    except FileNotFoundError:
        return


@dataclass(frozen=True)
class ResumePoint:
    """Where a reattached log stream picks up: per stream, the last timestamp written and how many
    lines carried exactly that timestamp (so a source that resends them can skip duplicates);
    with ``lines``, how many lines each stream has in the log, for a source whose timestamps
    are not the log's (a docker run read live through attach: its lines were stamped on arrival,
    later than the daemon's own stamps, so only a count says where the log stopped)."""

    last_ts: dict[str, str]
    count_at_last: dict[str, int]
    lines: dict[str, int] | None = None


def resume_point(path: Path, block: int = 1 << 20) -> ResumePoint:
    """Each stream's last timestamp in the log and how many lines carry it. Read backwards a
    block at a time, only as far as needed: until every stream's run of last-timestamp lines
    is behind us, or the start of the file (a stream not seen by then has nothing to skip)."""
    last: dict[str, str] = {}
    count: dict[str, int] = {}
    settled: set[str] = set()
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        return ResumePoint({}, {})
    with fh:
        end = fh.seek(0, os.SEEK_END)
        head = b""  # the first, maybe partial, line of the block read last
        tail_done = False
        while end > 0 and len(settled) < 2:
            start = max(0, end - block)
            fh.seek(start)
            lines = (fh.read(end - start) + head).split(b"\n")
            end = start
            if not tail_done:  # what follows the last newline was never a whole line
                if len(lines) == 1 and start > 0:
                    head = lines[0]  # no newline yet: read further back
                    continue
                lines.pop()
                tail_done = True
            head = lines.pop(0) if start > 0 else b""
            for raw in reversed(lines):
                entry = LogEntry.parse(raw.decode("utf-8", errors="replace"))
                # A metric record stands where its marker line was on stdout: it counts as that
                # line, so a resent marker is skipped too (and its metric never recorded twice).
                # A progress entry is a passing state, not a line: the lines resent after a
                # reattach give their own (a source replays them the same, see linesplit).
                stream = "out" if entry.stream == "met" else entry.stream
                if (entry.progress or stream not in ("out", "err") or not entry.ts
                        or stream in settled):
                    continue
                if stream not in last:
                    last[stream], count[stream] = entry.ts, 1
                elif entry.ts == last[stream]:
                    count[stream] += 1
                else:
                    settled.add(stream)
    return ResumePoint(last, count)


def line_counts(path: Path, block: int = 4 << 20) -> dict[str, int]:
    """How many lines each stream (``out``, a ``met`` record counting as the ``out`` line it
    was, ``err``) has in the log; progress entries and labdeck's notes are not lines of the
    script. Complete lines only (a partial last line was never given out)."""
    counts = {"out": 0, "err": 0}
    tag_re = re.compile(_TAG_PATTERN, re.MULTILINE)
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        return counts
    with fh:
        rest = b""
        while chunk := fh.read(block):
            data = rest + chunk
            cut = data.rfind(b"\n") + 1
            rest = data[cut:]
            for match in tag_re.finditer(data, 0, cut):
                counts["err" if match.group(1) == b"err" else "out"] += 1
    return counts


def reattach_point(path: Path) -> ResumePoint:
    """``resume_point`` with every stream's line count (``ResumePoint.lines``)."""
    point = resume_point(path)
    return ResumePoint(point.last_ts, point.count_at_last, line_counts(path))

