"""Helpers for benchmarks: timing commands side by side, medians, a small report."""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def timed(cmd: Sequence[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    proc = subprocess.run(
        list(cmd), cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(
            f"benchmark command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}"
        )
    return elapsed


def side_by_side(
    a: Sequence[str],
    b: Sequence[str],
    cwd: Path,
    rounds: int,
    warmup: int = 2,
    env: dict[str, str] | None = None,
) -> tuple[list[float], list[float]]:
    """Alternate the two commands so that machine noise hits both alike."""
    for _ in range(warmup):
        timed(a, cwd, env)
        timed(b, cwd, env)
    ta: list[float] = []
    tb: list[float] = []
    for _ in range(rounds):
        ta.append(timed(a, cwd, env))
        tb.append(timed(b, cwd, env))
    return ta, tb


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def report(name: str, lines: list[str]) -> None:
    print(f"== {name}")
    for line in lines:
        print(f"   {line}")
    out = os.environ.get("LABDECK_BENCH_OUT")
    if out:
        with open(out, "a") as fh:
            fh.write(f"== {name}\n" + "".join(f"   {line}\n" for line in lines))


def median(values: list[float]) -> float:
    return statistics.median(values)
