"""Tail a run's log file until the run ends (used by ``submit`` and ``runs logs -f``)."""

from __future__ import annotations

import select
import sys
import time
from collections.abc import Callable

from backends.engine import Engine
from backends.logfile import LogEntry, last_lines, read_from
from backends.store import RunRecord

POLL_S = 0.01
POLL_MAX_S = 0.1
RECONCILE_EVERY_S = 2.0


def print_entry(entry: LogEntry, timestamps: bool = False) -> None:
    from .render import log_line

    stream = sys.stderr if entry.stream in ("err", "sys") else sys.stdout
    stream.write(log_line(entry, timestamps) + "\n")


def follow(
    engine: Engine,
    run_id: str,
    *,
    follow: bool = True,
    timestamps: bool = False,
    emit: Callable[[LogEntry, bool], None] = print_entry,
    tail: int | None = None,
) -> RunRecord:
    """Print the log from the start (or its last ``tail`` lines); with ``follow``, keep printing
    until the run is terminal and its log is fully read."""
    path = engine.log_path(run_id)
    offset = 0
    if tail is not None:
        lines, offset = last_lines(path, tail)
        for line in lines:
            emit(LogEntry.parse(line), timestamps)
    delay = POLL_S
    last_reconcile = time.monotonic()
    record = engine.store.get(run_id, with_metrics=False)
    while True:
        lines, offset = read_from(path, offset)
        for line in lines:
            emit(LogEntry.parse(line), timestamps)
        if lines:
            sys.stdout.flush()
            delay = POLL_S
            continue
        if not follow:
            return record
        record = engine.store.get(run_id, with_metrics=False)
        if record.status.is_terminal():
            lines, offset = read_from(path, offset)  # the supervisor's last lines
            for line in lines:
                emit(LogEntry.parse(line), timestamps)
            sys.stdout.flush()
            return record
        if time.monotonic() - last_reconcile > RECONCILE_EVERY_S:
            record = engine.reconcile(record)
            last_reconcile = time.monotonic()
        done = engine.done_fd(run_id)
        if done is not None:
            # Wakes the moment our supervisor exits, instead of a poll later.
            readable, _, _ = select.select([done], [], [], delay)
            if readable:
                engine.forget_done_fd(run_id)
        else:
            time.sleep(delay)
        delay = min(delay * 1.5, POLL_MAX_S)
