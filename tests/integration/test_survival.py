"""Runs survive their client, and a cancel leaves no process behind."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from backends import procutil
from tests.conftest import Project

COUNTER = """
    import sys, time
    for i in range(40):
        print(f"line {i}", flush=True)
        if i % 7 == 0:
            print(f"err {i}", file=sys.stderr, flush=True)
        time.sleep(0.05)
    print("the end")
"""

SPAWNER = """
    import os, subprocess, sys, time
    # a plain child, a grandchild, and a double-forked daemon in its own session
    kids = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])]
    kids.append(subprocess.Popen([sys.executable, "-c",
        "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', "
        "'import time; time.sleep(600)']); time.sleep(600)"]))
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            open("daemon.pid", "w").write(str(os.getpid()))
            time.sleep(600)
        os._exit(0)
    with open("pids.txt", "w") as fh:
        fh.write(" ".join(str(k.pid) for k in kids))
    print("spawned", flush=True)
    time.sleep(600)
"""


def _show(project: Project, run_id: str) -> dict:
    return json.loads(project.cli("runs", "show", run_id, "-o", "json", check=True).stdout)


def _wait(project: Project, run_id: str, statuses: set[str], timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        shown = _show(project, run_id)
        if shown["status"] in statuses or time.monotonic() > deadline:
            return shown
        time.sleep(0.1)


def test_kill_9_of_the_cli_loses_no_run_and_no_line(project: Project) -> None:
    project.write("count.py", COUNTER)
    cli = project.popen("submit", "-c", "local", "count.py")
    assert cli.stdout is not None
    run_id = cli.stdout.readline().strip()
    first = cli.stdout.readline()
    assert first.startswith("line 0")
    os.kill(cli.pid, signal.SIGKILL)
    cli.wait()
    shown = _wait(project, run_id, {"completed", "failed", "canceled"})
    assert shown["status"] == "completed"
    assert shown["exit_code"] == 0
    out = project.cli("runs", "logs", run_id, "-f", check=True)
    lines = out.stdout.splitlines()
    assert [line for line in lines if line.startswith("line ")] == [f"line {i}" for i in range(40)]
    assert "the end" in lines
    assert [e for e in out.stderr.splitlines() if e.startswith("err ")] == [
        f"err {i}" for i in range(0, 40, 7)
    ]


def test_logs_follow_attaches_to_a_running_run(project: Project) -> None:
    project.write("count.py", COUNTER)
    run_id = project.cli("submit", "-a", "-c", "local", "count.py", check=True).stdout.strip()
    out = project.cli("runs", "logs", run_id, "-f", check=True)
    assert out.stdout.splitlines()[-1] == "the end"
    assert len([x for x in out.stdout.splitlines() if x.startswith("line ")]) == 40


def test_cancel_kills_children_grandchildren_and_daemons(project: Project) -> None:
    project.write("spawner.py", SPAWNER)
    run_id = project.cli("submit", "-a", "-c", "local", "spawner.py", check=True).stdout.strip()
    shown = _wait(project, run_id, {"running"})
    workdir = project.root / ".labdeck" / "runs" / run_id / "snapshot"
    deadline = time.monotonic() + 20
    while not ((workdir / "pids.txt").is_file() and (workdir / "daemon.pid").is_file()):
        assert time.monotonic() < deadline, "spawner never started its children"
        time.sleep(0.05)
    pids = [int(p) for p in (workdir / "pids.txt").read_text().split()]
    daemon = int((workdir / "daemon.pid").read_text())
    script_pid = _durable_pid(project, run_id)
    grandchildren: list[int] = []
    while not grandchildren:  # the second child starts its own child: wait for it, not a guess
        assert time.monotonic() < deadline, "the grandchild never started"
        grandchildren = [g for p in pids for g in procutil.descendants(p)]
        time.sleep(0.05)
    family = [script_pid, daemon, *pids, *grandchildren]
    assert all(procutil.alive(p) for p in family), family
    start = time.monotonic()
    res = project.cli("runs", "cancel", run_id, check=True)
    assert time.monotonic() - start < 5
    assert "canceled" in res.stdout
    left = procutil.wait_gone(family, 5)
    assert left == [], f"processes survived the cancel: {left}"
    assert _show(project, run_id)["status"] == "canceled"
    assert shown["id"] == run_id


def _durable_pid(project: Project, run_id: str) -> int:
    from backends.store import RunStore

    store = RunStore(project.root / ".labdeck" / "runs.db")
    try:
        ref = store.get(run_id).durable_ref
    finally:
        store.close()
    assert ref is not None and ref.startswith("pid:")
    return int(ref[4:])


def test_a_dead_supervisor_is_noticed_and_its_run_failed(project: Project) -> None:
    project.write("sleepy.py", "import time\nprint('up', flush=True)\ntime.sleep(600)\n")
    run_id = project.cli("submit", "-a", "-c", "local", "sleepy.py", check=True).stdout.strip()
    _wait(project, run_id, {"running"})
    from backends.store import RunStore

    store = RunStore(project.root / ".labdeck" / "runs.db")
    record = store.get(run_id)
    store.close()
    assert record.supervisor_pid is not None
    script_pid = _durable_pid(project, run_id)
    os.kill(record.supervisor_pid, signal.SIGKILL)
    procutil.wait_gone([record.supervisor_pid], 5)
    shown = _show(project, run_id)
    assert shown["status"] == "failed"
    assert "supervisor" in shown["error"]
    assert procutil.wait_gone([script_pid], 5) == []  # no orphan keeps running


def test_terminal_status_never_changes(tmp_path: Path) -> None:
    from backends.status import RunStatus
    from backends.store import RunStore

    store = RunStore(tmp_path / "runs.db")
    rec = store.create("p", "local", "local", runconfig=None, script="a.py", args=[], env={})
    assert store.set_status(rec.id, RunStatus.RUNNING)
    assert store.set_status(rec.id, RunStatus.COMPLETED, exit_code=0)
    assert not store.set_status(rec.id, RunStatus.FAILED, exit_code=1)
    assert not store.set_status(rec.id, RunStatus.RUNNING)
    again = store.get(rec.id)
    assert again.status is RunStatus.COMPLETED and again.exit_code == 0
    store.close()


CANCEL_AT_ONCE = """
import json, sys, time
from pathlib import Path
from backends.engine import Engine
from backends.project import Project
engine = Engine(Project(Path(sys.argv[1])), fork_supervisors=True)  # single-threaded: early fork
record = engine.submit("local", "sleepy.py", [])
engine.cancel(record.id)  # SIGTERM at once: the supervisor is still loading its modules
deadline = time.monotonic() + 30
while not record.status.is_terminal() and time.monotonic() < deadline:
    time.sleep(0.05)
    record = engine.store.get(record.id, with_metrics=False)
