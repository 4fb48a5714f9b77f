"""A run's supervisor shows as ``labdeck-supervisor RUN_ID`` in ``ps -ef`` and to
``pgrep -f labdeck-supervisor`` (and by its short name to ``pgrep``), however it was started:
forked ahead by the CLI, or forked when the run was recorded."""

from __future__ import annotations

import subprocess
import time

import pytest

from tests.conftest import Project


@pytest.mark.parametrize("early_fork", ["1", "0"])
def test_ps_shows_the_supervisor_by_its_run(project: Project, early_fork: str) -> None:
    project.write("wait.py", """
        import os, time
        open("../ppid", "w").write(str(os.getppid()))
        time.sleep(600)
    """)
    run_id = project.cli("submit", "-a", "wait.py", env={"LABDECK_EARLY_FORK": early_fork},
                         check=True).stdout.split()[0]
    ppid = project.root / ".labdeck" / "runs" / run_id / "ppid"
    try:
        deadline = time.monotonic() + 30
        while not ppid.exists() or not ppid.read_text():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        supervisor = ppid.read_text()
        title = f"labdeck-supervisor {run_id}"
        deadline = time.monotonic() + 30  # it is set once the supervisor has loaded
        while True:
            ps = subprocess.run(["ps", "-ww", "-ef"], capture_output=True, text=True, check=True)
            mine = [line for line in ps.stdout.splitlines() if line.split()[1] == supervisor]
            if (mine and mine[0].rstrip().endswith(title)) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert mine and mine[0].rstrip().endswith(title), mine
        found = subprocess.run(["pgrep", "-f", title], capture_output=True, text=True)
        assert found.stdout.split() == [supervisor]
        short = subprocess.run(["pgrep", "-x", "labdeck-supervi"], capture_output=True,
                               text=True)
        assert supervisor in short.stdout.split()
    finally:
        project.cli("runs", "cancel", run_id)
