"""A batch of plain lines kept as the bytes they were read as (a handle's fast path).

Most output is plain text: UTF-8, no ``\\r``, lines far under the cap. For such a read the line
splitter (``LineSplitter.feed_block``) hands back its complete lines as one block of bytes; the
supervisor writes the block to the log with one ``replace`` (``LogWriter.write_block``) unless it
holds a metric marker, and nothing is decoded or split into a million ``str`` on the way. Code
that wants the lines still gets them from ``lines``, decoded when asked.
"""

from __future__ import annotations

from .base import LogBatch

_setattr = object.__setattr__


class RawBatch(LogBatch):
    """``block``: complete lines, each ending with its newline, valid UTF-8, none holding a
    ``\\r``; ``lines`` decodes them (as ``LogBatch.lines``, without the newlines)."""

    block: bytes

    def __init__(self, stream: str, block: bytes, ts: float | None = None):
        _setattr(self, "stream", stream)
        _setattr(self, "block", block)
        _setattr(self, "ts", ts)
        _setattr(self, "stamps", None)

    @property
    def lines(self) -> list[str]:
        return self.block[:-1].decode("utf-8", "replace").split("\n") if self.block else []

    def __repr__(self) -> str:
        return f"RawBatch({self.stream!r}, {len(self.block)} bytes, ts={self.ts!r})"


def merged(a: LogBatch, b: LogBatch) -> LogBatch | None:
    """One batch of two a handle read in a row from one stream; None when they cannot be one
    (other streams, raw bytes beside decoded lines, lines with daemon stamps beside lines
    without)."""
    if a.stream != b.stream:
        return None
    if isinstance(a, RawBatch) and isinstance(b, RawBatch):
        return RawBatch(a.stream, a.block + b.block, a.ts)
    if isinstance(a, RawBatch) or isinstance(b, RawBatch):
        return None
    if (a.stamps is None) != (b.stamps is None):
        return None
    a.lines.extend(b.lines)
    if a.stamps is not None and b.stamps is not None:
        a.stamps.extend(b.stamps)
    return a
