"""Dashboard first paint with 10,000 runs in the store, Python's start included (goal: < 1 s).

``labdeck ui`` is started in a real pseudo-terminal (120x40) and timed from the spawn until the
newest run's id appears in what it draws (the runs table's first row); side by side, alternating,
``python -c`` reads the same rows with sqlite3 and prints the first one (the floor: an interpreter
plus the store). Then, in-process with Textual's pilot, the key-to-repaint latency of the runs
table (down, page down, end, home) with 10,000 rows against the same keys with 100 rows.
Prints medians and the ratios.

    .venv/bin/python bench/bench_first_paint.py [N_RUNS] [ROUNDS]
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import select
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import REPO, byte_compile, fill_store, median, ms, report

N_RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 7
SIZE = (120, 40)
TIMEOUT_S = 30.0
METRICS = ("accuracy", "loss")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) a live process has used so far."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def in_pty(argv: list[str], cwd: Path, marker: bytes, quit_keys: bytes | None
           ) -> tuple[float, float]:
    """Seconds from spawning ``argv`` on a pseudo-terminal until ``marker`` is in its output,
    and the CPU seconds the process had used by then (what a busy machine does not inflate)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", SIZE[1], SIZE[0], 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": str(SIZE[0]),
           "LINES": str(SIZE[1]), "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, stdin=slave, stdout=slave, stderr=slave, env=env,
                            start_new_session=True)
    os.close(slave)
    seen = b""
    found: float | None = None
    cpu = 0.0
    try:
        deadline = start + TIMEOUT_S
        while found is None and time.perf_counter() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                continue
            try:
                chunk = os.read(master, 1 << 16)
            except OSError:  # the child closed the terminal
                break
            seen = seen[-len(marker):] + chunk
            if marker in seen:
                found = time.perf_counter()
                cpu = cpu_seconds(proc.pid)
        if found is None:
            raise SystemExit(f"{argv}: {marker!r} never appeared; last output {seen[-500:]!r}")
        if quit_keys is not None:
            os.write(master, quit_keys)
        end = time.monotonic() + 10
        while proc.poll() is None and time.monotonic() < end:  # drain until it exits
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    os.read(master, 1 << 16)
                except OSError:
                    break
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        os.close(master)
    return found - start, cpu


READ_ALONE = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
rows = db.execute("SELECT * FROM runs ORDER BY created DESC").fetchall()
last = db.execute("SELECT run_id, name, value FROM metrics").fetchall()
print("first row:", rows[0][0][len("bench_"):], len(rows), len(last), flush=True)
"""


async def key_latency(project_root: Path, keys: list[str], repeat: int) -> dict[str, float]:
    """Median seconds from a key press to the repaint that follows it, per key."""
    from backends.engine import Engine
    from backends.project import Project
    from tui.app import LabdeckApp

    engine = Engine(Project(project_root))
    app = LabdeckApp(engine, poll=False)
    out: dict[str, list[float]] = {k: [] for k in keys}
    async with app.run_test(size=SIZE) as pilot:
        panel = app.runs_panel
        deadline = time.monotonic() + TIMEOUT_S
        while (not panel.records or app.reads.busy()) and time.monotonic() < deadline:
            await pilot.pause(0.05)
        table = panel.table
        table.focus()
        await pilot.pause()
        loop = asyncio.get_running_loop()
        for _ in range(repeat):
            for key in keys:
                painted = loop.create_future()
                start = time.perf_counter()
                await pilot.press(key)
                app.call_after_refresh(lambda p=painted: p.done() or p.set_result(
                    time.perf_counter()))
                out[key].append(await painted - start)
    engine.close()
    return {k: median(v) for k, v in out.items()}


def main() -> None:
    compiled = byte_compile()
    keys = ["down", "pagedown", "end", "home", "up"]
    with tempfile.TemporaryDirectory(prefix="labdeck-bench-") as tmp:
        big, small = Path(tmp) / "big", Path(tmp) / "small"
        fill_store(big, N_RUNS, METRICS)
        fill_store(small, 100, METRICS)
        marker = f"{N_RUNS - 1:06d}".encode()
        # This checkout's labdeck (the console script runs tui.entry:main the same way).
        ui = [sys.executable, "-m", "tui.entry", "ui"]
        alone = [sys.executable, "-c", READ_ALONE, str(big / ".labdeck" / "runs.db")]
        in_pty(ui, big, marker, b"q")  # warm the page cache for both
        in_pty(alone, big, marker, None)
        paints, reads, paint_cpu, read_cpu = [], [], [], []
        for _ in range(ROUNDS):
            wall, cpu = in_pty(ui, big, marker, b"q")
            paints.append(wall)
            paint_cpu.append(cpu)
            wall, cpu = in_pty(alone, big, marker, None)
            reads.append(wall)
            read_cpu.append(cpu)
        lat_big = asyncio.run(key_latency(big, keys, 5))
        lat_small = asyncio.run(key_latency(small, keys, 5))
    p, r = median(paints), median(reads)
    pc, rc = median(paint_cpu), median(read_cpu)
    load = os.getloadavg()[0]
    lines = [
        f"runs in store: {N_RUNS}, terminal {SIZE[0]}x{SIZE[1]}, rounds {ROUNDS}"
        f"{', byte-compiled' if compiled else ''}",
        f"python -c + sqlite3 read of the rows:   median {ms(r)} (CPU {ms(rc)})",
        f"labdeck ui to the first row on screen:  median {ms(p)} (CPU {ms(pc)}) "
        f"({'OK' if p < 1 else 'OVER'} the 1 s goal), {p / r:.1f}x the read alone "
        f"(CPU {pc / rc:.1f}x)",
        f"  all paints: {', '.join(f'{x * 1000:.0f}' for x in sorted(paints))} ms; "
        f"load average {load:.1f} on {os.cpu_count()} CPUs",
    ]
    for key in keys:
        lines.append(f"key {key:>8} to repaint: {N_RUNS} rows {ms(lat_big[key])}, "
                     f"100 rows {ms(lat_small[key])} "
                     f"({lat_big[key] / lat_small[key]:.2f}x)")
    report("dashboard first paint (pty, Python start included)", lines)


if __name__ == "__main__":
    main()
