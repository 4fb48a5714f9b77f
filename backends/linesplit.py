"""Bytes of one output stream -> lines, without I/O (the shape of docker/http.py): every target's
handle reads its bytes its own way (a pipe, a container's log frames, an SSH channel) and feeds
them here, so they all split, decode, cap and treat carriage returns alike.

- Linear: each byte is scanned once; a partial line waits in a buffer that only grows.
- UTF-8 is decoded per complete line, so a character split across two reads survives; invalid
  bytes become U+FFFD.
- A line longer than ``MAX_LINE`` bytes (1 MiB) is given out in pieces of exactly that size, cut
  before a UTF-8 sequence rather than through it, so that memory stays bounded and joining the
  pieces gives back the text. 1 MiB keeps any sane line, and a metric record of a long series,
  whole.
- ``\\r\\n`` ends a line. A lone ``\\r`` returns to the start of the line (a progress bar):
  what follows replaces what was there. While such a line goes on, its latest state is given out
  as a *progress* item (``PROGRESS`` + text), at most once per ``PROGRESS_EVERY_S``, so that a
  bar redrawn 1,000 times a second costs a few items, not a thousand. When the line ends, its
  final state (the last one that was not blank) is given out as an ordinary line. A progress item
  is always superseded by the next item of its stream: the log keeps the last state of a bar,
  and a live view shows the bar moving (logfile.py records it, its readers honour it).
"""

from __future__ import annotations

import re

MAX_LINE = 1 << 20
PROGRESS = "\r"  # an item starting with it is a progress state; lines never hold a \r
PROGRESS_EVERY_S = 0.2
_SEPARATOR = re.compile(rb"[\r\n]")


def cut_point(data: bytes | bytearray, cap: int, start: int = 0) -> int:
    """Where to cut ``data[start:]`` (longer than ``cap``): at most ``cap`` bytes in, and not
    inside a UTF-8 sequence (continuation bytes are 10xxxxxx; a sequence is at most 4 bytes)."""
    cut = start + cap
    while cut > start + cap - 3 and (data[cut] & 0xC0) == 0x80:
        cut -= 1
    return cut if (data[cut] & 0xC0) != 0x80 else start + cap  # not UTF-8: cut anywhere


def _decode(data: bytes | bytearray) -> str:
    return data.decode("utf-8", "replace")


