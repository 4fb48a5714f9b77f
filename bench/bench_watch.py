"""Watch mode: a save -> the new run started, labdeck vs a plain watcher side by side.

Baseline: a bare watchfiles loop (same 50 ms debounce) that starts ``python script`` itself, as
``entr`` would. labdeck: ``backends.watch.Watcher`` on the local target (snapshot, run record,
detached supervisor). The script writes the wall time it started to a marker file. Prints, per
side, save->script start medians, and for labdeck event->run recorded (goal: < 150 ms).
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backends.engine import Engine
from backends.project import Project
from backends.watch import DEBOUNCE_MS, STEP_MS, Watcher, WatchEvent

SAVES = 8
SCRIPT = "import sys, time\nopen(sys.argv[1], 'a').write(f'{{time.time()}}\\n')  # v{n}\n"


def project(root: Path) -> Path:
    (root / "aml_config").mkdir(parents=True)
    (root / "aml_config" / "local.compute").write_text('type: "local"\n')
    return root


async def wait_lines(marker: Path, count: int, guard: float = 20.0) -> list[float]:
    deadline = time.monotonic() + guard
    while time.monotonic() < deadline:
        if marker.exists():
            values = [float(x) for x in marker.read_text().split()]
            if len(values) >= count:
                return values
        await asyncio.sleep(0.005)
    raise TimeoutError(f"{marker}: fewer than {count} starts")


async def saves(root: Path, marker: Path, first: int) -> list[float]:
    latencies = []
    for n in range(SAVES):
        await asyncio.sleep(0.6)
        t0 = time.time()
        (root / "train.py").write_text(SCRIPT.format(n=n + 1 + 1000 * first))
        started = await wait_lines(marker, first + n + 1)
        latencies.append(started[-1] - t0)
    return latencies


async def plain(root: Path, marker: Path) -> list[float]:
    from watchfiles import awatch

    stop = asyncio.Event()

    async def loop() -> None:
        async for _ in awatch(root, debounce=DEBOUNCE_MS, step=STEP_MS, stop_event=stop):
            subprocess.Popen([sys.executable, "train.py", str(marker)], cwd=root)

    task = asyncio.create_task(loop())
    await asyncio.sleep(0.5)
    try:
        return await saves(root, marker, 0)
    finally:
        stop.set()
        await task


async def labdeck(root: Path, marker: Path) -> tuple[list[float], list[float], list[float]]:
    # As the CLI and the dashboard build it: supervisors forked (through the zygote: watching
    # makes this process threaded).
    engine = Engine(Project(root), fork_supervisors=True)
    events: list[WatchEvent] = []
    watcher = Watcher(engine, root, "local", "train.py", [str(marker)], "cancel", events.append)
    stop = asyncio.Event()
    task = asyncio.create_task(watcher.run(stop))
    await asyncio.sleep(0.5)
    try:
        starts = await saves(root, marker, 0)
    finally:
        stop.set()
        await task
        engine.close()
    recorded = [e.submit_time - e.event_time for e in events if e.run is not None]
    offset = time.time() - time.monotonic()
    started = [float(x) for x in marker.read_text().split()]
    to_script = [t - (e.event_time + offset)
                 for e, t in zip([e for e in events if e.run is not None], started, strict=False)]
    return starts, recorded, to_script


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        a = project(Path(tmp) / "plain")
        (a / "train.py").write_text(SCRIPT.format(n=0))
        base = asyncio.run(plain(a, Path(tmp) / "plain.marker"))
        b = project(Path(tmp) / "deck")
        (b / "train.py").write_text(SCRIPT.format(n=0))
        deck, recorded, to_script = asyncio.run(labdeck(b, Path(tmp) / "deck.marker"))
    mb, md = statistics.median(base), statistics.median(deck)
    print(f"saves per side:                         {SAVES}")
    print(f"plain watcher, save -> script started:  median {mb * 1000:.0f} ms")
    print(f"labdeck watch, save -> script started:  median {md * 1000:.0f} ms "
          f"(ratio {md / mb:.2f}x)")
    if recorded:
        mr = statistics.median(recorded)
        print(f"labdeck, watcher event -> run recorded + supervisor started: median "
              f"{mr * 1000:.0f} ms, max {max(recorded) * 1000:.0f} ms")
    if to_script:
        ms_ = statistics.median(to_script)
        print(f"labdeck, watcher event -> new script started: median {ms_ * 1000:.0f} ms, "
              f"max {max(to_script) * 1000:.0f} ms (goal < 150 ms)")


if __name__ == "__main__":
    main()
