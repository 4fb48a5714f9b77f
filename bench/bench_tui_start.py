"""Dashboard start to first paint with 1,000 runs in the store (goal: under 1 s).

Measures, headless and in-process (the interpreter's start and the textual import are not
counted), from constructing the app to the first screen refresh with the runs table filled;
baseline: the same store read by ``engine.runs()`` alone. Prints medians and the ratio.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backends.engine import Engine
from backends.project import Project
from backends.store import RunStore
from tui.app import LabdeckApp

N_RUNS = 1000
REPEAT = 5


def make_project(root: Path) -> Project:
    (root / "aml_config").mkdir(parents=True)
    (root / "aml_config" / "local.compute").write_text('type: "local"\n')
    project = Project(root)
    project.ensure_state()
    store = RunStore(project.db_path)
    rows = []
    for i in range(N_RUNS):
        t = 1_700_000_000 + i * 60
        rows.append((f"bench_{i:06d}", "bench", "local", "local", "local", "train.py",
                     json.dumps(["--seed", str(i)]), "{}", "completed", t, t + 1, t + 30, 0))
    store._db.executemany(
        "INSERT INTO runs (id, project, target, target_type, runconfig, script, args, env,"
        " status, created, started, ended, exit_code) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    store._db.executemany(
        "INSERT INTO metrics (run_id, name, seq, value, series, ts) VALUES (?,?,?,?,?,?)",
        [(f"bench_{i:06d}", "accuracy", 0, json.dumps(0.5 + i / 4000), 0, 0.0)
         for i in range(N_RUNS)])
    store.close()
    return project


async def first_paint(project: Project) -> float:
    start = time.perf_counter()
    app = LabdeckApp(Engine(project), poll=False)
    painted = asyncio.get_running_loop().create_future()

    async with app.run_test(size=(120, 40)) as pilot:
        def done() -> None:
            if not painted.done():
                painted.set_result(time.perf_counter())

        app.call_after_refresh(done)
        end = await painted
        assert app.runs_panel.table.row_count == N_RUNS
        await pilot.pause()
    return end - start


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        project = make_project(Path(tmp) / "bench")
        base = []
        for _ in range(REPEAT):
            t = time.perf_counter()
            engine = Engine(project)
            engine.runs()
            engine.close()
            base.append(time.perf_counter() - t)
        paints = [asyncio.run(first_paint(project)) for _ in range(REPEAT)]
    b, p = statistics.median(base), statistics.median(paints)
    print(f"runs in store:            {N_RUNS}")
    print(f"engine.runs() alone:      median {b * 1000:.1f} ms")
    print(f"dashboard first paint:    median {p * 1000:.1f} ms (goal < 1000 ms) "
          f"{'OK' if p < 1 else 'OVER'}")
    print(f"ratio paint/read:         {p / b:.1f}x")


if __name__ == "__main__":
    main()
