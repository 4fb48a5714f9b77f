"""The byte fast path of a local run's output (LineSplitter.feed_block, rawbatch.py,
LogWriter.write_block) gives the log exactly what the line-by-line path gives, however the output
is cut into reads: UTF-8 split across reads, invalid bytes, ``\\r`` progress, lines over the cap,
metric records (the real supervisor, through a real run)."""

from __future__ import annotations

import random
from pathlib import Path

from backends.linesplit import LineSplitter
from backends.logfile import LogWriter
from tests.conftest import Project


def _stream(rng: random.Random) -> bytes:
    pieces = [b"plain line", "ünïcödé ✓ line".encode(), b"\xff\xfe invalid", b"",
              b"progress 1\rprogress 2\rdone", b"x" * 300, "€".encode() * 50]
    return b"".join(rng.choice(pieces) + b"\n" for _ in range(400)) + b"tail without newline"


def _cuts(data: bytes, rng: random.Random) -> list[bytes]:
    out, pos = [], 0
    while pos < len(data):
        step = rng.choice([1, 2, 3, 7, 64, 1000, 5000])
        out.append(data[pos:pos + step])
        pos += step
    return out


def _lines_via_slow_path(chunks: list[bytes], cap: int) -> list[str]:
    splitter = LineSplitter(cap=cap, progress_every=1e9)
    out: list[str] = []
    for chunk in chunks:
        out += splitter.feed(chunk, 0.0)
    return out + splitter.flush()


def _lines_via_fast_path(chunks: list[bytes], cap: int) -> list[str]:
    splitter = LineSplitter(cap=cap, progress_every=1e9)
    out: list[str] = []
    for chunk in chunks:
        block = splitter.feed_block(chunk)
        if block is None:
            out += splitter.feed(chunk, 0.0)
        elif block:
            out += block[:-1].decode("utf-8").split("\n")
    return out + splitter.flush()


def test_feed_block_gives_the_lines_feed_gives() -> None:
    for seed in range(30):
        rng = random.Random(seed)
        data = _stream(rng)
        chunks = _cuts(data, rng)
        for cap in (256, 1 << 20):
            assert _lines_via_fast_path(chunks, cap) == _lines_via_slow_path(chunks, cap), seed


def test_write_block_writes_what_write_lines_writes(tmp_path: Path) -> None:
    lines = ["a", "", "ünïcödé", "x\x0cy", "last"]
    slow, fast = LogWriter(tmp_path / "slow"), LogWriter(tmp_path / "fast")
    slow.write_lines("out", lines, 1_700_000_000.25)
    fast.write_block("out", ("\n".join(lines) + "\n").encode(), 1_700_000_000.25)
    slow.write("sys", "note", 1_700_000_001.0)
    fast.write("sys", "note", 1_700_000_001.0)
    slow.close()
    fast.close()
    assert (tmp_path / "fast").read_bytes() == (tmp_path / "slow").read_bytes()


def test_a_flood_with_metrics_and_bad_bytes_is_logged_whole(project: Project) -> None:
    project.write("flood.py", """
        import sys
        from labdeck_metrics import log_metric
        out = sys.stdout.buffer
        for i in range(40000):
            out.write(f"line {i} é\\n".encode())
            if i % 10000 == 0:
                sys.stdout.flush()
                log_metric("step", i)
        out.write(b"bad \\xff byte\\n")
        out.write("split ".encode() + "€".encode()[:1])
        out.flush()
        out.write("€".encode()[1:] + b" joined\\n")
    """)
    # The CLI prints it as it follows: a metric amid one batch's lines once sent its follow
    # quadratic (minutes for this run); the timeout is that hang's guard, not a speed goal.
    res = project.cli("submit", "flood.py", timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.count(" é\n") == 40000
    run_dir = next((project.root / ".labdeck" / "runs").iterdir())
    entries = [raw.split(" ", 2)[1:] for raw in (run_dir / "log").read_text().splitlines()]
    outs = [text for stream, text in entries if stream == "out"]
    assert outs == [f"line {i} é" for i in range(40000)] + ["bad \ufffd byte", "split € joined"]
    metrics = [text for stream, text in entries if stream == "met"]
    assert metrics == [f"step = {i}" for i in range(0, 40000, 10000)]


FOLLOW = """
import sys
from backends.logfile import LogWriter
from tui.follow import Printer, print_entry
path = sys.argv[1]
writer = LogWriter(__import__("pathlib").Path(path))
lines = [f"line {i}" for i in range(200000)]
entries = [("out", t, 1.5e9) for t in lines]
for at in (50000, 100000, 150000):  # metrics amid one batch's lines, as the supervisor logs them
    entries.insert(at, ("met", f"step = {at}", 1.5e9))
writer.write_many(entries)
writer.close()
printer = Printer(print_entry, False)
printer.chunk(open(path, "rb").read())
printer.end()
"""


def test_follow_prints_a_batch_with_metrics_amid_it_in_linear_time(tmp_path: Path) -> None:
    """A run of one prefix broken by other lines once cost a scan of the run per line; the
    timeout guards that hang (hours before), it is no speed goal."""
    import subprocess
    import sys

    from tests.conftest import REPO, cli_env

    out = tmp_path / "printed"
    with open(out, "wb") as fh:
        subprocess.run([sys.executable, "-c", FOLLOW, str(tmp_path / "log")], cwd=REPO,
                       env=cli_env({"PYTHONIOENCODING": "utf-8"}), stdout=fh, check=True,
                       timeout=60)
    printed = out.read_text().splitlines()
    assert [p for p in printed if p.startswith("line ")] == [f"line {i}" for i in range(200000)]
    assert len(printed) == 200003