class LineSplitter:
    """``feed(bytes, now)`` -> items; ``tick(now)`` -> a progress state that has become due;
    ``flush()`` at the end of the stream. ``now`` is any clock in seconds (the supervisor's
    monotonic clock, or the source's own timestamps, which replay the same on a reattach)."""

    def __init__(self, cap: int = MAX_LINE, progress_every: float = PROGRESS_EVERY_S):
        self.cap = cap
        self.progress_every = progress_every
        self._buf = bytearray()  # the line's current state: what follows its last \r
        self._cr = False  # the line has had a \r: its states replace each other
        self._last_state = b""  # its last non-blank state before the current one
        self._shown = b""  # the state last given out as progress
        self._next_show = float("-inf")
        self._ends_cr = False  # the last feed ended with a \r: a \n may follow (\r\n)

    def pending(self) -> bool:
        """A line has begun and not ended."""
        return bool(self._buf) or self._cr

    def feed(self, data: bytes, now: float = 0.0) -> list[str]:
        if not data:
            return []
        if not self._cr and b"\r" not in data:
            return self._feed_plain(data)
        out: list[str] = []
        start = 0
        for match in _SEPARATOR.finditer(data):
            end = match.start()
            self._add(data[start:end], out)
            start = end + 1
            if data[end] == 0x0A:  # \n: the line ends
                self._end_line(out)
            else:  # \r: the state so far is finished, the next one overwrites it
                if self._buf.strip():
                    self._last_state = bytes(self._buf)
                self._buf.clear()
                self._cr = True
        self._add(data[start:], out)
        self._ends_cr = data[-1] == 0x0D
        out += self.tick(now)
        return out

    def tick(self, now: float) -> list[str]:
        """The line's latest state as a progress item, when it has one not yet given out and
        its time has come; else nothing. Call it when the source is quiet, too."""
        if not self._cr or self._ends_cr or now < self._next_show:
            return []
        state = bytes(self._buf) if self._buf.strip() else self._last_state
        if not state or state == self._shown:
            return []
        self._shown = state
        self._next_show = now + self.progress_every
        return [PROGRESS + _decode(state)]

    def due(self) -> float | None:
        """When ``tick`` may next give something out (None: nothing is waiting)."""
        if not self._cr or self._ends_cr:
            return None
        state = bytes(self._buf) if self._buf.strip() else self._last_state
        return self._next_show if state and state != self._shown else None

    def flush(self) -> list[str]:
        """The end of the stream: the unfinished line, if any, is a line."""
        out: list[str] = []
        if self._buf or self._last_state:
            self._end_line(out)
        return out

    def feed_block(self, data: bytes) -> bytes | None:
        """``feed`` for plain output, without making a ``str`` per line: the complete lines
        now at hand (what was pending first), each ending with its newline, as bytes that are
        valid UTF-8 (b"": no line ended yet). None, having taken nothing, when ``data`` needs
        ``feed``'s care: a ``\r`` (now or pending), a line that may be over the cap, bytes
        that are not UTF-8 (``feed`` replaces them)."""
        if self._cr or b"\r" in data or len(self._buf) + len(data) > self.cap:
            return None
        last = data.rfind(b"\n")
        if last < 0:
            self._buf += data
            return b""
        head = bytes(self._buf) + data[:last + 1] if self._buf else data[:last + 1]
        if not head.isascii():
            try:
                head.decode("utf-8")
            except UnicodeDecodeError:
                return None
        self._buf.clear()
        self._buf += data[last + 1:]
        return head

    def _feed_plain(self, data: bytes) -> list[str]:
        """No \\r in sight (nearly all output): split by C code, decode once per read."""
        last = data.rfind(b"\n")
        if last < 0:
            self._buf += data
            return self._cut([]) if len(self._buf) > self.cap else []
        if self._buf:
            self._buf += data[:last]
            head = bytes(self._buf)
            self._buf.clear()
        else:
            head = data[:last]
        self._buf += data[last + 1:]
        if len(head) <= self.cap:
            lines = _decode(head).split("\n")
        else:  # some line may be over the cap: cut those (bytes, as the buffer is cut)
            lines = [_decode(piece) for line in head.split(b"\n") for piece in self._pieces(line)]
        if len(self._buf) > self.cap:
            self._cut(lines)
        return lines

    def _pieces(self, data: bytes) -> list[bytes]:
        pieces = []
        start = 0
        while len(data) - start > self.cap:
            cut = cut_point(data, self.cap, start)
            pieces.append(data[start:cut])
            start = cut
        pieces.append(data[start:])
        return pieces

    def _add(self, data: bytes, out: list[str]) -> None:
        if data:
            self._buf += data
            if len(self._buf) > self.cap:
                self._cut(out)

    def _cut(self, out: list[str]) -> list[str]:
        """Give out the buffer's cap-sized pieces (a line that long is a log of its own)."""
        while len(self._buf) > self.cap:
            cut = cut_point(self._buf, self.cap)
            out.append(_decode(self._buf[:cut]))
            del self._buf[:cut]
            self._cr, self._last_state, self._shown = False, b"", b""
        return out

    def _end_line(self, out: list[str]) -> None:
        state = bytes(self._buf)
        if self._cr and not state.strip():
            state = self._last_state or state  # "bar\r\n", or a bar cleared at its end
        out.append(_decode(state))
        self._buf.clear()
        self._cr, self._last_state, self._shown = False, b"", b""
        self._next_show = float("-inf")
