"""A docker run read live through attach has its log stamped on arrival, later than the daemon's
own stamps: its reattach resumes by line counts (logfile.reattach_point, run.Deduper by_count),
as a timestamp resume would drop the lines that were in flight when the supervisor died."""

from __future__ import annotations

from pathlib import Path

from backends.base import LogLine
from backends.docker.run import Deduper
from backends.logfile import LogWriter, line_counts, reattach_point


def _replay() -> tuple[list[LogLine], list[LogLine]]:
    """The daemon's replay: 10 stdout lines (its stamps, 1 ms apart), and 2 stderr lines with a
    progress state between them."""
    out = [LogLine("out", f"line {i}", 1000.0 + i / 1000) for i in range(10)]
    err = [LogLine("err", "warn", 1000.0005), LogLine("err", "\rbar 10%", 1000.0006),
           LogLine("err", "bar done", 1000.0007)]
    return out, err


def test_resume_by_count_keeps_exactly_the_lines_not_written(tmp_path: Path) -> None:
    out, err = _replay()
    log = LogWriter(tmp_path / "log")
    for line in out[:6]:  # arrival stamps: 50 ms after the daemon's
        assert line.ts is not None
        log.write("met" if line.text == "line 3" else "out", line.text, line.ts + 0.05)
    log.write("err", "warn", 1000.0505)
    log.write("err", "\rbar 10%", 1000.0506)  # a progress entry: not a line
    log.write("sys", "a note")
    log.close()
    point = reattach_point(tmp_path / "log")
    assert point.lines == {"out": 6, "err": 1} == line_counts(tmp_path / "log")
    assert point.lines is not None

    by_count = {name: Deduper(None, point.lines[name], by_count=True) for name in ("out", "err")}
    assert [ln.text for ln in out if by_count["out"].keep(ln)] == [f"line {i}" for i in
                                                                     range(6, 10)]
    # The bar's states after the last line written are the next line's: kept (a progress
    # entry given twice is only a passing state shown again).
    assert [ln.text for ln in err if by_count["err"].keep(ln)] == ["\rbar 10%", "bar done"]

    # What a resume by timestamp would have done with the same log: the lines the daemon had
    # stamped before the last arrival stamp are lost (this is the gap the counts close).
    by_time = Deduper(point.last_ts["out"], point.count_at_last["out"])
    assert [ln.text for ln in out if by_time.keep(ln)] != [f"line {i}" for i in range(6, 10)]
