"""``labdeck submit --watch``: submit, then resubmit on every content change; stream the logs.

Ctrl-C stops watching and leaves the runs going (they belong to their supervisors).
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from backends.logfile import LogEntry, read_from
from backends.watch import Policy, Watcher, WatchEvent

from .render import log_line

TAIL_S = 0.02


def _say(message: str) -> None:
    sys.stderr.write(f"labdeck: {message}\n")
    sys.stderr.flush()


class _Tails:
    """Streams the log of every run the watcher started, from its first byte."""

    def __init__(self, engine: Any):
        self.engine = engine
        self.offsets: dict[str, int] = {}

    def add(self, run_id: str) -> None:
        self.offsets.setdefault(run_id, 0)

    def pump(self) -> None:
        many = len(self.offsets) > 1
        for run_id, offset in list(self.offsets.items()):
            lines, new = read_from(self.engine.log_path(run_id), offset)
            self.offsets[run_id] = new
            for line in lines:
                text = log_line(LogEntry.parse(line))
                prefix = f"[{run_id[-6:]}] " if many else ""
                stream = sys.stderr if line.split(" ", 2)[1:2] == ["err"] else sys.stdout
                stream.write(prefix + text + "\n")
            if lines:
                sys.stdout.flush()
            elif self.engine.store.get(run_id, with_metrics=False).status.is_terminal():
                lines, _ = read_from(self.engine.log_path(run_id), new)
                if not lines:
                    del self.offsets[run_id]


async def _watch(engine: Any, target: str, script: str | None, args: list[str],
                 policy: Policy) -> None:
    first = engine.submit(target, script, args)
    _say(f"run {first.id} submitted to {first.target}; watching {engine.project.root} "
         f"(policy {policy.value}; Ctrl-C stops watching, runs go on)")
    tails = _Tails(engine)
    tails.add(first.id)

    def on_event(event: WatchEvent) -> None:
        _say(event.describe())
        if event.run is not None:
            tails.add(event.run.id)

    watcher = Watcher(engine, engine.project.root, target, script, args, policy, on_event,
                      in_flight=[first.id])
    task = asyncio.create_task(watcher.run())
    try:
        while not task.done():
            tails.pump()
            await asyncio.sleep(TAIL_S)
        task.result()
    finally:
        task.cancel()


def watch_and_submit(engine: Any, target: str, script: str | None, args: list[str],
                     policy: str) -> int:
    """Run watch mode until Ctrl-C; returns the exit status for the CLI."""
    chosen = Policy.parse(policy)
    try:
        asyncio.run(_watch(engine, target, script, args, chosen))
    except KeyboardInterrupt:
        _say("stopped watching; runs in flight go on (labdeck runs list)")
        return 130
    return 0
