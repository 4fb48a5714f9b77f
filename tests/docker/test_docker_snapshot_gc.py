"""A docker run whose supervisor died, with clients collecting meanwhile (issue 12, item 1): the
run's materialised snapshot is what the container has mounted, so neither ``store --gc`` (which
first takes the run over: reattach) nor another submit may drop it while the run goes on; its
outputs come back from it at the end, and only then does it go."""

from __future__ import annotations

import os
import signal
import sqlite3
import time

import pytest

from tests.conftest import Project
from tests.docker.conftest import labelled, record, run_id_of, wait_no_containers

pytestmark = pytest.mark.docker

WAIT = """
    import os, time
    while not os.path.exists("go"):  # written by the test into the mounted copy
        time.sleep(0.05)
    os.makedirs("outputs", exist_ok=True)
    open("outputs/model.txt", "w").write("from " + open("v.txt").read().strip())
    print("done")
"""


def test_a_reattached_runs_copy_outlives_gc_and_other_submits(dproject: Project) -> None:
    dproject.write("wait.py", WAIT)
    dproject.write("v.txt", "the snapshot\n")
    dproject.write("quick.py", "print('quick')\n")
    env = {"LABDECK_DOCKER_MOUNT": "1"}
    run_id = run_id_of(dproject.cli("submit", "-a", "-c", "docker", "wait.py", env=env,
                                    check=True).stdout)
    deadline = time.monotonic() + 60
    while record(dproject, run_id)["status"] != "running" and time.monotonic() < deadline:
        time.sleep(0.1)
    db = sqlite3.connect(dproject.root / ".labdeck" / "runs.db")
    pid = db.execute("select supervisor_pid from runs where id=?", (run_id,)).fetchone()[0]
    db.close()
    os.kill(pid, signal.SIGKILL)
    assert len(labelled("org.labdeck.run", run_id)) == 1  # the container goes on
    copy = dproject.root / ".labdeck" / "runs" / run_id / "snapshot"
    dproject.write("v.txt", "changed in the project since\n")
    gc = dproject.cli("store", "--gc", env=env, check=True)  # takes the run over, then cleans
    assert "dropped 0 materialised" in gc.stderr and copy.is_dir()
    other = run_id_of(dproject.cli("submit", "-c", "docker", "quick.py", env=env,
                                   check=True).stdout)
    assert copy.is_dir() and record(dproject, other)["status"] == "completed"
    (copy / "go").write_text("")
    res = dproject.cli("runs", "logs", run_id, "-f", timeout=120)
    assert res.returncode == 0 and "done" in res.stdout, res.stderr
    assert "reattaching" in res.stderr  # gc's recover took it over
    rec = record(dproject, run_id)
    assert rec["status"] == "completed" and rec["outputs"] == ["model.txt"]
    out = dproject.root / ".labdeck" / "runs" / run_id / "outputs" / "model.txt"
    assert out.read_text() == "from the snapshot"
    dproject.cli("store", "--gc", env=env, check=True)
    assert not copy.exists()  # ended: dropped
    assert wait_no_containers(dproject.root) == []
