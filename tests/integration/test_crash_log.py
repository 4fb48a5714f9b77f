"""A bug's traceback goes to the project's .labdeck/crash.log, else the user's state folder, and
the one line names it (it went to one shared file in the system's temp folder)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import Project, cli_env

CRASH = ("from tui.submitting import guarded\n"
         "def bug():\n    raise RuntimeError('a bug')\n"
         "guarded(bug)\n")


def crash_in(cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", CRASH], cwd=cwd, env=cli_env(env),
                          capture_output=True, text=True, timeout=60)


def test_crash_log_in_the_project(project: Project, tmp_path: Path) -> None:
    res = crash_in(project.root, {"XDG_STATE_HOME": str(tmp_path / "state")})
    assert res.returncode == 70
    path = project.root / ".labdeck" / "crash.log"
    assert res.stderr.strip() == (
        f"labdeck: internal error: RuntimeError: a bug; details in {path}")
    assert "RuntimeError: a bug" in path.read_text()


def test_crash_log_outside_a_project_goes_to_the_user_state(tmp_path: Path) -> None:
    elsewhere = tmp_path / "nowhere"
    elsewhere.mkdir()
    res = crash_in(elsewhere, {"XDG_STATE_HOME": str(tmp_path / "state")})
    path = tmp_path / "state" / "labdeck" / "crash.log"
    assert res.returncode == 70 and str(path) in res.stderr
    assert "Traceback" in path.read_text()
