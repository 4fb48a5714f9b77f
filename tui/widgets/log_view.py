"""A run's log: tails the log file by byte offset, keeps a bounded window of lines.

The file on disk is the whole log; this widget keeps a window of ``window`` lines (the last ones
while it follows) and renders only what is on screen (Textual's line API), so a run that prints a
million lines costs a few reads per second, not a million widget writes. The window moves over
the whole file: scrolling past its top or bottom reads the next page where a ``LineIndex`` (a
newline count per 64 KiB block) says it starts, and Home (``g``) reads line 1 of any log, so
memory stays bounded however long the log. Search and filter scan the whole file in a worker
thread, not only the lines in the window.

Opening a log reads its last lines (bounded work) on the UI thread and counts the lines before
them in a worker thread (~0.1 s per 100 MB): the tail shows at once, numbered from 0 until the
count arrives and shifts every number by what it found (``Counted``). Moves that need true line
numbers (Home, the page above, search) wait for it.

A progress entry (``out~``: the latest state of a bar the script redraws, backends/logfile.py) is
shown at the bottom of its stream until the next entry of that stream supersedes it, so a bar
moves in place and the log keeps its last state. Each line in the window keeps its line number in
the file (``linenos``), which search results point at.
"""

from __future__ import annotations

import os
from array import array
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import BindingType
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.worker import get_current_worker

from backends.errors import one_line
from backends.logfile import PROGRESS_TAG, STREAMS, last_lines_placed, supersedes

from ..keymap import LOG_BINDINGS
from .link_state import LinkFacts, feed_lines
from .log_index import LineIndex, read_lines

WINDOW = 20_000  # lines kept in memory
CHUNK = 1 << 20  # bytes read per tick at most: bounds the work of one frame (keys stay quick)
TICK_S = 0.05  # 20 Hz
MAX_MATCHES = 100_000
COUNT_INLINE = 4 << 20  # bytes left to count that are counted on the UI thread (~4 ms)

TS_STYLE = Style(dim=True)
STREAM_STYLES = {
    "out": Style(),
    "err": Style(color="red"),
    "sys": Style(color="cyan", italic=True),
    "met": Style(color="green"),
}
GUTTER = {"out": " ", "err": "!", "sys": "·", "met": "◆"}
PROGRESS_GUTTER = "»"
MATCH_STYLE = Style(bgcolor="yellow", color="black")
CURRENT_STYLE = Style(reverse=True)


def split_line(raw: str) -> tuple[str, str, str]:
    """``<ts> <stream> <text>`` -> (ts, stream, text); a foreign line is stdout text; a
    progress entry's stream is its stream's (``out~`` -> ``out``)."""
    ts, _, rest = raw.partition(" ")
    stream, _, text = rest.partition(" ")
    if stream not in STREAMS:
        if stream[-1:] == PROGRESS_TAG and stream[:-1] in STREAMS:
            return ts, stream[:-1], text
        return "", "out", raw
    return ts, stream, text


def tag_of(raw: str) -> str:
    """The raw stream tag (``out``, ``out~``)."""
    return raw.partition(" ")[2].partition(" ")[0]


def is_progress(raw: str) -> bool:
    return tag_of(raw)[-1:] == PROGRESS_TAG


def matches(raw: str, needle: str) -> bool:
    """A line a filter or search finds (a passing progress state is not one)."""
    return needle in split_line(raw)[2].lower() and not is_progress(raw)


@dataclass
class ScanResult:
    lines: list[str]
    offsets: list[tuple[int, int]]  # (line number, byte offset) per match
    end: int  # byte offset the scan reached
    total: int  # lines in the file up to ``end``


def _cancelled() -> bool:
    """The current worker was cancelled (False outside a worker: tests, bench)."""
    try:
        return get_current_worker().is_cancelled
    except Exception:
        return False


