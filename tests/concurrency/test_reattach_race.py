"""Several clients notice at the same moment that a run's supervisor died: exactly one takes it
over (one reattach for docker; one 'run lost' for local), and no line or metric appears twice.
Reads alone never start a supervisor."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from tests.conftest import Project
from tests.docker.conftest import labelled, record, run_id_of, wait_no_containers

CLIENTS = 5

SLOW = """
    import sys, time
    from azureml.logging import get_azureml_logger
    log = get_azureml_logger()
    for i in range(40):
        print(f"line {i}", flush=True)
        if i % 5 == 0:
            log.log("step", i)
        time.sleep(0.1)
    print("the end")
"""


def supervisor_of(project: Project, run_id: str) -> tuple[int, int]:
    db = sqlite3.connect(project.root / ".labdeck" / "runs.db")
    try:
        pid, start = db.execute(
            "select supervisor_pid, supervisor_start from runs where id=?", (run_id,)
        ).fetchone()
    finally:
        db.close()
    return int(pid), int(start)


def wait_status(project: Project, run_id: str, wanted: set[str], timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    status = ""
    while time.monotonic() < deadline:
        status = str(record(project, run_id)["status"])
        if status in wanted:
            return status
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} still {status!r} after {timeout}s")


def kill_supervisor(project: Project, run_id: str) -> int:
    pid, _start = supervisor_of(project, run_id)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.02)  # a zombie until its parent reaps it; gone for /proc once reaped
    return pid


def all_at_once(project: Project, *args: str) -> list[str]:
    """CLIENTS labdeck processes started together; their stderr."""
    procs = [project.popen(*args) for _ in range(CLIENTS)]
    errs = []
    for proc in procs:
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        errs.append(err)
    return errs


def test_reads_never_start_a_supervisor(project: Project) -> None:
    """A plain read (runs list through the engine's get/runs) is read-only: only the explicit
    recover step takes a dead supervisor's run over."""
    from backends.engine import Engine
    from backends.project import Project as EngineProject

    project.write("sleepy.py", "import time\ntime.sleep(30)\n")
    res = project.cli("submit", "-a", "-c", "local", "sleepy.py", check=True)
    run_id = run_id_of(res.stdout)
    wait_status(project, run_id, {"running"})
    dead = kill_supervisor(project, run_id)
    engine = Engine(EngineProject(project.root))
    try:
        assert engine.get(run_id).status.value == "running"
        assert [r.status.value for r in engine.runs()] == ["running"]
        assert engine.store.get(run_id).supervisor_pid == dead  # untouched by the reads
        assert engine.recover() == [run_id]
        assert engine.get(run_id).status.value == "failed"
    finally:
        engine.close()


def test_local_run_lost_once_among_racing_clients(project: Project) -> None:
    project.write("sleepy.py", "import time\nprint('up', flush=True)\ntime.sleep(30)\n")
    res = project.cli("submit", "-a", "-c", "local", "sleepy.py", check=True)
    run_id = run_id_of(res.stdout)
    wait_status(project, run_id, {"running"})
    kill_supervisor(project, run_id)
    all_at_once(project, "runs", "show", run_id)
    rec = record(project, run_id)
    assert rec["status"] == "failed" and "died" in str(rec["error"])
    # The script's process group was killed by the client that won the claim.
    db = sqlite3.connect(project.root / ".labdeck" / "runs.db")
    ref = db.execute("select durable_ref from runs where id=?", (run_id,)).fetchone()[0]
    db.close()
    script_pid = int(ref.partition(":")[2])
    deadline = time.monotonic() + 10
    while Path(f"/proc/{script_pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{script_pid}").exists()
    log = (project.root / ".labdeck" / "runs" / run_id / "log").read_text()
    assert log.count("up") == 1


@pytest.mark.docker
def test_one_reattach_among_racing_clients(dproject: Project) -> None:
    dproject.write("slow.py", SLOW)
    res = dproject.cli("submit", "-a", "-c", "docker", "slow.py", check=True)
    run_id = run_id_of(res.stdout)
    wait_status(dproject, run_id, {"running"})
    time.sleep(1.0)  # some lines before the supervisor dies, so the resume point matters
    kill_supervisor(dproject, run_id)
    assert len(labelled("org.labdeck.run", run_id)) == 1  # the run goes on without it
    all_at_once(dproject, "runs", "show", run_id)
    wait_status(dproject, run_id, {"completed", "failed", "canceled"}, timeout=120)
    log = (dproject.root / ".labdeck" / "runs" / run_id / "log").read_text().splitlines()
    assert sum("reattaching" in line for line in log) == 1, "\n".join(log)
    outs = [line.split(" ", 2)[2] for line in log if " out line " in line]
    assert outs == [f"line {i}" for i in range(40)]  # none missing, none twice
    rec = record(dproject, run_id)
    assert rec["status"] == "completed"
    assert rec["metrics"] == {"step": list(range(0, 40, 5))}
    assert wait_no_containers(dproject.root) == []
