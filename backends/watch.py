"""Watch mode: resubmit a run when a project file's content changes.

watchfiles reports OS events; the project's ignore rules (.gitignore, .labdeckignore) drop what
would not travel in a snapshot, per-file content hashes drop saves that change nothing, a short
debounce folds bursts into one resubmission, and the policy decides what happens to the run in
flight: cancel it (default), queue the new one after it, or run both. No UI code lives here: the
CLI (``tui/watch_cli.py``) and the dashboard both drive a ``Watcher``.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from .errors import UsageError, one_line
from .snapshot import IGNORE_FILES, IgnoreRules, file_sha256
from .store import RunRecord

DEBOUNCE_MS = 50  # watchfiles waits this long for a burst to settle (its default is 1600 ms)
STEP_MS = 10  # and checks this often within the debounce window
QUEUE_POLL_S = 0.05  # how often a queued resubmission looks at the run it waits for


class Policy(StrEnum):
    CANCEL = "cancel"  # cancel the run in flight, then start the new one
    QUEUE = "queue"  # start the new one when the run in flight ends
    PARALLEL = "parallel"  # start the new one alongside

    @classmethod
    def parse(cls, value: str | Policy) -> Policy:
        try:
            return cls(value)
        except ValueError:
            names = ", ".join(p.value for p in cls)
            raise UsageError(f"unknown watch policy {value!r} (known: {names})") from None


class EngineLike(Protocol):
    """The part of ``Engine`` a watcher uses (a test can pass a fake)."""

    def submit(self, target_name: str, script: str | None, args: list[str],
               trigger: list[str] | None = None) -> RunRecord: ...

    def cancel(self, run_id: str) -> RunRecord: ...

    def get(self, run_id: str, with_metrics: bool = True) -> RunRecord: ...

    def warm_up(self) -> None: ...


@dataclass
class WatchEvent:
    """One resubmission (or a queued one): what changed and what the watcher did about it."""

    files: list[str]
    run: RunRecord | None = None  # the run started; None while queued
    canceled: list[str] = field(default_factory=list)
    queued_after: str | None = None  # the run id a queued resubmission waits for
    error: str | None = None  # a submit that failed (one line)
    event_time: float = 0.0  # time.monotonic() when watchfiles reported the change
    submit_time: float = 0.0  # time.monotonic() when the new run was recorded

    def describe(self) -> str:
        """One line for a person: what changed and what the watcher did about it."""
        files = ", ".join(self.files)
        if self.error:
            return f"{files} changed; resubmit failed: {self.error}"
        if self.run is None:
            return f"{files} changed; queued after run {self.queued_after}"
        text = f"{files} changed -> run {self.run.id} submitted to {self.run.target}"
        if self.canceled:
            text += f" (canceled {', '.join(self.canceled)})"
        return text


def file_digest(path: Path) -> str | None:
    """sha256 of a file's bytes and exec bit; None when it is gone or unreadable."""
    try:
        st = path.stat()
        digest = file_sha256(path)
    except OSError:
        return None
    return f"{digest}:{int(bool(st.st_mode & 0o100))}"


class ChangeDetector:
    """Which reported paths really changed: travelling files whose content hash moved."""

    def __init__(self, root: Path):
        self.root = root.resolve()
        self._rules = IgnoreRules(self.root)
        self._hashes: dict[str, str | None] = {}
        self.rescan()

    def rescan(self) -> None:
        """Reload the ignore rules and hash every file that travels."""
        self._rules = IgnoreRules(self.root)
        self._hashes = {e.rel: file_digest(self.root / e.rel) for e in self._rules.walk()}

    def relative(self, path: str) -> str | None:
        """The POSIX path relative to the root, or None when it is outside or ignored."""
        try:
            rel = Path(path).resolve().relative_to(self.root).as_posix()
        except (ValueError, OSError):
            return None
        if rel in ("", "."):
            return None
        parts = rel.split("/")
        for i in range(1, len(parts)):
            if self._rules.ignored("/".join(parts[:i]), True):
                return None
        if parts[-1] in IGNORE_FILES:
            return rel  # an ignore file counts even when it ignores itself
        return None if self._rules.ignored(rel, os.path.isdir(path)) else rel

    def changed(self, paths: set[str]) -> list[str]:
        """The relative paths among ``paths`` whose content differs from the last look."""
        out: list[str] = []
        rules_changed = False
        for path in paths:
            rel = self.relative(path)
            if rel is None or os.path.isdir(path):
                continue
            new = file_digest(self.root / rel)
            if new == self._hashes.get(rel):
                continue
            if new is None and rel not in self._hashes:
                continue  # a temp file that came and went
            self._hashes[rel] = new
            if new is None:
                del self._hashes[rel]
            if Path(rel).name in IGNORE_FILES:
                rules_changed = True
            out.append(rel)
        if rules_changed:
            self.rescan()
        return sorted(out)


