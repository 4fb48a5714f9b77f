"""The resume point a reattaching supervisor starts from (backends/logfile.py)."""

from __future__ import annotations

from pathlib import Path

from backends.logfile import resume_point


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
