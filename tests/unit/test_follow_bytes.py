"""The follow loop's bytes path (tui/follow.py ``Printer.chunk``) prints what the line-by-line
path prints: plain batches with their prefix cut by one replace, everything else line by line."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from backends.logfile import LogWriter, read_bytes_from
from tui.follow import Printer, _prefix_run_end, print_entry


def _capture(monkeypatch: pytest.MonkeyPatch) -> tuple[io.TextIOWrapper, io.TextIOWrapper]:
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", newline="\n")
    err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", newline="\n", line_buffering=True)
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    return out, err


def _printed(out: io.TextIOWrapper, err: io.TextIOWrapper) -> tuple[bytes, bytes]:
    out.flush()
    err.flush()
    return out.buffer.getvalue(), err.buffer.getvalue()  # type: ignore[attr-defined]


def _log(tmp_path: Path) -> Path:
    """Batches as the supervisor writes them, with the awkward cases between them."""
    log = LogWriter(tmp_path / "log")
    log.write_lines("out", [f"step {i} ü" for i in range(500)], 1000.0)
    log.write_lines("err", ["warning: é", "second"], 1000.0)  # same time, other stream
    log.write_lines("out", ["same prefix again", ""], 1000.0)  # the first batch's prefix again
    log.write_many([("met", "loss = 0.5", 1000.5), ("out", "\rbar 50%", 1000.6)])
    log.write_lines("out", ["after the bar"], 1001.0)
    log.write_many([("out", "\rbar 2", 1001.1)])
    log.write_lines("err", ["err ends the run of out"], 1001.2)
    log.close()
    with open(tmp_path / "log", "a") as fh:
        fh.write("Traceback (a line the supervisor's stderr wrote)\n")
    log = LogWriter(tmp_path / "log")
    log.write_lines("out", [f"tail {i}" for i in range(300)], 1002.0)
    log.write_lines("out", [f"tail2 {i}" for i in range(7)], 1002.25)
    log.write("sys", "run completed")
    log.close()
    return tmp_path / "log"


def test_bytes_path_prints_what_the_line_path_prints(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    path = _log(tmp_path)
    out, err = _capture(monkeypatch)
    by_lines = Printer(print_entry, False)
    by_lines.lines(path.read_bytes()[:-1].decode().split("\n"))
    by_lines.end()
    expected = _printed(out, err)
    assert b"same prefix again\n\n" in expected[0] and b"bar 50%" not in expected[0]

    for block in (1 << 20, 700, 97):  # whole, and read in pieces that cut batches
        out, err = _capture(monkeypatch)
        printer = Printer(print_entry, False)
        offset = 0
        while True:
            data, offset = read_bytes_from(path, offset, block)
            if not data:
                break
            printer.chunk(data)
        printer.end()
        assert _printed(out, err) == expected, block


def test_run_end_is_found_by_bisection_and_checked(tmp_path: Path) -> None:
    prefix = b"2026-01-01T00:00:00.000000Z out "
    other = b"2026-01-01T00:00:00.000001Z out "
    data = b"".join(prefix + b"x" * (i % 7) + b"\n" for i in range(1000)) + other + b"y\n"
    assert _prefix_run_end(data, 0, prefix) == len(data) - len(other) - 2
    start = len(prefix) + 1  # the second line
    assert _prefix_run_end(data, start, prefix) == len(data) - len(other) - 2
    assert _prefix_run_end(prefix + b"\n", 0, prefix) == len(prefix) + 1
