"""Where each line of a log file starts, without keeping an offset per line (Toolong's idea).

The index keeps, per 64 KiB block of the file, how many newlines come before it: 10,000,000 lines
(~300 MB) are ~5,000 integers. A line's offset is found by bisecting the counts and counting
newlines inside one block. The file only grows (a run's log is append-only), so bytes already
indexed are never read again for the index; blocks are indexed up to the offset a reader asks
for (``update``), the last partial block counted on each question and never stored.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from pathlib import Path

BLOCK = 1 << 16


class LineIndex:
    def __init__(self, path: Path, block: int = BLOCK):
        self.path = path
        self.block = block
        self.counts = array("q", [0])  # newlines before block i (i * block bytes)

    @property
    def indexed(self) -> int:
        """Bytes covered by whole blocks."""
        return (len(self.counts) - 1) * self.block

    def update(self, end: int) -> None:
        """Index the whole blocks before ``end`` (a line boundary the reader has seen)."""
        if end - self.indexed < self.block:
            return
        with open(self.path, "rb") as fh:
            fh.seek(self.indexed)
            while end - self.indexed >= self.block:
                data = fh.read(self.block)
                if len(data) < self.block:
                    break
                self.counts.append(self.counts[-1] + data.count(b"\n"))

    def lines_before(self, end: int) -> int:
        """Complete lines in the file's first ``end`` bytes."""
        self.update(end)
        start = self.indexed
        total = self.counts[-1]
        if end > start:
            with open(self.path, "rb") as fh:
                fh.seek(start)
                total += fh.read(end - start).count(b"\n")
        return total

    def offset_of(self, line: int) -> int:
        """The byte offset where line ``line`` (0-based) starts; the file's size past its end."""
        if line <= 0:
            return 0
        # The block holding the line-th newline: the last whose count before it is < line.
        b = bisect_left(self.counts, line) - 1
        pos = b * self.block
        need = line - self.counts[b]
        with open(self.path, "rb") as fh:
            fh.seek(pos)
            while True:
                data = fh.read(self.block)
                if not data:
                    return pos
                found = data.count(b"\n")
                if found >= need:
                    at = -1
                    for _ in range(need):
                        at = data.find(b"\n", at + 1)
                    return pos + at + 1
                need -= found
                pos += len(data)


def read_lines(path: Path, offset: int, count: int, end: int) -> tuple[list[str], int]:
    """Up to ``count`` complete lines from ``offset``, not past ``end``; the offset after them."""
    lines: list[str] = []
    pos = offset
    with open(path, "rb") as fh:
        fh.seek(offset)
        while len(lines) < count and pos < end:
            raw = fh.readline(max(1, end - pos))
            if not raw.endswith(b"\n"):
                break
            pos += len(raw)
            lines.append(raw[:-1].decode("utf-8", errors="replace"))
    return lines, pos
