"""Helpers for benchmarks: timing commands side by side, medians, a small report."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOCKER_IMAGE = "labdeck/python-base:bookworm"


def labdeck_cli() -> str:
    """This checkout's console script (the venv running the bench), not another on PATH."""
    beside = Path(sys.executable).parent / "labdeck"
    return str(beside) if beside.exists() else shutil.which("labdeck") or "labdeck"


def byte_compile() -> bool:
    """Byte-compile labdeck as an installed package has it (this checkout may run with
    PYTHONDONTWRITEBYTECODE=1, which recompiles it on every start: ~50 ms); False when
    LABDECK_BENCH_AS_IS=1 asks to measure the checkout as it is."""
    if os.environ.get("LABDECK_BENCH_AS_IS"):
        return False
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "backends"),
                    str(REPO / "tui")], check=True, capture_output=True)
    return True


@contextmanager
def docker_project() -> Iterator[Path]:
    """A throwaway project with a prepared docker target (no dependencies) and noop.py; every
    container labdeck made for it is removed at the end."""
    if subprocess.run(["docker", "image", "inspect", DOCKER_IMAGE],
                      capture_output=True).returncode:
        raise SystemExit(f"{DOCKER_IMAGE} missing: run scripts/build-base-image.sh")
    root = Path(tempfile.mkdtemp(prefix="labdeck-bench-"))
    try:
        (root / "aml_config").mkdir()
        (root / "aml_config" / "docker.compute").write_text(
            f'type: docker\nbaseDockerImage: "{DOCKER_IMAGE}"\n')
        (root / "noop.py").write_text("pass\n")
        subprocess.run([labdeck_cli(), "prepare", "-c", "docker"], cwd=root, check=True,
                       capture_output=True)
        yield root
    finally:
        ids = subprocess.run(["docker", "ps", "-aq", "--filter",
                              f"label=org.labdeck.project={root}"],
                             capture_output=True, text=True).stdout.split()
        if ids:
            subprocess.run(["docker", "rm", "-f", *ids], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


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
