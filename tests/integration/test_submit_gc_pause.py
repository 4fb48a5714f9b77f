"""A plain submit runs no cyclic collection until its run is handed over (its imports and the
submit allocate enough for ~16, which free nothing), and no one is left without the collector:
the CLI has it back for the follow, the supervisor forked ahead for its run."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from tests.conftest import REPO, Project, cli_env

HARNESS = """
import gc, json, os, sys
os.chdir(sys.argv[1])
from tui import submitting
from backends import syncsupervisor

real_main = syncsupervisor.main

def supervisor_main(early, done_fd=None):  # runs in the supervisor forked ahead
    with open(sys.argv[2], "w") as out:
        out.write(json.dumps({"supervisor_gc": gc.isenabled()}))
    return real_main(early, done_fd=done_fd)

syncsupervisor.main = supervisor_main
collections = []
gc.callbacks.append(lambda phase, info: collections.append(1) if phase == "start" else None)
real_echo = submitting.echo
seen = []

def echo(message, err=False):  # the first line comes once the run was handed over
    if not seen:
        seen.append(1)
        real_echo(json.dumps({"collections": len(collections), "cli_gc": gc.isenabled()}), True)
    real_echo(message, err)

submitting.echo = echo
del collections[:]
submitting.fast_submit(["submit", "noop.py"])
"""


def test_no_collection_before_the_hand_over_and_the_collector_back_after(
    project: Project,
) -> None:
    project.write("noop.py", "pass\n")
    marker = project.root / "supervisor-gc.json"
    res = subprocess.run(
        [sys.executable, "-c", HARNESS, str(project.root), str(marker)],
        capture_output=True, text=True, cwd=REPO, env=cli_env(), timeout=120,
    )
    assert res.returncode == 0, res.stderr
    cli = json.loads(res.stderr.splitlines()[0])
    assert cli == {"collections": 0, "cli_gc": True}
    deadline = time.monotonic() + 60  # a hang guard, not a speed bound
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert json.loads(marker.read_text()) == {"supervisor_gc": True}
