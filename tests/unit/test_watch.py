"""Watch mode: which changes count, and what each policy does with the run in flight."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from backends.errors import UsageError
from backends.status import RunStatus
from backends.store import RunRecord
from backends.watch import ChangeDetector, Policy, Watcher, WatchEvent


def tree(root: Path) -> Path:
    (root / "data").mkdir(parents=True)
    (root / "train.py").write_text("print(1)\n")
    (root / "data" / "big.csv").write_text("a,b\n")
    (root / "notes.tmp").write_text("x\n")
    (root / ".gitignore").write_text("data/\n")
    (root / ".labdeckignore").write_text("*.tmp\n")
    return root


def test_a_content_change_counts(tmp_path: Path) -> None:
    root = tree(tmp_path)
    detector = ChangeDetector(root)
    (root / "train.py").write_text("print(2)\n")
    assert detector.changed({str(root / "train.py")}) == ["train.py"]


def test_a_save_without_change_does_not_count(tmp_path: Path) -> None:
    root = tree(tmp_path)
    detector = ChangeDetector(root)
    (root / "train.py").write_text("print(1)\n")  # same bytes, new mtime
    assert detector.changed({str(root / "train.py")}) == []


def test_gitignore_labdeckignore_and_state_are_ignored(tmp_path: Path) -> None:
    root = tree(tmp_path)
    detector = ChangeDetector(root)
    (root / "data" / "big.csv").write_text("changed\n")
    (root / "notes.tmp").write_text("changed\n")
    (root / ".labdeck").mkdir()
    (root / ".labdeck" / "runs.db").write_text("x")
    (root / "outputs").mkdir()
    (root / "outputs" / "model.pkl").write_text("x")
    paths = {str(root / p) for p in ("data/big.csv", "notes.tmp", ".labdeck/runs.db",
                                     "outputs/model.pkl")}
    assert detector.changed(paths) == []


def test_new_and_deleted_files_count_once(tmp_path: Path) -> None:
    root = tree(tmp_path)
    detector = ChangeDetector(root)
    (root / "new.py").write_text("x\n")
    assert detector.changed({str(root / "new.py")}) == ["new.py"]
    (root / "new.py").unlink()
    assert detector.changed({str(root / "new.py")}) == ["new.py"]
    assert detector.changed({str(root / "new.py")}) == []


def test_editing_an_ignore_file_reloads_the_rules(tmp_path: Path) -> None:
    root = tree(tmp_path)
    detector = ChangeDetector(root)
    (root / ".labdeckignore").write_text("*.tmp\ntrain.py\n")
    assert detector.changed({str(root / ".labdeckignore")}) == [".labdeckignore"]
    (root / "train.py").write_text("print(3)\n")
    assert detector.changed({str(root / "train.py")}) == []


@dataclass
class FakeEngine:
    status: dict[str, RunStatus] = field(default_factory=dict)
    submits: list[tuple[str, str | None, list[str], list[str] | None]] = field(
        default_factory=list)
    cancels: list[str] = field(default_factory=list)
    fail_submit: bool = False

    def warm_up(self) -> None:
        pass

    def submit(self, target_name: str, script: str | None, args: list[str],
               trigger: list[str] | None = None) -> RunRecord:
        if self.fail_submit:
            raise UsageError("unknown target 'nope'")
        run_id = f"run{len(self.submits) + 1}"
        self.submits.append((target_name, script, args, trigger))
        self.status[run_id] = RunStatus.RUNNING
        return RunRecord(run_id, "p", target_name, "local", RunStatus.QUEUED, time.time(),
                         script=script, args=args, trigger=trigger or [])

    def cancel(self, run_id: str) -> RunRecord:
        self.cancels.append(run_id)
        self.status[run_id] = RunStatus.CANCELED
        return self.get(run_id)

    def get(self, run_id: str, with_metrics: bool = True) -> RunRecord:
        return RunRecord(run_id, "p", "local", "local", self.status[run_id], 0.0)


def make(tmp_path: Path, policy: str) -> tuple[FakeEngine, Watcher, list[WatchEvent]]:
    engine = FakeEngine(status={"run0": RunStatus.RUNNING})
    events: list[WatchEvent] = []
    watcher = Watcher(engine, tree(tmp_path), "local", "train.py", ["--a", "1"], policy,
                      events.append, in_flight=["run0"])
    return engine, watcher, events


async def change(watcher: Watcher, *files: str) -> WatchEvent | None:
    watcher.notice(list(files))
    return await watcher.decide()


async def test_cancel_policy_cancels_the_run_in_flight_then_resubmits(tmp_path: Path) -> None:
    engine, watcher, events = make(tmp_path, "cancel")
    event = await change(watcher, "train.py")
    assert engine.cancels == ["run0"]
    assert engine.submits == [("local", "train.py", ["--a", "1"], ["train.py"])]
    assert event is not None and event.canceled == ["run0"] and event.run is not None
    assert events == [event] and watcher.pending is None


async def test_queue_policy_waits_for_the_run_in_flight(tmp_path: Path) -> None:
    engine, watcher, events = make(tmp_path, "queue")
    first = await change(watcher, "train.py")
    second = await change(watcher, "util.py")
    assert engine.submits == [] and engine.cancels == []
    assert first is not None and first.queued_after == "run0" and first.files == ["train.py"]
    assert second is not None and second.files == ["train.py", "util.py"]
    assert await watcher.decide() is None  # still running, and already reported
    engine.status["run0"] = RunStatus.COMPLETED
    started = await watcher.decide()
    assert started is not None and started.run is not None and started.queued_after is None
    assert engine.submits[0][3] == ["train.py", "util.py"]
    assert await watcher.decide() is None
    assert first.files == ["train.py"] and first.run is None  # what was reported stays put
    assert events == [first, second, started]


async def test_a_change_after_the_awaited_run_ended_starts_at_once(tmp_path: Path) -> None:
    engine, watcher, _events = make(tmp_path, "queue")
    engine.status["run0"] = RunStatus.FAILED
    event = await change(watcher, "train.py")
    assert event is not None and event.run is not None and len(engine.submits) == 1
    assert watcher.in_flight == [event.run.id]


async def test_parallel_policy_runs_alongside(tmp_path: Path) -> None:
    engine, watcher, _events = make(tmp_path, "parallel")
    await change(watcher, "train.py")
    assert engine.cancels == [] and len(engine.submits) == 1
    assert watcher.in_flight == ["run0", "run1"]


async def test_a_failed_submit_is_reported_and_watching_goes_on(tmp_path: Path) -> None:
    engine, watcher, events = make(tmp_path, "parallel")
    engine.fail_submit = True
    event = await change(watcher, "train.py")
    assert event is not None and event.error == "unknown target 'nope'" and event.run is None
    assert events == [event] and watcher.pending is None


async def test_decisions_take_turns(tmp_path: Path) -> None:
    """A change that arrives while a decision reads the statuses joins that decision; the
    decision asked for with it waits its turn and finds nothing left to do: one run."""
    engine, watcher, events = make(tmp_path, "queue")
    engine.status["run0"] = RunStatus.COMPLETED
    watcher.notice(["train.py"])
    first, second = await asyncio.gather(watcher.decide(), change(watcher, "util.py"))
    assert len(engine.submits) == 1 and second is None
    assert first is not None and first.run is not None and first.files == ["train.py", "util.py"]
    assert events == [first]


def test_unknown_policy_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown watch policy"):
        Policy.parse("sometimes")


async def test_the_loop_sees_a_real_save(tmp_path: Path) -> None:
    _engine, watcher, events = make(tmp_path, "cancel")
    stop = asyncio.Event()
    task = asyncio.create_task(watcher.run(stop))
    script = tmp_path / "train.py"
    for n in range(200):  # until the OS watch is in place (bounded: a hang guard)
        script.write_text(f"print({n + 10})\n")
        await asyncio.sleep(0.1)
        if events:
            break
    (tmp_path / "data" / "big.csv").write_text("ignored\n")
    await asyncio.sleep(0.3)
    stop.set()
    await asyncio.wait_for(task, 10)
    assert events and all(e.files == ["train.py"] for e in events)
