"""Helpers for benchmarks: timing commands side by side, medians, a small report."""

from __future__ import annotations

import json
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
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from backends.project import Project

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


def fill_store(root: Path, n: int, metrics: Sequence[str]) -> Project:
    """A project at ``root`` (made here, a local target) whose store holds ``n`` completed
    local runs, each with one value per name in ``metrics`` (0.5 .. 0.75 over the runs); the
    newest run is ``bench_{n - 1:06d}``. Rows go straight into the tables, in one transaction,
    and ``run_values`` (the metric columns the runs table shows) is rebuilt from them, as the
    store keeps it for runs recorded the normal way."""
    from backends.project import Project  # here: bench_spark.py imports this module first
    from backends.store import RunStore

    (root / "aml_config").mkdir(parents=True)
    (root / "aml_config" / "local.compute").write_text('type: "local"\n')
    project = Project(root)
    project.ensure_state()
    store = RunStore(project.db_path)
    runs = []
    for i in range(n):
        t = 1_700_000_000 + i * 60
        runs.append((f"bench_{i:06d}", "bench", "local", "local", "local", "train.py",
                     json.dumps(["--seed", str(i)]), "{}", "completed", t, t + 1, t + 30, 0))
    values = [(f"bench_{i:06d}", name, 0, json.dumps(0.5 + i / (4 * n)), 0, 0.0)
              for i in range(n) for name in metrics]
    db = store._db  # autocommit connection: one explicit transaction, not one per row
    db.execute("BEGIN IMMEDIATE")
    db.executemany(
        "INSERT INTO runs (id, project, target, target_type, runconfig, script, args, env,"
        " status, created, started, ended, exit_code) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", runs)
    db.executemany(
        "INSERT INTO metrics (run_id, name, seq, value, series, ts) VALUES (?,?,?,?,?,?)",
        values)
    db.execute("COMMIT")
    store.rebuild_values()
    store.close()
    return project


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
