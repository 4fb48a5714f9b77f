"""The plain submit runs without click and with its supervisor forked ahead: the same results,
errors and exit statuses as through click, and no process left when submit fails."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import Project
from tui.submitting import plain_submit


@pytest.mark.parametrize(
    ("argv", "parsed"),
    [
        (["submit", "a.py"], ("local", False, "a.py", [])),
        (
            ["submit", "-c", "box", "-a", "a.py", "-x", "--help"],
            ("box", True, "a.py", ["-x", "--help"]),
        ),
        (["submit", "--target", "box", "--async", "a.py"], ("box", True, "a.py", [])),
        (["submit", "--explain", "a.py"], None),
        (["submit", "--watch", "a.py"], None),
        (["submit", "-h"], None),
        (["submit", "-c", "box"], None),  # no script: ArgumentVector decides, click handles it
        (["submit", "-c", "-a", "a.py"], None),
        (["submit", "--target=box", "a.py"], None),
        (["--project", "p", "submit", "a.py"], None),
        (["runs", "list"], None),
        ([], None),
    ],
)
def test_what_the_fast_path_takes(argv: list[str], parsed: object) -> None:
    assert plain_submit(argv) == parsed


def _ours(root: Path) -> list[int]:
    """Processes (other than zombies) whose working folder is the project."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if Path(f"/proc/{entry}/cwd").resolve() != root.resolve():
                continue
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            pids.append(int(entry))
    return pids


@pytest.mark.parametrize(
    ("compute", "script", "message"),
    [
        ('type: "kubernetes"\n', "noop.py", "box.compute:1: unknown type 'kubernetes'"),
        ('type: "local"\n', "missing.py", "script 'missing.py' not found"),
    ],
)
def test_failed_submit_records_nothing_and_leaves_no_process(
    project: Project, compute: str, script: str, message: str
) -> None:
    project.write("aml_config/box.compute", compute)
    project.write("noop.py", "pass\n")
    result = project.cli("submit", "-c", "box", script)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert _ours(project.root) == []
    runs = project.root / ".labdeck" / "runs"
    assert not runs.exists() or not any(runs.iterdir())


def test_plain_submit_and_click_submit_agree(project: Project) -> None:
    project.write("exit3.py", "import sys\nprint('out')\nsys.exit(3)\n")
    for env in ({}, {"LABDECK_FAST_SUBMIT": "0", "LABDECK_EARLY_FORK": "0"}):
        result = project.cli("submit", "exit3.py", env=env)
        assert result.returncode == 3
        assert "out" in result.stdout
        assert "failed (exit code 3)" in result.stderr


DEAD_AHEAD = """
import json, os, signal, sys, time
from pathlib import Path
from backends.engine import Engine
from backends.project import Project
from backends.zygote import early_fork
engine = Engine(Project(Path(sys.argv[1])), fork_supervisors=True)
pending = early_fork()  # the supervisor-to-be, as the CLI forks it...
os.kill(pending.pid, signal.SIGKILL)  # ...dies before it gets its run
time.sleep(0.2)
record = engine.submit("local", "noop.py", [], pending=pending)
while not record.status.is_terminal():
    time.sleep(0.05)
    record = engine.store.get(record.id, with_metrics=False)
print(json.dumps({"status": record.status.value}))
"""


def test_a_supervisor_forked_ahead_that_died_is_replaced(project: Project) -> None:
    from tests.conftest import REPO, cli_env

    project.write("noop.py", "print('ran')\n")
    res = subprocess.run([sys.executable, "-c", DEAD_AHEAD, str(project.root)],
                         capture_output=True, text=True, cwd=REPO, env=cli_env(), timeout=60)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.strip().splitlines()[-1]) == {"status": "completed"}


def test_trace_notes_each_phase_once_in_order(project: Project) -> None:
    """LABDECK_TRACE=1: the CLI, the supervisor forked ahead and the script's start each note
    their phases in the run's supervisor.log, on one clock; without it, nothing is noted."""
    project.write("noop.py", "pass\n")
    result = project.cli("submit", "noop.py", env={"LABDECK_TRACE": "1"}, check=True)
    run_id = result.stdout.split()[0]
    log = project.root / ".labdeck" / "runs" / run_id / "supervisor.log"
    # The supervisor writes its marks as it exits, after the client was told the run ended.
    deadline = time.monotonic() + 30  # a hang guard, not a speed bound
    while " sup sup-end" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    marks = [line.split() for line in log.read_text().splitlines() if line.startswith("trace ")]
    at = {f"{m[2]} {m[3].split('(')[0]}": float(m[1]) for m in marks}
    assert len(at) == len(marks)  # each phase once
    order = ["cli cli-main", "cli cli-fork", "sup sup-forked", "sup sup-run-received",
             "sup sup-main", "sup sup-prepared", "sup sup-script-exited",
             "sup sup-terminal", "cli cli-terminal-seen", "cli cli-exit"]
    assert [at[name] for name in order] == sorted(at[name] for name in order)
    # a local script starts once its run arrives (localstart.py), while the supervisor loads
    assert at["sup sup-run-received"] < at["script start"] < at["sup sup-script-exited"]
    assert order[0] in at and "sup sup-first-output" not in at  # noop prints nothing

    result = project.cli("submit", "noop.py", check=True)
    log = project.root / ".labdeck" / "runs" / result.stdout.split()[0] / "supervisor.log"
    assert "trace " not in (log.read_text() if log.exists() else "")