def scan(path: Path, needle: str, end: int, keep: int, collect_lines: bool) -> ScanResult:
    """Every line up to ``end`` whose text contains ``needle`` (case-insensitive)."""
    worker = None
    try:
        worker = get_current_worker()
    except Exception:  # called outside a worker (tests, bench): no cancellation to honour
        worker = None
    lines: list[str] = []
    offsets: list[tuple[int, int]] = []
    offset = 0
    lineno = 0
    with open(path, "rb") as fh:
        for raw_b in fh:
            if offset >= end or not raw_b.endswith(b"\n"):
                break
            raw = raw_b.decode("utf-8", errors="replace")[:-1]
            if matches(raw, needle):
                if len(offsets) < MAX_MATCHES:
                    offsets.append((lineno, offset))
                if collect_lines:
                    lines.append(raw)
                    if len(lines) > keep * 2:
                        del lines[:-keep]
            offset += len(raw_b)
            lineno += 1
            if worker is not None and lineno % 50_000 == 0 and worker.is_cancelled:
                break
    return ScanResult(lines[-keep:], offsets, offset, lineno)


class LogView(ScrollView, can_focus=True):
    """The lines of one log file, live."""

    BINDINGS: ClassVar[list[BindingType]] = [*LOG_BINDINGS]
    DEFAULT_CSS = """
    LogView { background: $surface; }
    """

    follow: reactive[bool] = reactive(True)
    wrap: reactive[bool] = reactive(False)
    timestamps: reactive[bool] = reactive(False)

    def __init__(self, path: Path | None = None, *, window: int = WINDOW, poll: bool = True,
                 name: str | None = None, id: str | None = None, classes: str | None = None):
        super().__init__(name=name, id=id, classes=classes)
        self.window = window
        self.poll = poll
        self.path: Path | None = None
        self.index: LineIndex | None = None
        self.lines: list[str] = []
        self.linenos: list[int] = []  # file line number of each line (tail and anchored modes)
        self.first_lineno = 0  # of lines[0]
        self._progress: dict[str, int] = {}  # per stream, the index of its progress entry
        self.byte_offset = 0  # bytes consumed from the file
        self.total = 0  # complete lines in the file up to ``offset``
        self.filter_text: str | None = None
        self.search_text: str | None = None
        self.search_hits: list[tuple[int, int]] = []
        self.search_index = -1
        self.current_line: int | None = None  # file line number of the highlighted match
        self.anchored = False  # showing lines around a match; tailing paused
        self.scanning = False
        self._max_width = 0
        self._rows: list[tuple[int, int]] | None = None  # wrap layout: (line index, start)
        self._rows_width = 0
        self._programmatic = False
        self._initial_path = path
        self.counting: int | None = None  # the open count's token (lines numbered from 0)
        self.link = LinkFacts()  # a remote run's SSH link and sync, as its sys lines say
        self._count_token = 0
        self._after_count: list[Callable[[], object]] = []  # moves waiting for the count

    # ------------------------------------------------------------------ lifecycle

    def on_mount(self) -> None:
        if self._initial_path is not None:
            self.set_path(self._initial_path)
        if self.poll:
            self.set_interval(TICK_S, self.tick, name="log-tail")

    def set_path(self, path: Path | None) -> None:
        """Show another file from its tail (the run changed)."""
        self.path = path
        self.link = LinkFacts()
        self.index = LineIndex(path) if path is not None else None
        self.filter_text = None
        self.search_text = None
        self.search_hits = []
        self.search_index = -1
        self.current_line = None
        self.follow = True
        self.load_tail()

    def load_tail(self) -> None:
        self.anchored = False
        self.counting = None
        self._after_count = []
        if self.path is None or self.index is None:
            self._replace([], [], 0, 0)
            return
        lines, back, end = last_lines_placed(self.path, self.window)
        if end - self.index.indexed <= COUNT_INLINE:
            total = self.index.lines_before(end) if end else 0
        else:  # numbered from 0 until the worker has counted the lines before ``end``
            total = max(back) + 1 if back else 0
            self._count_token += 1
            self.counting = self._count_token
            self._count_in_worker(self.path, end, total, self.counting)
        self._replace(lines, [total - 1 - b for b in back], end, total)
        feed_lines(self.link, [line for line in lines if " sys " in line])
        self.scroll_to_end()

    @dataclass
    class Counted(Message):
        """The lines before ``end`` of ``path``, counted by a worker thread."""

        token: int
        path: Path
        assumed: int  # the count the view numbered its lines by meanwhile
        total: int
        index: LineIndex

    def _count_in_worker(self, path: Path, end: int, assumed: int, token: int) -> None:
        seed = array("q", self.index.counts) if self.index is not None else None

        def count() -> None:
            index = LineIndex(path)
            if seed is not None:
                index.counts = seed
            total = index.lines_before(end)  # refused (False) once the view is gone
            self.post_message(self.Counted(token, path, assumed, total, index))

        self.run_worker(count, thread=True, exclusive=True, group="log-count",
                        name="log-count", exit_on_error=False)

    def on_log_view_counted(self, message: LogView.Counted) -> None:
        message.stop()
        if message.token != self.counting or message.path != self.path:
            return  # another log, or this one opened again since
        self.counting = None
        self.index = message.index
        shift = message.total - message.assumed
        if self.filter_text is None:  # filtered lines are numbered by the filter's scan
            self.linenos = [n + shift for n in self.linenos]
            self.first_lineno += shift
            self.total += shift
        waiting, self._after_count = self._after_count, []
        for move in waiting:
            move()
        self.refresh()

    def _when_counted(self, move: Callable[[], object]) -> bool:
        """True (and ``move`` kept for later) while the lines are being counted."""
        if self.counting is None:
            return False
        self._after_count.append(move)
        return True

    # ------------------------------------------------------------------ paging

    def load_page(self, first: int) -> None:
        """Show the window of lines from line ``first`` (0-based) of the file; tailing pauses
        unless the page reaches the end read so far."""
        if self.path is None or self.index is None or self.filter_text is not None:
            return
        if self._when_counted(lambda: self.load_page(first)):
            return
        first = max(0, min(first, max(0, self.total - self.window)))
        try:
            self.index.update(self.byte_offset)
            offset = self.index.offset_of(first)
            lines, after = read_lines(self.path, offset, self.window, self.byte_offset)
        except OSError:
            return
        self.anchored = after < self.byte_offset
        self.follow = False
        self.lines, self.linenos, self._progress = [], [], {}
        self._absorb(lines, range(first, first + len(lines)))
        self.first_lineno = first
        self._max_width = max(map(len, lines), default=0)
        self._rows = None
        self._update_size()
        self.refresh()

    def _index_of_line(self, lineno: int) -> int:
        return min(bisect_left(self.linenos, lineno), max(0, len(self.lines) - 1))

    def page_up(self) -> bool:
        """The window moves half a window up, the line at the top staying in place."""
        if self.first_lineno <= 0 or self.filter_text is not None or not self.lines \
                or self.counting is not None:  # the page above waits for the count
            return False
        top = self.linenos[self._index_of_row(round(self.scroll_y))]
        self.load_page(self.first_lineno - self.window // 2)
        self._scroll_top_to(self._index_of_line(top))
        return True

    def page_down(self) -> bool:
        """The window moves half a window down (only while it does not hold the end)."""
        if not self.anchored or self.filter_text is not None or not self.lines:
            return False
        top = self.linenos[self._index_of_row(round(self.scroll_y))]
        self.load_page(self.first_lineno + self.window // 2)
        self._scroll_top_to(self._index_of_line(top))
        return True

    def _index_of_row(self, row: int) -> int:
        if self.wrap:
            self._ensure_rows()
            rows = self._rows or []
            return rows[min(row, len(rows) - 1)][0] if rows else 0
        return max(0, min(row, len(self.lines) - 1))

    def _scroll_top_to(self, local: int) -> None:
        row = local
        if self.wrap:
            self._ensure_rows()
            row = next((r for r, (i, _b) in enumerate(self._rows or []) if i == local), 0)
        self._programmatic = True
        self.scroll_to(y=row, animate=False, immediate=True, force=True)
        self._programmatic = False

    def action_scroll_home(self) -> None:
        """Line 1 of the log, however long."""
        if self.filter_text is None and self._when_counted(self.action_scroll_home):
            return
        if self.filter_text is None and self.first_lineno > 0:
            self.load_page(0)
        self.follow = False
        self._scroll_top_to(0)
        self.refresh()

    def action_line_up(self) -> None:
        if round(self.scroll_y) <= 0:
            self.page_up()
        self._user_scroll(-1)

    def action_line_down(self) -> None:
        if round(self.scroll_y) >= self.max_scroll_y:
            self.page_down()
        self._user_scroll(1)

    def action_page_up_lines(self) -> None:
        if round(self.scroll_y) - self.scrollable_content_region.height < 0:
            self.page_up()
        self._user_scroll(-self.scrollable_content_region.height)

    def action_page_down_lines(self) -> None:
        if round(self.scroll_y) + self.scrollable_content_region.height > self.max_scroll_y:
            self.page_down()
        self._user_scroll(self.scrollable_content_region.height)

    def _user_scroll(self, rows: int) -> None:
        self.scroll_to(y=max(0, round(self.scroll_y) + rows), animate=False, immediate=True,
                       force=True)

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        if round(self.scroll_y) <= 0:
            self.page_up()

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        if round(self.scroll_y) >= self.max_scroll_y:
            self.page_down()

    def _replace(self, lines: list[str], linenos: list[int], offset: int, total: int) -> None:
        self.lines = []
        self.linenos = []
        self._progress = {}
        self._absorb(lines, linenos)
        self.first_lineno = self.linenos[0] if self.linenos else total
        self.byte_offset = offset
        self.total = total
        self._max_width = max(map(len, lines), default=0)
        self._rows = None
        self._update_size()
        self.refresh()

    def _absorb(self, raws: list[str], linenos: list[int] | range) -> bool:
        """Append lines; a progress entry pending for a line's stream leaves (superseded).
        True when a line left the middle of the window (the wrap layout is then stale)."""
        if not self._progress and not any(PROGRESS_TAG in tag_of(raw) for raw in raws):
            self.lines.extend(raws)  # nearly always: no progress bar anywhere
            self.linenos.extend(linenos)
            return False
        removed = False
        for raw, lineno in zip(raws, linenos, strict=True):
            tag = tag_of(raw)
            progress = tag[-1:] == PROGRESS_TAG
            base = supersedes(tag[:-1] if progress else tag)
            if base is not None:
                index = self._progress.pop(base, None)
                if index is not None:
                    del self.lines[index]
                    del self.linenos[index]
                    self._progress = {k: i - (i > index) for k, i in self._progress.items()}
                    removed = True
                if progress:
                    self._progress[base] = len(self.lines)
            self.lines.append(raw)
            self.linenos.append(lineno)
        return removed

    # ------------------------------------------------------------------ ingest

    def tick(self) -> int:
        """Read what the file gained since the last tick; returns the lines read."""
        if self.path is None or self.anchored or self.scanning:
            return 0
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.byte_offset)
                data = fh.read(CHUNK)
        except OSError:
            return 0
        end = data.rfind(b"\n")
        if end < 0:
            return 0
        data = data[: end + 1]
        self.byte_offset += len(data)
        count = data.count(b"\n")
        self.total += count
        text = data.decode("utf-8", errors="replace")
        if " sys " in text:  # a remote run's link and sync state
            feed_lines(self.link, [line for line in text.split("\n") if " sys " in line])
        first = self.total - count
        if self.filter_text is not None:  # window indexes, not line numbers, in this mode
            needle = self.filter_text
            new = [raw for raw in text.split("\n")[:-1] if matches(raw, needle)]
            numbers: list[int] | range | None = None  # going on from the window's last
        elif count > self.window:  # far behind: only the last window's worth is shown
            new = text.split("\n")[:-1][-self.window:]
            numbers = range(self.total - len(new), self.total)
        else:
            new = text.split("\n")[:-1]
            numbers = range(first, self.total)
        if new:
            self.append(new, numbers)
        return count

    def append(self, new: list[str], numbers: list[int] | range | None = None) -> None:
        before = len(self.lines)
        if numbers is None:
            last = self.linenos[-1] + 1 if self.linenos else 0
            numbers = range(last, last + len(new))
        if self._absorb(new, numbers):
            self._rows = None
        self._max_width = max(self._max_width, max(map(len, new)))
        dropped = 0
        if len(self.lines) > self.window + self.window // 10:
            dropped = len(self.lines) - self.window
            del self.lines[:dropped]
            del self.linenos[:dropped]
            self._progress = {k: i - dropped for k, i in self._progress.items() if i >= dropped}
            self._rows = None
        elif self._rows is not None:
            self._extend_rows(before)
        self.first_lineno = self.linenos[0] if self.linenos else self.total
        self._update_size()
        if self.follow:
            self.scroll_to_end()
        elif dropped:
            self._programmatic = True
            self.scroll_to(y=max(0, self.scroll_y - dropped), animate=False, immediate=True)
            self._programmatic = False
        self.refresh()

    # ------------------------------------------------------------------ layout

    def _prefix_len(self) -> int:
        return 2 + (28 if self.timestamps else 0)

    def _update_size(self) -> None:
        if self.wrap:
            self._ensure_rows()
            rows = self._rows or []
            self.virtual_size = Size(self.scrollable_content_region.width, len(rows))
        else:
            self.virtual_size = Size(self._max_width + self._prefix_len(), len(self.lines))

    def _text_width(self) -> int:
        return max(10, self.scrollable_content_region.width - self._prefix_len())

    def _ensure_rows(self) -> None:
        width = self._text_width()
        if self._rows is None or self._rows_width != width:
            self._rows = []
            self._rows_width = width
            self._extend_rows(0)

    def _extend_rows(self, start: int) -> None:
        assert self._rows is not None
        width = self._rows_width
        for index in range(start, len(self.lines)):
            length = len(split_line(self.lines[index])[2])
            for begin in range(0, max(length, 1), width):
                self._rows.append((index, begin))

    def on_resize(self) -> None:
        self._rows = None
        self._update_size()
        if self.follow:
            self.scroll_to_end()

    def watch_wrap(self) -> None:
        self._rows = None
        self._update_size()
        if self.follow:
            self.scroll_to_end()
        self.refresh()

    def watch_timestamps(self) -> None:
        self.watch_wrap()

    def scroll_to_end(self) -> None:
        self._programmatic = True
        # force: a view that held a short log has no vertical scrollbar until the next layout,
        # and without one Textual ignores the scroll (a long log opened at its first line).
        self.scroll_to(y=self.max_scroll_y, animate=False, immediate=True, force=True)
        self._programmatic = False

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        # The user scrolled up: stop following. A window that shrank clamps the offset to its
        # new end (new == max_scroll_y): still at the end, still following.
        if not self._programmatic and new < old and new < self.max_scroll_y and self.follow:
            self.follow = False
        if not self._programmatic and not self.follow and self.filter_text is None:
            if new <= 0 < old:
                self.call_later(self.page_up)  # scrolled to the window's top: the page above
            elif old < new >= self.max_scroll_y and self.anchored:
                self.call_later(self.page_down)

    # ------------------------------------------------------------------ render

    def render_line(self, y: int) -> Strip:
        index = round(self.scroll_y) + y
        width = self.scrollable_content_region.width
        if self.wrap:
            self._ensure_rows()
            rows = self._rows or []
            if index >= len(rows):
                return Strip.blank(width, self.rich_style)
            line_index, begin = rows[index]
            strip = self._line_strip(line_index, begin, begin + self._rows_width, begin == 0)
            return strip.crop_extend(0, width, self.rich_style)
        if index >= len(self.lines):
            return Strip.blank(width, self.rich_style)
        strip = self._line_strip(index, 0, None, True)
        scroll_x = round(self.scroll_x)
        return strip.crop_extend(scroll_x, scroll_x + width, self.rich_style)

    def _line_strip(self, index: int, begin: int, end: int | None, first: bool) -> Strip:
        raw = self.lines[index]
        ts, stream, text = split_line(raw)
        style = STREAM_STYLES.get(stream, Style())
        lineno = self.linenos[index] if index < len(self.linenos) else -1
        current = self.current_line is not None and lineno == self.current_line
        segments: list[Segment] = []
        gutter = (PROGRESS_GUTTER if is_progress(raw) else GUTTER.get(stream, " ")) if first \
            else " "
        segments.append(Segment(gutter + " ", style))
        if self.timestamps:
            segments.append(Segment((ts if first else "").ljust(27) + " ", TS_STYLE))
        piece = text[begin:end]
        segments += self._highlight(piece, style)
        if current:
            segments = [Segment(s.text, (s.style or Style()) + CURRENT_STYLE) for s in segments]
        return Strip(segments)

    def _highlight(self, text: str, style: Style) -> list[Segment]:
        needle = self.search_text
        if not needle:
            return [Segment(text, style)]
        lower = text.lower()
        out: list[Segment] = []
        pos = 0
        while True:
            hit = lower.find(needle, pos)
            if hit < 0:
                break
            if hit > pos:
                out.append(Segment(text[pos:hit], style))
            out.append(Segment(text[hit:hit + len(needle)], style + MATCH_STYLE))
            pos = hit + len(needle)
        out.append(Segment(text[pos:], style))
        return out

    # ------------------------------------------------------------------ search and filter

    def apply_filter(self, text: str | None) -> None:
        """Show only lines containing ``text`` (whole file); None shows everything again."""
        needle = text.lower() if text else None
        self.filter_text = needle
        self.current_line = None
        if needle is None:
            self.load_tail()
            return
        if self.path is None:
            return
        self.scanning = True
        path = self.path  # attributes go down: the thread never reads the view's state
        self.run_worker(lambda: self._scan_filter(path, needle), thread=True, exclusive=True,
                        group="log-scan", name="log-filter", exit_on_error=False)

    @dataclass
    class Scanned(Message):
        """A filter's or a search's scan of the whole log, done by a worker thread."""

        kind: str  # "filter" or "search"
        needle: str
        result: ScanResult | None
        error: Exception | None = None  # the filter's scan broke

    def _scan_filter(self, path: Path, needle: str) -> None:
        try:
            result = scan(path, needle, os.path.getsize(path), self.window, True)
        except Exception as err:  # the view must not stay "filtering…" (and frozen) for good
            self.post_message(self.Scanned("filter", needle, None, err))
            return
        if _cancelled():
            return  # a newer scan replaced it, or the view closed: its lines are a part only
        # Messages, never call_from_thread: that waits for the UI, which never comes once the
        # app quits (the thread hangs, or raises). post_message is refused once the view is gone.
        self.post_message(self.Scanned("filter", needle, result))

    def on_log_view_scanned(self, message: LogView.Scanned) -> None:
        message.stop()
        if not self.is_attached:
            return
        if message.kind == "search":
            assert message.result is not None
            self._search_done(message.needle, message.result)
        elif message.result is None:
            self._filter_failed(message.needle, message.error or OSError("the scan failed"))
        else:
            self._filter_done(message.needle, message.result)

    def _filter_failed(self, needle: str, err: Exception) -> None:
        """The scan broke (the log went away, a read error): show the whole log again and
        say why; tailing goes on."""
        self.scanning = False
        if self.filter_text != needle:
            return
        self.filter_text = None
        self.app.notify(f"filter {needle!r} failed: {one_line(err)}", severity="error")
        self.load_tail()

    def _filter_done(self, needle: str, result: ScanResult) -> None:
        self.scanning = False
        if self.filter_text != needle:
            return
        self.anchored = False
        self._replace(result.lines, list(range(len(result.lines))), result.end, result.total)
        self.follow = True
        self.scroll_to_end()

    def search(self, text: str | None) -> None:
        """Find ``text`` in the whole file; jumps to the last match (nearest the end)."""
        needle = text.lower() if text else None
        self.search_text = needle
        self.search_hits = []
        self.search_index = -1
        self.current_line = None
        self.refresh()
        if needle is None or self.path is None:
            return
        if self.filter_text is None and self._when_counted(lambda: self._search_again(needle)):
            return  # hits are true line numbers: wait for the count
        if self.filter_text is not None:  # the window holds the filtered lines: search those
            hits = [(i, -1) for i, raw in enumerate(self.lines) if matches(raw, needle)]
            self._search_done(needle, ScanResult([], hits, self.byte_offset, self.total))
            return
        end = self.byte_offset
        path = self.path
        self.run_worker(lambda: self._scan_search(path, needle, end), thread=True,
                        exclusive=True, group="log-scan", name="log-search", exit_on_error=False)

    def _search_again(self, needle: str) -> None:
        if self.search_text == needle:
            self.search(needle)

    def _scan_search(self, path: Path, needle: str, end: int) -> None:
        result = scan(path, needle, end, 0, False)
        if not _cancelled():  # else its hits are a part only
            self.post_message(self.Scanned("search", needle, result))

    def _search_done(self, needle: str, result: ScanResult) -> None:
        if self.search_text != needle:
            return
        self.search_hits = result.offsets
        if self.search_hits:
            self.goto_match(len(self.search_hits) - 1)
        else:
            self.notify(f"no line contains {needle!r}", severity="warning")
        self.refresh()

    def goto_match(self, index: int) -> None:
        if not self.search_hits:
            return
        index %= len(self.search_hits)
        self.search_index = index
        lineno, offset = self.search_hits[index]
        if self.filter_text is not None:  # hits are window indexes
            self.current_line = self.first_lineno + lineno
            self._scroll_to_index(lineno)
            return
        self.current_line = lineno
        if not self.linenos or not self.linenos[0] <= lineno <= self.linenos[-1]:
            self._anchor_at(lineno, offset)
        # a superseded progress entry is not in the window: the line shown after it
        local = bisect_left(self.linenos, lineno)
        self._scroll_to_index(min(local, max(0, len(self.lines) - 1)))

    def _anchor_at(self, lineno: int, offset: int) -> None:
        """Load the lines around a match that left the window; tailing pauses."""
        assert self.path is not None
        half = self.window // 2
        start = max(0, offset - half * 120)
        with open(self.path, "rb") as fh:
            fh.seek(start)
            data = fh.read(offset - start + half * 200)
        if start > 0:
            cut = data.find(b"\n") + 1
            data = data[cut:]
            start += cut
        before = data[: offset - start].count(b"\n")
        end = data.rfind(b"\n")
        lines = data[: end + 1].decode("utf-8", errors="replace").split("\n")[:-1]
        lines = lines[: self.window]
        self.anchored = True
        self.follow = False
        self.lines, self.linenos, self._progress = [], [], {}
        self._absorb(lines, range(lineno - before, lineno - before + len(lines)))
        self.first_lineno = self.linenos[0] if self.linenos else lineno
        self._max_width = max(map(len, lines), default=0)
        self._rows = None
        self._update_size()

    def _scroll_to_index(self, local: int) -> None:
        self.follow = False
        row = local
        if self.wrap:
            self._ensure_rows()
            rows = self._rows or []
            row = next((r for r, (i, _b) in enumerate(rows) if i == local), 0)
        self._programmatic = True
        self.scroll_to(y=max(0, row - self.scrollable_content_region.height // 2),
                       animate=False, immediate=True)
        self._programmatic = False
        self.refresh()

    # ------------------------------------------------------------------ actions

    @dataclass
    class InputRequested(Message):
        """The user asked to type a search or filter (the panel owns the input)."""

        mode: str

    def action_search(self) -> None:
        self.post_message(self.InputRequested("search"))

    def action_filter(self) -> None:
        self.post_message(self.InputRequested("filter"))

    def action_clear(self) -> None:
        if self.search_text:
            self.search(None)
        elif self.filter_text is not None:
            self.apply_filter(None)

    def action_follow(self) -> None:
        if self.anchored:
            if self.filter_text is not None:
                self.apply_filter(self.filter_text)
            else:
                self.load_tail()
        self.current_line = None
        self.follow = True
        self.scroll_to_end()
        self.refresh()

    def action_toggle_wrap(self) -> None:
        self.wrap = not self.wrap

    def action_toggle_timestamps(self) -> None:
        self.timestamps = not self.timestamps

    def action_next_match(self) -> None:
        self.goto_match(self.search_index + 1)

    def action_prev_match(self) -> None:
        self.goto_match(self.search_index - 1)

    def action_scroll_end(self) -> None:
        self.action_follow()

    def status_text(self) -> str:
        parts = [f"{self.total:,} lines"]
        if self.counting is not None:
            parts[0] = "counting lines…"
        elif self.lines and self.filter_text is None and not self.follow:
            top = self.linenos[self._index_of_row(round(self.scroll_y))] + 1
            parts[0] = f"line {top:,} of {self.total:,}"
        if self.anchored:
            parts.append("paused at a match (f: follow)")
        else:
            parts.append("following" if self.follow else "paused (f: follow)")
        if self.filter_text is not None:
            parts.append("filtering…" if self.scanning else
                         f"filter {self.filter_text!r}: {len(self.lines):,} shown")
        if self.search_text:
            found = len(self.search_hits)
            where = f"{self.search_index + 1}/{found}" if found else "0"
            parts.append(f"search {self.search_text!r} {where}")
        if self.wrap:
            parts.append("wrap")
        return " · ".join(parts)

