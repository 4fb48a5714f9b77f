"""The log view's line index and paging: a window over the whole file, memory bounded."""

from __future__ import annotations

from pathlib import Path

from tui.widgets.log_index import LineIndex, read_lines
from tui.widgets.log_view import LogView

from .helpers import until
from .test_log_view import Host, write_log


def test_offsets_match_a_naive_split_across_blocks(tmp_path: Path) -> None:
    path = tmp_path / "log"
    lines = [("x" * (i % 37)) + f" {i}" for i in range(3000)]
    path.write_bytes(b"".join(f"{line}\n".encode() for line in lines))
    data = path.read_bytes()
    starts = [0] + [i + 1 for i, b in enumerate(data) if b == 10]
    index = LineIndex(path, block=64)  # many blocks, lines crossing their edges
    assert index.lines_before(len(data)) == 3000
    for line in (0, 1, 2, 63, 64, 65, 1000, 2998, 2999, 3000):
        assert index.offset_of(line) == starts[line], line
    got, after = read_lines(path, index.offset_of(1500), 3, len(data))
    assert got == lines[1500:1503] and after == starts[1503]


def test_the_index_grows_with_the_file_without_rereading(tmp_path: Path) -> None:
    path = tmp_path / "log"
    path.write_bytes(b"a\n" * 100)
    index = LineIndex(path, block=16)
    assert index.lines_before(200) == 100
    before = list(index.counts)
    with open(path, "ab") as fh:
        fh.write(b"bb\n" * 50)
    assert index.lines_before(350) == 150
    assert len(index.counts) > len(before) and list(index.counts[:len(before)]) == before
    assert index.offset_of(120) == 200 + 20 * 3


async def test_home_reaches_line_one_of_a_million_line_log(tmp_path: Path) -> None:
    path = tmp_path / "log"
    with open(path, "w") as fh:
        fh.writelines(f"2026-01-01T00:00:00.000000Z out line {i}\n" for i in range(1_000_000))
    app = Host(path, window=2000)
    async with app.run_test(size=(80, 24)) as pilot:
        view = app.query_one(LogView)
        await until(pilot, lambda: view.total == 1_000_000, "the log counted")
        assert view.lines[-1].endswith("line 999999")
        view.focus()
        await pilot.press("home")
        await pilot.pause()
        assert view.lines[0].endswith(" line 0") and view.scroll_y == 0
        assert view.first_lineno == 0 and len(view.lines) <= 2200  # bounded
        assert "line 1 of 1,000,000" in view.status_text()
        assert not view.follow
        # Scrolling down past the window's end reads the next page, the top line kept.
        for _ in range(5):
            await pilot.press("pagedown")
        top = view.linenos[round(view.scroll_y)]
        assert top > 0
        while view.first_lineno == 0:
            await pilot.press("pagedown")
        assert view.first_lineno > 0 and len(view.lines) <= 2200
        # Up from the top of a window reads the page above.
        await pilot.press("G")
        await pilot.pause()
        assert view.follow and view.lines[-1].endswith("line 999999")
        first = view.first_lineno
        view.scroll_to(y=0, animate=False, immediate=True)
        await pilot.press("up")
        await until(pilot, lambda: view.first_lineno < first, "the page above read")
        assert view.linenos[round(view.scroll_y)] == first - 1
        assert view.lines[round(view.scroll_y)].endswith(f"line {first - 1}")


async def test_search_and_follow_still_work_after_paging(tmp_path: Path) -> None:
    path = tmp_path / "log"
    write_log(path, 5000)
    app = Host(path, window=200)
    async with app.run_test(size=(80, 24)) as pilot:
        view = app.query_one(LogView)
        await until(pilot, lambda: view.total == 5000, "read")
        view.focus()
        await pilot.press("g")
        assert view.lines[0].endswith("line 0")
        write_log(path, 10, 5000)
        view.tick()  # a tick surely after the write: no sleep to hope for one
        await pilot.pause()
        assert view.lines[0].endswith("line 0")  # paused: new lines do not move the page
        view.search("line 4321")
        await until(pilot, lambda: view.current_line == 4321, "the match")
        await pilot.press("f")
        await until(pilot, lambda: view.lines[-1].endswith("line 5009"), "following again")
        assert view.follow
