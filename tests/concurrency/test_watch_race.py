"""Watch mode's queue policy under a real file watcher, with engine calls that block on events.

The race (issue 14, item 3): the run a queued resubmission waits for ends, the queue starts the
new run, and a save arrives while that submit is still going. Both must not start a run: the
save is queued after the run being started.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path

from backends.status import RunStatus
from backends.store import RunRecord
from backends.watch import Watcher, WatchEvent

GUARD_S = 30.0  # a hang guard, not a speed check


class BlockingEngine:
    """A fake engine (thread-safe, as the real one is) whose next submit can be held."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.status: dict[str, RunStatus] = {"run0": RunStatus.RUNNING}
        self.submits: list[list[str] | None] = []  # the trigger of every submit call
        self.hold_next = False
        self.entered = threading.Event()  # a held submit has been called
        self.release = threading.Event()  # and may return

    def warm_up(self) -> None:
        pass

    def submit(self, target_name: str, script: str | None, args: list[str],
               trigger: list[str] | None = None) -> RunRecord:
        with self.lock:
            self.submits.append(trigger)
            run_id = f"run{len(self.submits)}"
            hold, self.hold_next = self.hold_next, False
        if hold:
            self.entered.set()
            assert self.release.wait(GUARD_S), "the held submit was never released"
        with self.lock:
            self.status[run_id] = RunStatus.RUNNING
        return RunRecord(run_id, "p", target_name, "local", RunStatus.QUEUED, time.time(),
                         script=script, args=args, trigger=trigger or [])

    def cancel(self, run_id: str) -> RunRecord:
        with self.lock:
            self.status[run_id] = RunStatus.CANCELED
        return self.get(run_id)

    def get(self, run_id: str, with_metrics: bool = True) -> RunRecord:
        with self.lock:
            status = self.status[run_id]
        return RunRecord(run_id, "p", "local", "local", status, 0.0)


async def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + GUARD_S
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        await asyncio.sleep(0.01)


def project(root: Path) -> Path:
    root.mkdir()
    (root / "train.py").write_text("print(0)\n")
    return root


async def test_a_save_while_the_queue_starts_its_run_is_queued_not_started(
        tmp_path: Path) -> None:
    root = project(tmp_path / "proj")
    engine = BlockingEngine()
    events: list[WatchEvent] = []
    watcher = Watcher(engine, root, "local", "train.py", [], "queue", events.append,
                      in_flight=["run0"])
    stop = asyncio.Event()
    task = asyncio.create_task(watcher.run(stop))
    saves = 0

    def save() -> None:
        nonlocal saves
        saves += 1
        (root / "train.py").write_text(f"print({saves})\n")

    try:
        # 1. A save while run0 runs is queued after it (repeated until the OS watch is in place).
        while not events:
            save()
            deadline = time.monotonic() + 0.3
            while not events and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            assert saves < 100, "the watcher never saw a save"
        await until(lambda: watcher.pending is not None, "the resubmission is queued")
        assert engine.submits == [] and events[-1].queued_after == "run0"
        seen = len(events)

        # 2. run0 ends: the queue starts its run, and that submit is held.
        engine.hold_next = True
        with engine.lock:
            engine.status["run0"] = RunStatus.COMPLETED
        assert await asyncio.to_thread(engine.entered.wait, GUARD_S), "queue never submitted"

        # 3. A save arrives while that submit is going.
        save()
        await until(lambda: watcher.pending is not None or len(engine.submits) > 1,
                    "the save is seen")
        engine.release.set()
        await until(lambda: len(events) >= seen + 2, "the started run and the save reported")

        assert len(engine.submits) == 1, (
            f"two runs started for one queue: {[e.describe() for e in events[seen:]]}")
        started, queued = events[seen], events[seen + 1]
        assert started.run is not None and started.run.id == "run1"
        assert queued.run is None and queued.queued_after == "run1"

        # 4. The save's run starts once run1 ends, and only then.
        with engine.lock:
            engine.status["run1"] = RunStatus.COMPLETED
        await until(lambda: len(engine.submits) == 2, "the queued save starts")
        assert engine.submits[1] == ["train.py"]
    finally:
        engine.release.set()
        stop.set()
        await asyncio.wait_for(task, GUARD_S)
    assert len(engine.submits) == 2
