"""Submits racing collection in other processes (issue 12, item 1): while one client submits run
after run (each with new content and content shared with earlier runs), another loops
``labdeck store --gc`` and ``runs prune --keep-last 2``, and a third collects in a tight loop.
Every submit must succeed, every run must read exactly the files it was submitted with, and no
surviving run may lose an object. (Without the store's lock a submit's fresh objects are
collected before its manifest names them: this test then fails.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from backends import objects
from tests.conftest import REPO, Project, cli_argv, cli_env

CHECK = """
    import sys
    want = sys.argv[1]
    have = open("own.txt").read().strip()
    assert len(open("own.bin", "rb").read()) == 4 << 20
    shared = open("shared.bin", "rb").read()
    assert have == want, (have, want)
    assert shared == b"s" * 200_000, len(shared)
    print("checked", want)
"""


TIGHT = """
import os, sys, time
from pathlib import Path
from backends import objects
state = Path(sys.argv[1])
while not (state.parent / "stop").exists():
    objects.collect(state, state / "runs")
    time.sleep(0.005)
"""


def test_submits_racing_gc_and_prune_lose_nothing(project: Project) -> None:
    project.write("check.py", CHECK)
    (project.root / "shared.bin").write_bytes(b"s" * 200_000)
    project.cli("submit", "check.py", "warmup", env={}, check=False)  # warm up the state dir
    cleaner = subprocess.Popen(
        ["bash", "-c", "while [ ! -e stop ]; do "
         f"{' '.join(cli_argv('store', '--gc'))} >/dev/null 2>>gc.err; "
         f"{' '.join(cli_argv('runs', 'prune', '--keep-last', '2'))} >/dev/null 2>>gc.err; "
         "done"],
        cwd=project.root, env=cli_env(), stderr=subprocess.DEVNULL, text=True)
    tight = subprocess.Popen([sys.executable, "-c", TIGHT, str(project.root / ".labdeck")],
                             cwd=REPO, env=cli_env(), stderr=subprocess.PIPE, text=True)
    submitted: dict[str, str] = {}
    try:
        for i in range(12):
            token = f"token-{i}"
            project.write("own.txt", token + "\n")
            (project.root / "own.bin").write_bytes(os.urandom(4 << 20))  # new content each
            res = project.cli("submit", "-a", "check.py", token)
            assert res.returncode == 0, res.stderr  # never "missing" nor damaged
            submitted[res.stdout.strip()] = token
    finally:
        (project.root / "stop").write_text("")
        cleaner.wait(timeout=120)
        _, tight_err = tight.communicate(timeout=120)
    assert tight.returncode == 0, tight_err
    deadline = time.monotonic() + 120
    state = project.root / ".labdeck"
    while time.monotonic() < deadline:  # all runs ended (a wait, not a timed assertion)
        listing = json.loads(project.cli("runs", "list", "-o", "json", "-n", "100",
                                         check=True).stdout)
        if all(r["status"] in ("completed", "failed", "canceled") for r in listing):
            break
        time.sleep(0.2)
    errors = (project.root / "gc.err").read_text() if (project.root / "gc.err").exists() else ""
    assert "Traceback" not in errors and "internal error" not in errors, errors
    for record in listing:
        if record["id"] not in submitted:
            continue
        assert record["status"] == "completed", record
        log = (state / "runs" / record["id"] / "log").read_text()
        assert f"checked {submitted[record['id']]}" in log
        manifest = objects.Manifest.load(state / "runs" / record["id"])
        store = objects.ObjectStore(state)
        assert all(store.intact(e.sha256) for e in manifest.files), record["id"]
    project.cli("store", "--gc", check=True)
    shown = json.loads(project.cli("store", "-o", "json", check=True).stdout)
    assert shown["unreferenced"] == 0
    assert project.cli("store", "--verify", check=True).stderr.startswith(
        "removed 0 damaged object(s)")
