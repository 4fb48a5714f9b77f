"""The log widget: bounded window, whole-file search and filter, follow, wrap, streams."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.app import App, ComposeResult

from backends.logfile import format_ts
from tui.widgets.log_panel import LogPanel
from tui.widgets.log_view import LogView, split_line

from .helpers import until


def write_log(path: Path, n: int, start: int = 0) -> None:
    with open(path, "a") as fh:
        for i in range(start, start + n):
            stream = "err" if i % 10 == 0 else "out"
            fh.write(f"{format_ts(1_767_225_600 + i)} {stream} line {i}\n")


class Host(App[None]):
    def __init__(self, path: Path, window: int = 100):
        super().__init__()
        self.path = path
        self.window = window

    def compose(self) -> ComposeResult:
        yield LogPanel(self.path, id="panel")

    def on_mount(self) -> None:
        self.query_one(LogView).window = self.window
        self.query_one(LogView).load_tail()


async def test_window_is_bounded_and_no_line_is_lost(tmp_path: Path) -> None:
    path = tmp_path / "log"
    write_log(path, 50)
    app = Host(path, window=100)
    async with app.run_test(size=(80, 24)) as pilot:
        view = app.query_one(LogView)
        write_log(path, 5000, 50)
        await until(pilot, lambda: view.total == 5050, "all lines read")
        assert len(view.lines) <= 110
        assert view.lines[-1].endswith("line 5049")
        assert view.first_lineno + len(view.lines) == 5050
        assert view.follow


async def test_partial_line_waits_for_its_newline(tmp_path: Path) -> None:
    path = tmp_path / "log"
    write_log(path, 3)
    app = Host(path)
    async with app.run_test(size=(80, 24)) as pilot:
        view = app.query_one(LogView)
        with open(path, "a") as fh:
            fh.write(f"{format_ts(1)} out half")
            fh.flush()
            await pilot.pause()
            view.tick()  # a tick surely after the half line was written: no sleep to hope for one
            assert view.total == 3
            fh.write(" and the rest\n")
        await until(pilot, lambda: view.total == 4, "the line completes")
        assert view.lines[-1].endswith("half and the rest")


async def test_scrolling_up_stops_follow_and_f_resumes(tmp_path: Path) -> None:
    path = tmp_path / "log"
    write_log(path, 200)
    app = Host(path, window=1000)
    async with app.run_test(size=(80, 24)) as pilot:
        view = app.query_one(LogView)
        view.focus()
        await pilot.pause()
        await pilot.press("pageup")
        assert not view.follow
        write_log(path, 10, 200)
        await until(pilot, lambda: view.total == 210, "lines read")
        assert view.scroll_y < view.max_scroll_y
        await pilot.press("f")
        assert view.follow and view.scroll_y == view.max_scroll_y


async def test_search_finds_lines_outside_the_window(tmp_path: Path) -> None:
    path = tmp_path / "log"
    write_log(path, 5000)
    app = Host(path, window=100)
    async with app.run_test(size=(80, 24)) as pilot:
        view = app.query_one(LogView)
        view.focus()
        assert view.first_lineno == 4900  # line 7 is only on disk
        await pilot.press("slash", *"line 7", "enter")
        await until(pilot, lambda: bool(view.search_hits), "search done")
        # line 7, 70-79, 700-799 (up to 4999): 1 + 10 + 100
        assert len(view.search_hits) == 111
        await pilot.press("n")  # wraps from the last hit to the first: line 7
        assert view.current_line == 7
        assert view.anchored
        assert any(raw.endswith(" line 7") for raw in view.lines)
        await pilot.press("f")
        assert not view.anchored and view.lines[-1].endswith("line 4999")


async def test_filter_applies_to_the_whole_log_and_to_new_lines(tmp_path: Path) -> None:
    path = tmp_path / "log"
    write_log(path, 5000)
    app = Host(path, window=100)
    async with app.run_test(size=(80, 24)) as pilot:
        view = app.query_one(LogView)
        view.focus()
        await pilot.press("ampersand", *"line 12", "enter")
        await until(pilot, lambda: not view.scanning and view.filter_text == "line 12",
                    "filter done")
        # line 12, 120-129, 1200-1299: 111 lines, the window keeps the newest 100
        shown = [split_line(raw)[2] for raw in view.lines]
        assert len(shown) == 100 and shown[-1] == "line 1299"
        assert all("line 12" in text for text in shown)
        write_log(path, 10, 12000)
        await until(pilot, lambda: view.lines[-1].endswith("line 12009"), "new matches")
        await pilot.press("escape")
        await until(pilot, lambda: view.filter_text is None, "filter cleared")
        assert view.lines[-1].endswith("line 12009")


async def test_streams_render_apart_and_toggles_change_lines(tmp_path: Path) -> None:
    path = tmp_path / "log"
    write_log(path, 3)  # line 0 is stderr
    app = Host(path)
    async with app.run_test(size=(80, 24)) as pilot:
        view = app.query_one(LogView)
        view.focus()
        await pilot.pause()
        err = view._line_strip(0, 0, None, True)
        out = view._line_strip(1, 0, None, True)
        err_text = "".join(s.text for s in err)
        assert err_text.startswith("!") and any(
            s.style is not None and s.style.color is not None and s.style.color.name == "red"
            for s in err)
        assert "".join(s.text for s in out).startswith(" ")
        await pilot.press("t")
        assert view.timestamps
        assert "2026-01-01T00:00:01" in "".join(s.text for s in view._line_strip(1, 0, None, True))
        with open(path, "a") as fh:
            fh.write(f"{format_ts(5)} out {'x' * 300}\n")
        await until(pilot, lambda: view.total == 4, "long line")
        rows_before = view.virtual_size.height
        await pilot.press("z")
        assert view.wrap and view.virtual_size.height > rows_before


def test_split_line_keeps_foreign_lines_visible() -> None:
    assert split_line("no stream marker here") == ("", "out", "no stream marker here")
    assert split_line("2026 err boom") == ("2026", "err", "boom")


def _unused(_: Any) -> None:
    return None


async def test_a_log_opens_at_its_end_after_a_short_one(tmp_path: Path) -> None:
    """Moving from a short log to a long one shows the long one's last line (its result or
    error), as 'following' says."""
    short, long = tmp_path / "short", tmp_path / "long"
    write_log(short, 3)
    write_log(long, 500)
    app = Host(short)
    async with app.run_test(size=(80, 24)) as pilot:
        panel = app.query_one(LogPanel)
        view = panel.view
        panel.show(long, "long")
        await pilot.pause()
        await until(pilot, lambda: view.total == 500, "the long log read")
        assert view.max_scroll_y > 0
        assert view.scroll_y == view.max_scroll_y, (view.scroll_y, view.max_scroll_y)
        assert "following" in view.status_text()
