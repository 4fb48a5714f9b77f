"""The resume point a reattaching supervisor starts from (backends/logfile.py)."""

from __future__ import annotations

import random
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from backends.logfile import format_ts, resume_point
from tests.conftest import REPO, cli_env


def test_resume_point_finds_a_stream_last_seen_megabytes_back(tmp_path: Path) -> None:
    # An early stderr line, then more stdout than one read block: a scan of the last block
    # alone would lose stderr's place and the reattached stream would write it again.
    lines = ["2026-01-01T00:00:00.000001Z err early error"]
    lines += [f"2026-01-01T00:00:01.{i:06d}Z out line {i} {'x' * 100}" for i in range(20_000)]
    lines += ["2026-01-01T00:00:02.000000Z out same stamp",
              "2026-01-01T00:00:02.000000Z met loss = 1",  # stands where its stdout line was
              "2026-01-01T00:00:02.000000Z sys a note of labdeck's"]
    log = tmp_path / "log"
    log.write_text("\n".join(lines) + "\n2026-01-01T00:00:03.000000Z out never final")
    for block in (1 << 20, 4096, 100):
        point = resume_point(log, block=block)
        assert point.last_ts == {"out": "2026-01-01T00:00:02.000000Z",
                                 "err": "2026-01-01T00:00:00.000001Z"}, block
        assert point.count_at_last == {"out": 2, "err": 1}, block


def test_resume_point_of_no_log_or_only_a_partial_line(tmp_path: Path) -> None:
    assert resume_point(tmp_path / "none").last_ts == {}
    partial = tmp_path / "partial"
    partial.write_text("2026-01-01T00:00:03.000000Z out not finished")
    assert resume_point(partial, block=10).last_ts == {}


def test_last_lines_reads_back_from_the_end_only(tmp_path: Path) -> None:
    from backends.logfile import last_lines

    log = tmp_path / "log"
    body = "".join(f"2026-01-01T00:00:00.000000Z out line {i} {'x' * 200}\n"
                   for i in range(20_000))  # ~4.5 MB: several blocks
    log.write_text(body + "2026-01-01T00:00:01.000000Z out partial")
    lines, end = last_lines(log, 2)
    assert [ln.split()[3] for ln in lines] == ["19998", "19999"]
    assert end == len(body.encode())  # the partial last line waits
    assert last_lines(log, 0) == ([], end)
    assert last_lines(tmp_path / "none", 5) == ([], 0)


def test_progress_entries_are_written_tagged_and_superseded_for_readers(tmp_path: Path) -> None:
    from backends.logfile import LogEntry, LogWriter, last_lines, last_lines_placed

    log = tmp_path / "log"
    writer = LogWriter(log)
    writer.write_many([("out", "start", 1.0), ("err", "\r 10%", 2.0), ("out", "mid", 3.0),
                       ("err", "\r 50%", 4.0), ("err", "100%", 5.0), ("out", "\rdl 1/3", 6.0),
                       ("sys", "a note", 7.0), ("out", "\rdl 2/3", 8.0)])
    writer.close()
    raw = log.read_text().splitlines()
    assert [ln.split(" ")[1] for ln in raw] == ["out", "err~", "out", "err~", "err", "out~",
                                                "sys", "out~"]
    entry = LogEntry.parse(raw[1])
    assert (entry.stream, entry.text, entry.progress) == ("err", " 10%", True)
    assert not LogEntry.parse(raw[0]).progress
    # superseded progress left out; the pending one (dl 2/3) still shown
    for block in (1 << 20, 64, 7):
        lines, back, end = last_lines_placed(log, 10, block)
        assert [LogEntry.parse(ln).text for ln in lines] == ["start", "mid", "100%", "a note",
                                                             "dl 2/3"], block
        assert back == [7, 5, 3, 1, 0]
        assert end == log.stat().st_size
        assert [LogEntry.parse(ln).text for ln in last_lines(log, 2, block)[0]] == [
            "a note", "dl 2/3"]


def test_resume_point_does_not_count_progress_entries(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.write_text("2026-01-01T00:00:01.000000Z err line\n"
                   "2026-01-01T00:00:02.000000Z err~ 50%\n"
                   "2026-01-01T00:00:02.000000Z out~ 10%\n")
    point = resume_point(log)
    assert point.last_ts == {"err": "2026-01-01T00:00:01.000000Z"}
    assert point.count_at_last == {"err": 1}


def test_read_from_splits_on_newlines_only(tmp_path: Path) -> None:
    from backends.logfile import read_from

    log = tmp_path / "log"
    log.write_bytes(b"t out page\x0cbreak \x1e sep\nt out two\npartial")
    lines, offset = read_from(log, 0)
    assert lines == ["t out page\x0cbreak \x1e sep", "t out two"]
    assert offset == len(b"t out page\x0cbreak \x1e sep\nt out two\n")


def test_format_ts_writes_what_datetime_writes() -> None:
    """format_ts renders without datetime (kept off a submit's start): the same text, a fresh
    process's first call included (a -1 s stamp once matched the empty cache's sentinel)."""
    code = "from backends.logfile import format_ts; print(format_ts(-1.0))"
    first = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True, cwd=REPO, env=cli_env())
    assert first.stdout.strip() == "1969-12-31T23:59:59.000000Z"
    pick = random.Random(7)
    stamps = [0.0, 0.4999995, 0.9999996, 1.9999995, 1796179198.132458, 1796179198.9999996]
    stamps += [pick.uniform(0, 4e9) for _ in range(20_000)]
    for ts in stamps:
        want = datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        assert format_ts(ts) == want, ts
