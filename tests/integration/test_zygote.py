"""Threaded clients (the dashboard, watch mode) start supervisors through the zygote; the runs
outlive the client and the zygote alike."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from tests.conftest import Project, cli_env

CLIENT = """
import os, sys, threading, time
from pathlib import Path
from backends.engine import Engine
from backends.project import Project
threading.Thread(target=time.sleep, args=(60,), daemon=True).start()  # we are threaded now
engine = Engine(Project(Path(sys.argv[1])), fork_supervisors=True)
record = engine.submit("local", "count.py", [])
print(record.id, record.supervisor_pid, flush=True)
os.kill(os.getpid(), 9)  # die hard, as a crashed dashboard would
"""


def test_threaded_client_dies_and_its_runs_finish(project: Project) -> None:
    project.write("count.py", """
        import time
        for i in range(20):
            print(f"line {i}", flush=True)
            time.sleep(0.05)
    """)
    proc = subprocess.run([sys.executable, "-c", CLIENT, str(project.root)], env=cli_env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == -9, proc.stderr
    run_id, supervisor_pid = proc.stdout.split()
    assert int(supervisor_pid) > 0
    deadline = time.monotonic() + 30
    while True:
        shown = json.loads(project.cli("runs", "show", run_id, "-o", "json", check=True).stdout)
        if shown["status"] not in {"queued", "running"} or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert shown["status"] == "completed", shown
    log = project.cli("runs", "logs", run_id, check=True).stdout.splitlines()
    assert [line for line in log if line.startswith("line ")] == [f"line {i}" for i in range(20)]
    # the zygote noticed its client is gone and exited
    mine: list[str] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        ps = subprocess.run(["pgrep", "-f", "backends.zygote"], capture_output=True, text=True)
        mine = [p for p in ps.stdout.split() if _cwd_of(p) == str(project.root)]
        if not mine:
            break
        time.sleep(0.1)
    assert not mine


def _cwd_of(pid: str) -> str:
    import os

    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return ""


def test_a_long_lived_client_does_not_collect_descriptors(project: Project) -> None:
    """The dashboard and watch loops start runs without end: each run's "done" pipe is closed
    once its supervisor has exited, not kept for the client's lifetime."""
    import os
    from pathlib import Path

    from backends.engine import Engine
    from backends.project import Project as EngineProject

    project.write("quick.py", "print('hi')\n")
    engine = Engine(EngineProject(Path(project.root)))
    try:
        def open_fds() -> int:
            return len(os.listdir("/proc/self/fd"))

        def run_once() -> None:
            record = engine.submit("local", "quick.py", [])
            deadline = time.monotonic() + 30
            while not engine.get(record.id).status.is_terminal():
                assert time.monotonic() < deadline
                time.sleep(0.02)
            pid = engine.get(record.id).supervisor_pid
            while pid and os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
                time.sleep(0.02)

        run_once()
        before = open_fds()
        for _ in range(4):
            run_once()
        assert open_fds() <= before
    finally:
        engine.close()
