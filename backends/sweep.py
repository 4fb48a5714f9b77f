"""Parameter sweeps: a grid (``--grid rate=0.01,0.1,1``, crossed) and/or random draws
(``--random rate=0.001:1 --count 8``, seeded), each point one run under the sweep's id.

A point reaches the script as ``--name value`` arguments after the script's own and is recorded
as the run's params with the run itself. ``run_sweep`` keeps at most N runs in flight: it submits
as ``submit -a`` does and waits on the supervisors' exit pipes (a timeout re-reads statuses, and a
dead supervisor is reconciled), until every point ran or the sweep was canceled.
"""

from __future__ import annotations

import itertools
import math
import random
import re
import select
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import UsageError
from .history import scalar
from .store import RunMeta, RunRecord

if TYPE_CHECKING:
    from .engine import Engine

_PARAM = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
WAIT_S = 1.0  # longest wait between two looks at the runs in flight


@dataclass
class Axis:
    name: str
    values: list[Any] = field(default_factory=list)  # grid
    low: float = 0.0  # random: uniform in [low, high] (log-uniform with log=True)
    high: float = 0.0
    integer: bool = False
    log: bool = False


def _name(text: str, option: str, spec: str) -> str:
    if not _PARAM.fullmatch(text):
        raise UsageError(f"{option} {spec!r}: expected NAME=... (NAME: letters, digits, _ -,"
                         " passed to the script as --NAME)")
    return text


def parse_grid(spec: str) -> Axis:
    """``name=v1,v2,...``: the values as typed (numbers typed as numbers)."""
    name, sep, rest = spec.partition("=")
    values = [v.strip() for v in rest.split(",")]
    if not sep or not rest.strip() or any(not v for v in values):
        raise UsageError(f"--grid {spec!r}: expected NAME=V1,V2,... (e.g. rate=0.01,0.1,1)")
    return Axis(_name(name.strip(), "--grid", spec), [scalar(v) for v in values])


def parse_random(spec: str) -> Axis:
    """``name=low:high`` (integers when both are; ``:log`` for a log-uniform draw)."""
    name, sep, rest = spec.partition("=")
    parts = rest.split(":")
    log = len(parts) == 3 and parts[2] == "log"
    if log:
        parts = parts[:2]
    bounds = [scalar(p.strip()) for p in parts]
    if (not sep or len(bounds) != 2
            or not all(isinstance(b, int | float) and not isinstance(b, bool) for b in bounds)):
        raise UsageError(f"--random {spec!r}: expected NAME=LOW:HIGH or NAME=LOW:HIGH:log"
                         " (e.g. rate=0.0001:1:log)")
    low, high = float(bounds[0]), float(bounds[1])
    if low > high or (log and low <= 0):
        raise UsageError(f"--random {spec!r}: LOW must be at most HIGH"
                         + (" and above 0 for :log" if log else ""))
    integer = all(isinstance(b, int) for b in bounds)
    return Axis(_name(name.strip(), "--random", spec), low=low, high=high, integer=integer,
                log=log)


def points(
    grid: list[Axis], rand: list[Axis], count: int | None, seed: int
) -> list[dict[str, Any]]:
    """Every grid combination (in the order given), each with ``count`` random draws when there
    are random axes; draws depend on ``seed`` only."""
    names = [a.name for a in [*grid, *rand]]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup is not None:
        raise UsageError(f"param {dup!r} is swept twice")
    if rand and not count:
        raise UsageError("--random needs --count N (how many draws)")
    if count and not rand:
        raise UsageError("--count goes with --random (a grid runs each combination once)")
    if not grid and not rand:
        raise UsageError("say what to sweep: --grid NAME=V1,V2,... or --random NAME=LOW:HIGH")
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    for combo in itertools.product(*[a.values for a in grid]):
        base = dict(zip([a.name for a in grid], combo, strict=True))
        for _ in range(count or 1):
            point = dict(base)
            for axis in rand:
                point[axis.name] = draw(axis, rng)
            out.append(point)
    return out


def draw(axis: Axis, rng: random.Random) -> int | float:
    if axis.integer and not axis.log:
        return rng.randint(int(axis.low), int(axis.high))
    if axis.log:
        value = math.exp(rng.uniform(math.log(axis.low), math.log(axis.high)))
    else:
        value = rng.uniform(axis.low, axis.high)
    if axis.integer:
        return round(value)
    return float(f"{value:.6g}")  # what the script is given and what is recorded agree


def point_args(point: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for name, value in point.items():
        out += [f"--{name}", _arg(value)]
    return out


def _arg(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# ------------------------------------------------------------------------ running


@dataclass
class SweepEvents:
    """What the loop tells its caller (the CLI prints it)."""

    submitted: Callable[[RunRecord, dict[str, Any]], None] = lambda record, point: None
    ended: Callable[[RunRecord], None] = lambda record: None


def run_sweep(
    engine: Engine,
    sweep_id: str,
    target: str,
    script: str,
    args: list[str],
    todo: list[dict[str, Any]],
    parallel: int,
    events: SweepEvents | None = None,
    *,
    tags: dict[str, str] | None = None,
    name: str | None = None,
) -> list[str]:
    """Submit every point, never more than ``parallel`` in flight; returns the run ids once
    all have ended (or, the sweep canceled, once those submitted have). ``tags`` go on every
    run; ``name``, when given, names the runs ``NAME-1``, ``NAME-2``... in the points' order
    (both through ``Engine.submit``'s ``meta``, recorded with the run atomically)."""
    if parallel < 1:
        raise UsageError("--parallel: 1 or more")
    events = events or SweepEvents()
    store = engine.store
    pending = list(todo)
    in_flight: list[str] = []
    started: list[str] = []
    number = 0
    while pending or in_flight:
        canceled = store.sweep(sweep_id).cancel_requested
        if canceled:
            pending.clear()
        while pending and len(in_flight) < parallel:
            point = pending.pop(0)
            number += 1
            meta = RunMeta(params=dict(point), sweep=sweep_id, tags=dict(tags or {}),
                           name=None if name is None else f"{name}-{number}")
            record = engine.submit(target, script, [*args, *point_args(point)], meta=meta)
            started.append(record.id)
            in_flight.append(record.id)
            events.submitted(record, point)
            if store.sweep(sweep_id).cancel_requested:  # canceled while this one was submitted
                engine.cancel(record.id)
                pending.clear()
        _wait_any(engine, in_flight)
        for run_id in list(in_flight):
            record = engine.reconcile(store.get(run_id, with_metrics=False))
            if record.status.is_terminal():
                in_flight.remove(run_id)
                engine.forget_done_fd(run_id)
                events.ended(store.get(run_id))
    return started


def _wait_any(engine: Engine, run_ids: list[str]) -> None:
    """Until a supervisor of ``run_ids`` exits (its pipe reads EOF) or ``WAIT_S`` passed."""
    fds = [fd for fd in (engine.done_fd(r) for r in run_ids) if fd is not None]
    if not fds:
        time.sleep(min(WAIT_S, 0.2))
        return
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    poller.poll(WAIT_S * 1000)


def cancel_sweep(engine: Engine, sweep_id: str) -> list[RunRecord]:
    """Stop the sweep: no further point is submitted (its loop reads the flag), and each of its
    runs not yet ended is canceled. The runs it asked to cancel."""
    store = engine.store
    store.request_sweep_cancel(sweep_id)
    out = []
    for record in store.select("sweep = ?", [sweep_id], with_metrics=False):
        if not record.status.is_terminal():
            out.append(engine.cancel(record.id))
    return out
