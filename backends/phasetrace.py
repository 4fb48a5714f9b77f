"""``LABDECK_TRACE=1``: when each phase of a submit happens, from the CLI's start to the script's
start and back to the CLI's exit, on one clock (``time.time``) across the processes.

Each process keeps its marks in memory (a list append: nothing measurable when on, one test
when off) and appends them at its end to the run's ``supervisor.log`` as
``trace <seconds> <process> <phase> cpu=<ms>`` lines: ``cpu`` is the CPU time that process had
used by then (a forked one counts from its fork), so a step whose wall time is well above its
CPU time was spent waiting (the machine's load, another process). The script's start is noted by
the output hook (shim/sitecustomize.py, through ``LABDECK_TRACE_FILE``).
``bench/bench_local_submit.py --trace`` sums them up. Only modules every submit has loaded
already are used.
"""

from __future__ import annotations

import os
import time

ENABLED = os.environ.get("LABDECK_TRACE") == "1"
FILE_ENV = "LABDECK_TRACE_FILE"  # where a run's script notes its start (set by the supervisor)
_marks: list[tuple[float, float, str]] = []


def mark(phase: str) -> None:
    if ENABLED:
        _marks.append((time.time(), time.process_time(), phase))


def forget() -> None:
    """In a forked child: the parent's marks are the parent's to write."""
    _marks.clear()


def write(process: str, path: str | None = None, fd: int | None = None) -> None:
    """Append the marks so far to ``path`` (or ``fd``) and forget them."""
    if not ENABLED or not _marks or (path is None and fd is None):
        return
    text = "".join(f"trace {ts:.6f} {process} {phase} cpu={cpu * 1000:.1f}\n"
                   for ts, cpu, phase in _marks)
    _marks.clear()
    try:
        if fd is None:
            assert path is not None
            out = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(out, text.encode())
            finally:
                os.close(out)
        else:
            os.write(fd, text.encode())
    except OSError:
        pass  # a trace is never worth failing a run or a submit
