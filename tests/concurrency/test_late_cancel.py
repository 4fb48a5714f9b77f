"""Cancel and the script's end: a run is CANCELED only when the cancel reached the script; a
cancel that arrives after the script exited (its output still draining) leaves it COMPLETED."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from tests.conftest import Project

SCRIPT = """
    import os, sys, time
    print(f"pid {os.getpid()}", flush=True)
    held = sys.argv[1]
    deadline = time.monotonic() + 60
    while not os.path.exists(held) and time.monotonic() < deadline:
        time.sleep(0.01)
    print("last line", flush=True)
"""


def wait_for(what: str, check, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_cancel_while_the_script_runs_still_cancels(project: Project, tmp_path: Path) -> None:
    project.write("quick.py", SCRIPT)
    held = tmp_path / "never"  # the script waits for it until canceled
    res = project.cli("submit", "-a", "-c", "local", "quick.py", str(held), check=True)
    run_id = res.stdout.strip().splitlines()[0]
    log = project.root / ".labdeck" / "runs" / run_id / "log"
    wait_for("the script's pid", lambda: log.exists() and " out pid " in log.read_text())
    project.cli("runs", "cancel", "--no-wait", run_id, check=True)
    res = project.cli("runs", "logs", run_id, "-f", timeout=60)
    shown = json.loads(project.cli("runs", "show", run_id, "-o", "json", check=True).stdout)
    assert shown["status"] == "canceled", shown
    assert os.path.exists(log)


def test_cancel_after_the_script_exited_leaves_the_run_completed(project: Project,
                                                                 tmp_path: Path) -> None:
    project.write("quick.py", SCRIPT)
    held = tmp_path / "held"
    res = project.cli("submit", "-a", "-c", "local", "quick.py", str(held), check=True)
    run_id = res.stdout.strip().splitlines()[0]
    log = project.root / ".labdeck" / "runs" / run_id / "log"

    def log_text() -> str:
        return log.read_text() if log.exists() else ""

    pid_line = wait_for("the script's pid", lambda: next(
        (ln for ln in log_text().splitlines() if " out pid " in ln), None))
    pid = int(pid_line.rsplit(" ", 1)[1])
    pipe = open(f"/proc/{pid}/fd/1", "wb")  # the log's stdout cannot end while this is open
    try:
        held.touch()
        wait_for("the last line", lambda: " out last line" in log_text())
        wait_for("the script to be gone", lambda: not Path(f"/proc/{pid}").exists())
        shown = json.loads(project.cli("runs", "show", run_id, "-o", "json", check=True).stdout)
        assert shown["status"] == "running"  # its log is still open: not finished yet
        project.cli("runs", "cancel", "--no-wait", run_id, check=True)
        wait_for("the supervisor to take the request",
                 lambda: " sys cancel requested" in log_text())
    finally:
        pipe.close()
    shown = wait_for("the terminal status", lambda: (lambda r: r if r["status"] != "running"
                     else None)(json.loads(project.cli("runs", "show", run_id, "-o", "json",
                                                       check=True).stdout)))
    assert shown["status"] == "completed", shown
    assert shown["exit_code"] == 0
    assert "after the script ended" in log_text()


