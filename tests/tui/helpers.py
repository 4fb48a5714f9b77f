"""Waiting on the app without timed asserts: poll a condition, fail with a message if it never
holds within a generous limit (a hang guard, not a speed check)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, TypeVar

from textual.pilot import Pilot
from textual.widgets import DataTable

M = TypeVar("M")
GUARD_S = 120.0  # a hang guard, not a speed bound: generous for a loaded machine


async def until(pilot: Pilot[Any], condition: Callable[[], bool], what: str,
                guard: float = GUARD_S) -> None:
    deadline = time.monotonic() + guard
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        await pilot.pause(0.05)


def of_type(messages: list[Any], kind: type[M]) -> list[M]:
    return [m for m in messages if isinstance(m, kind)]


async def settle(pilot: Pilot[Any]) -> None:
    """Let short workers (describe, explain, submit, store reads...) finish; the watcher runs
    on."""
    def idle() -> bool:
        reads = getattr(pilot.app, "reads", None)
        # A table measures its new rows' widths on its next idle: wait for that too (under
        # load a snapshot was taken with the widths of before).
        tables = pilot.app.screen.query(DataTable)
        return (all(w.is_finished or w.group in ("watch", "config-watch")
                    for w in pilot.app.workers)
                and not (reads is not None and reads.busy())
                and not any(t._require_update_dimensions for t in tables))

    # A message a worker posted can start another worker (a store read posts the runs, the
    # selected run's details are read next): idle twice in a row, with the messages between.
    await pilot.pause()
    for _ in range(100):
        await until(pilot, idle, "workers finish")
        await pilot.pause()
        await asyncio.sleep(0)
        if idle():
            return
    raise AssertionError("the dashboard never settles")
