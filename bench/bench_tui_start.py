"""Dashboard start to first paint with 1,000 runs in the store (goal: under 1 s).

Measures, headless and in-process (the interpreter's start and the textual import are not
counted), from constructing the app to the first screen refresh with the runs table's first rows
(the newest runs are read and drawn first), and to every run in the table; baseline: the same
store read by ``engine.runs()`` alone. Prints medians and the ratios. bench_first_paint.py
measures the same with Python's start, in a pseudo-terminal.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backends.engine import Engine
from backends.project import Project
from bench._common import fill_store
from tui.app import LabdeckApp

N_RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
REPEAT = 5


async def first_paint(project: Project) -> tuple[float, float]:
    start = time.perf_counter()
    app = LabdeckApp(Engine(project), poll=False)
    loop = asyncio.get_running_loop()

    async def painted_when(condition: Callable[[], bool]) -> float:
        while not condition():
            await asyncio.sleep(0.001)
        painted = loop.create_future()
        app.call_after_refresh(lambda: painted.done() or painted.set_result(time.perf_counter()))
        return float(await painted)

    async with app.run_test(size=(120, 40)) as pilot:
        first = await painted_when(lambda: app.runs_panel.table.row_count > 0)
        every = await painted_when(lambda: app.runs_panel.table.row_count == N_RUNS)
        await pilot.pause()
    return first - start, every - start


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        project = fill_store(Path(tmp) / "bench", N_RUNS, ("accuracy",))
        base = []
        for _ in range(REPEAT):
            t = time.perf_counter()
            engine = Engine(project)
            engine.runs()
            engine.close()
            base.append(time.perf_counter() - t)
        paints = [asyncio.run(first_paint(project)) for _ in range(REPEAT)]
    b = statistics.median(base)
    p = statistics.median(x for x, _ in paints)
    e = statistics.median(y for _, y in paints)
    print(f"runs in store:            {N_RUNS}")
    print(f"engine.runs() alone:      median {b * 1000:.1f} ms")
    print(f"dashboard first paint:    median {p * 1000:.1f} ms (goal < 1000 ms) "
          f"{'OK' if p < 1 else 'OVER'}")
    print(f"every run in the table:   median {e * 1000:.1f} ms")
    print(f"ratio paint/read:         {p / b:.1f}x (every run: {e / b:.1f}x)")


if __name__ == "__main__":
    main()
