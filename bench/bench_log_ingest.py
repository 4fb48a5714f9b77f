"""Log ingest: 1,000,000 lines through the dashboard's log widget vs writing them to a file.

A writer PROCESS appends the lines (log-file format), as a run's supervisor does, while the widget
tails the file headless in this one;
meanwhile a key is pressed every 50 ms and the time to its handler is recorded. Prints the
writer's time, the widget's catch-up time, key latency (median / max; goal < 100 ms), the lines
the widget holds (bounded) and whether every line reached the file.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from textual import events
from textual.app import App, ComposeResult

from backends.logfile import format_ts
from tui.widgets.log_panel import LogPanel
from tui.widgets.log_view import LogView

N_LINES = 1_000_000
DEADLINE_S = 120.0
BATCH = 2_000


def lines(start: int, count: int) -> str:
    ts = format_ts(1_767_225_600)
    return "".join(f"{ts} {'err' if i % 50 == 0 else 'out'} epoch {i // 1000} step {i} "
                   f"loss={1 / (i + 1):.6f}\n" for i in range(start, start + count))


def write_all(path: Path) -> float:
    start = time.perf_counter()
    with open(path, "a") as fh:
        for i in range(0, N_LINES, BATCH):
            fh.write(lines(i, BATCH))
            fh.flush()
    return time.perf_counter() - start


class Host(App[None]):
    def __init__(self, path: Path):
        super().__init__()
        self.path = path
        self.pressed: list[float] = []

    def compose(self) -> ComposeResult:
        yield LogPanel(self.path)

    def on_key(self) -> None:
        self.pressed.append(time.perf_counter())


async def ingest(path: Path) -> dict[str, float]:
    app = Host(path)
    async with app.run_test(size=(120, 40)):
        view = app.query_one(LogView)
        writer_time: list[float] = []
        start = time.perf_counter()
        writer = subprocess.Popen([sys.executable, __file__, "--write", str(path)],
                                  stdout=subprocess.PIPE, text=True)
        thread = threading.Thread(
            target=lambda: writer_time.append(float(writer.communicate()[0])))
        thread.start()
        latencies: list[float] = []
        max_window = 0
        deadline = start + DEADLINE_S  # a widget that drops lines must not hang the bench
        while view.total < N_LINES and time.perf_counter() < deadline:
            sent = time.perf_counter()
            before = len(app.pressed)
            app.post_message(events.Key("x", "x"))  # as a terminal key arrives
            while len(app.pressed) == before:
                await asyncio.sleep(0.001)
            latencies.append(app.pressed[-1] - sent)
            max_window = max(max_window, len(view.lines))
            await asyncio.sleep(0.05)
        caught_up = time.perf_counter() - start
        thread.join()
        return {"writer": writer_time[0], "widget": caught_up,
                "key_median": statistics.median(latencies), "key_max": max(latencies),
                "keys": len(latencies), "window": max_window, "total": view.total}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base_path = Path(tmp) / "baseline.log"
        baseline = write_all(base_path)
        path = Path(tmp) / "log"
        path.touch()
        r = asyncio.run(ingest(path))
        on_disk = sum(1 for _ in open(path, "rb"))
    print(f"lines:                          {N_LINES:,}")
    print(f"write to a file alone:          {baseline:.2f} s")
    print(f"writer while the widget tails:  {r['writer']:.2f} s")
    print(f"widget caught up after:         {r['widget']:.2f} s "
          f"(ratio to the plain write {r['widget'] / baseline:.2f}x)")
    print(f"key latency while streaming:    median {r['key_median'] * 1000:.1f} ms, "
          f"max {r['key_max'] * 1000:.1f} ms over {int(r['keys'])} presses (goal < 100 ms)")
    print(f"lines held by the widget (max): {int(r['window']):,} (bounded window)")
    shown = int(r["total"])
    print(f"lines in the file:              {on_disk:,}; the widget counted {shown:,} "
          f"({'none lost' if shown == on_disk == N_LINES else 'LOST LINES'})")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--write"]:
        print(write_all(Path(sys.argv[2])))
    else:
        main()
