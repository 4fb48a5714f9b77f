"""Ctrl-C on a foreground ``labdeck submit`` (a real CLI process, sent SIGINT): the first one
detaches (the run goes on) and says how to cancel; a second within 3 s cancels the run, waits
for its end and prints its final status."""

from __future__ import annotations

import json
import signal
import subprocess

from tests.conftest import Project

LONG = """
    import time
    print("working", flush=True)
    time.sleep(600)
"""


def started(project: Project) -> tuple[subprocess.Popen[str], str]:
    project.write("long.py", LONG)
    cli = project.popen("submit", "long.py")
    assert cli.stdout is not None
    run_id = cli.stdout.readline().strip()  # the run's id, then its output
    assert cli.stdout.readline().strip() == "working"
    return cli, run_id


def status(project: Project, run_id: str) -> str:
    shown = json.loads(project.cli("runs", "show", run_id, "-o", "json", check=True).stdout)
    return str(shown["status"])


def test_first_ctrl_c_detaches_and_says_how_to_cancel(project: Project) -> None:
    cli, run_id = started(project)
    try:
        cli.send_signal(signal.SIGINT)
        _, err = cli.communicate(timeout=30)
        assert cli.returncode == 130, err
        assert f"labdeck runs cancel {run_id}" in err and "goes on" in err, err
        assert "Traceback" not in err, err
        assert status(project, run_id) == "running"
    finally:
        cli.kill()
        project.cli("runs", "cancel", run_id)


def test_second_ctrl_c_cancels_and_waits_for_the_end(project: Project) -> None:
    cli, run_id = started(project)
    assert cli.stderr is not None
    try:
        cli.send_signal(signal.SIGINT)
        line = ""
        while "detached" not in line:  # the first one was taken: the window is open
            line = cli.stderr.readline()
            assert line, "the CLI ended without saying it detached"
        cli.send_signal(signal.SIGINT)
        _, err = cli.communicate(timeout=60)
        assert f"run {run_id} canceled" in err, err
        assert "Traceback" not in err, err
        assert cli.returncode != 0
        assert status(project, run_id) == "canceled"  # ended before the CLI returned
    finally:
        if cli.poll() is None:
            cli.kill()
        project.cli("runs", "cancel", run_id)