print(json.dumps({"status": record.status.value, "error": record.error}))
"""


def test_a_cancel_sent_while_the_supervisor_starts_is_not_lost(project: Project) -> None:
    """The early-forked supervisor ignores SIGTERM until its handler exists (it may be starting
    a container by then); the cancel's store flag still stops the run."""
    import subprocess
    import sys

    from tests.conftest import REPO, cli_env

    project.write("sleepy.py", "import time\nprint('started', flush=True)\ntime.sleep(60)\n")
    for _ in range(3):  # each try lands at a different point of the supervisor's start
        res = subprocess.run([sys.executable, "-c", CANCEL_AT_ONCE, str(project.root)],
                             capture_output=True, text=True, cwd=REPO, env=cli_env(), timeout=60)
        assert res.returncode == 0, res.stderr
        outcome = json.loads(res.stdout.strip().splitlines()[-1])
        assert outcome["status"] == "canceled", outcome


def test_the_supervisor_to_be_outlives_a_sigterm() -> None:
    import subprocess
    import sys

    from tests.conftest import REPO, cli_env

    code = ("import os, signal, time\n"
            "from backends.zygote import early_fork\n"
            "pending = early_fork()\n"
            "os.kill(pending.pid, signal.SIGTERM)\n"
            "time.sleep(0.3)\n"
            "print(os.waitpid(pending.pid, os.WNOHANG) == (0, 0))\n"
            "pending.abort()\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         env=cli_env(), timeout=30, check=True)
    assert res.stdout.strip() == "True"