class Watcher:
    """Resubmits ``script args`` on ``target`` each time the project's content changes.

    One owner for the watcher's state (``in_flight``, ``pending``): the event loop. A change is
    folded into ``pending`` there, and ``decide`` applies the policy to it, one decision at a
    time; threads only do the blocking calls (hashing, reading statuses, cancel, submit) and
    return their results. So a save that arrives while the queue is starting its run waits for
    that run's id and is queued after it, instead of starting a second run alongside.
    """

    def __init__(self, engine: EngineLike, root: Path, target: str, script: str | None,
                 args: list[str], policy: Policy | str = Policy.CANCEL,
                 on_event: Callable[[WatchEvent], None] = lambda _e: None,
                 in_flight: list[str] | None = None):
        self.engine = engine
        self.root = root
        self.target = target
        self.script = script
        self.args = list(args)
        self.policy = Policy.parse(policy)
        self.on_event = on_event  # called on the event loop
        self.in_flight: list[str] = list(in_flight or [])  # runs this watcher is responsible for
        self.pending: WatchEvent | None = None  # the resubmission to make (or queued)
        self._unreported = False  # ``pending`` took a change that was not reported yet
        self._deciding = asyncio.Lock()  # one decision at a time, even across its awaits
        self._wake = asyncio.Event()  # a change arrived: decide now, not at the next poll
        self._detector: ChangeDetector | None = None  # hashes every file: made in run()

    # ---------------------------------------------------------------- the decision

    def notice(self, files: list[str], event_time: float | None = None) -> None:
        """Fold changed files (already filtered and hashed) into the pending resubmission."""
        when = event_time or time.monotonic()
        if self.pending is None:
            self.pending = WatchEvent(sorted(files), event_time=when)
        else:
            self.pending.files = sorted({*self.pending.files, *files})
            self.pending.event_time = when
        self._unreported = True
        self._wake.set()

    async def decide(self) -> WatchEvent | None:
        """Apply the policy to the pending resubmission: start it (canceling the runs in flight
        under ``cancel``), or report it queued while a run is in flight under ``queue``.
        Returns what was reported, None when there was nothing to report."""
        async with self._deciding:
            if self.pending is None:
                return None
            alive = await asyncio.to_thread(self._alive, list(self.in_flight))
            self.in_flight = [run_id for run_id in self.in_flight if run_id in alive]
            event = self.pending
            if self.policy is Policy.QUEUE and alive:
                if not self._unreported:
                    return None
                self._unreported = False
                event.queued_after = alive[-1]
                return self._report(replace(event, files=list(event.files)))
            self.pending, self._unreported = None, False
            event.queued_after = None
            if self.policy is Policy.CANCEL:
                for run_id in alive:
                    try:
                        await asyncio.to_thread(self.engine.cancel, run_id)
                        event.canceled.append(run_id)
                    except Exception as err:  # one failed cancel must not stop the resubmission
                        event.error = one_line(err)
            return await self._submit(event)

    async def _submit(self, event: WatchEvent) -> WatchEvent:
        try:
            record = await asyncio.to_thread(self.engine.submit, self.target, self.script,
                                             self.args, event.files)
        except Exception as err:  # reported to the user as one line; watching goes on
            event.error = one_line(err)
            return self._report(event)
        event.submit_time = time.monotonic()
        event.run = record
        self.in_flight.append(record.id)
        return self._report(event)

    def _report(self, event: WatchEvent) -> WatchEvent:
        self.on_event(event)
        return event

    def _alive(self, run_ids: list[str]) -> list[str]:
        """Blocking (a thread's job): which of ``run_ids`` have not reached a terminal status."""
        alive = []
        for run_id in run_ids:
            try:
                if not self.engine.get(run_id, with_metrics=False).status.is_terminal():
                    alive.append(run_id)
            except Exception:  # a run deleted from the store is not in flight any more
                continue
        return alive

    # ---------------------------------------------------------------- the loop

    @property
    def detector(self) -> ChangeDetector:
        if self._detector is None:
            self._detector = ChangeDetector(self.root)
        return self._detector

    def _filter(self, _change: Any, path: str) -> bool:
        return self.detector.relative(path) is not None

    async def run(self, stop_event: asyncio.Event | None = None,
                  ready: Callable[[], None] | None = None) -> None:
        """Watch until ``stop_event`` is set (or the task is cancelled). What blocks (hashing
        files, submitting and canceling runs, reading the store) runs in a thread: the loop may
        be the dashboard's own."""
        from watchfiles import awatch

        stop = stop_event or asyncio.Event()
        await asyncio.to_thread(lambda: self.detector)  # the first look at every file
        await asyncio.to_thread(self.engine.warm_up)
        decider = asyncio.create_task(self._decide_loop())

        def decider_ended(task: asyncio.Task[None]) -> None:
            if not task.cancelled() and task.exception() is not None:
                stop.set()  # a decision failed (a broken on_event): stop, and raise it below

        decider.add_done_callback(decider_ended)
        try:
            watcher = awatch(self.root, watch_filter=self._filter, debounce=DEBOUNCE_MS,
                             step=STEP_MS, stop_event=stop)
            if ready is not None:
                ready()
            async for changes in watcher:
                event_time = time.monotonic()
                paths = {path for _change, path in changes}
                files = await asyncio.to_thread(self.detector.changed, paths)
                if files:
                    self.notice(files, event_time)
        finally:
            decider.cancel()
            with suppress(asyncio.CancelledError):
                await decider

    async def _decide_loop(self) -> None:
        """The decisions, one at a time: at each change, and every ``QUEUE_POLL_S`` while a
        resubmission is queued (to see the run it waits for end)."""
        while True:
            if not self._wake.is_set():
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(),
                                           QUEUE_POLL_S if self.pending is not None else None)
            self._wake.clear()
            await self.decide()
