"""Cancel and the script's end: a run is CANCELED only when the cancel reached the script.

The late-cancel case (a cancel after the script's exit leaves the run COMPLETED) needs
LocalRunHandle.wait to return at the script's exit (asyncio's Process.wait() also waits for its
pipes): its test comes with that change (see the log path's report)."""

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
    project.cli("runs", "cancel", run_id, check=True)
    res = project.cli("runs", "logs", run_id, "-f", timeout=60)
    shown = json.loads(project.cli("runs", "show", run_id, "-o", "json", check=True).stdout)
    assert shown["status"] == "canceled", shown
    assert os.path.exists(log)
