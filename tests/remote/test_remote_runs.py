"""Runs on the rig's Docker Engine over SSH: the sync proven by content (the rig cannot see this
machine's files), outputs and metrics back, nothing sent twice, a dropped link, a killed
supervisor, cancel."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import uuid
from typing import Any

import pytest

from tests.docker.conftest import record, run_id_of
from tests.remote.conftest import RemoteProject, Rig, supervisor_pid, until, wait_no_containers

pytestmark = pytest.mark.docker

HELLO = """
    import os, sys
    from azureml.logging import get_azureml_logger
    print("data:", open("data/input.txt").read().strip())
    print("env:", os.environ["EXAMPLE"])
    print("to stderr", file=sys.stderr)
    get_azureml_logger().log("acc", 0.75)
    os.makedirs("outputs/sub", exist_ok=True)
    open("outputs/sub/model.txt", "w").write("model of " + open("data/input.txt").read())
"""

SLOW = """
    import sys, time
    from azureml.logging import get_azureml_logger
    log = get_azureml_logger()
    for i in range(N):
        print(f"line {i}", flush=True)
        if i % 5 == 0:
            print(f"err {i}", file=sys.stderr, flush=True)
            log.log("step", i)
        time.sleep(DELAY)
    print("the end")
"""


def sync_record(project: RemoteProject, run_id: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (project.root / ".labdeck" / "runs" / run_id / "sync.json").read_text())
    return data


def log_text(project: RemoteProject, run_id: str) -> str:
    path = project.root / ".labdeck" / "runs" / run_id / "log"
    return path.read_text() if path.exists() else ""


def test_submit_syncs_runs_and_brings_outputs_back(rproject: RemoteProject, rig: Rig) -> None:
    token = uuid.uuid4().hex  # content the rig's cache cannot hold yet
    rproject.write("data/input.txt", f"synced {token}\n")
    rproject.write("hello.py", HELLO)
    res = rproject.cli("submit", "-c", "rig", "hello.py", timeout=120)
    assert res.returncode == 0, res.stderr
    assert f"data: synced {token}" in res.stdout  # the rig has no other way to see this file
    assert "env: from-runconfig" in res.stdout and "to stderr" in res.stderr
    run_id = run_id_of(res.stdout)
    rec = record(rproject, run_id)
    assert rec["status"] == "completed" and rec["metrics"] == {"acc": 0.75}
    assert rec["outputs"] == ["sub/model.txt"]
    out = rproject.root / ".labdeck" / "runs" / run_id / "outputs" / "sub" / "model.txt"
    assert out.read_text() == f"model of synced {token}\n"
    first = sync_record(rproject, run_id)
    assert int(first["sent_files"]) >= 1 and int(first["payload_bytes"]) > 0
    assert wait_no_containers(rig, rproject) == []
    assert rig.sh(f"test -e {first['root']}").returncode == 1  # the run's folder is gone

    # Unchanged project: only the manifest travels.
    res = rproject.cli("submit", "-c", "rig", "hello.py", timeout=120)
    assert res.returncode == 0, res.stderr
    second = sync_record(rproject, run_id_of(res.stdout))
    assert second["sent_files"] == 0 and second["payload_bytes"] == 0

    # One file changed, one deleted: the changed one alone travels, the deleted one is gone.
    rproject.write("data/input.txt", f"changed {token}\n")
    rproject.write("gone.txt", token)
    res = rproject.cli("submit", "-c", "rig", "hello.py", timeout=120)
    assert res.returncode == 0 and f"data: changed {token}" in res.stdout
    assert sync_record(rproject, run_id_of(res.stdout))["sent_files"] == 2  # input and gone
    (rproject.root / "gone.txt").unlink()
    rproject.write("ls.py", "import os; print('gone.txt' in os.listdir('.'))\n")
    res = rproject.cli("submit", "-c", "rig", "ls.py", timeout=120)
    assert res.returncode == 0 and res.stdout.splitlines()[1] == "False", res.stdout


def test_link_dropped_mid_run_resumes_log_without_gap_or_duplicate(
        rproject: RemoteProject, rig: Rig) -> None:
    rproject.write("slow.py", SLOW.replace("N", "60").replace("DELAY", "0.05"))
    res = rproject.cli("submit", "-a", "-c", "rig", "slow.py", check=True)
    run_id = run_id_of(res.stdout)
    assert until(lambda: " out line 10" in log_text(rproject, run_id), 60)
    # Cut the SSH session (the remote container goes on), as a network drop would.
    killed = rig.sh(f"pkill -KILL -f '^sshd: {rig.user}@notty'")
    assert killed.returncode == 0, killed.stderr
    res = rproject.cli("runs", "logs", run_id, "-f", timeout=120)
    assert res.returncode == 0, res.stderr
    outs = [ln for ln in res.stdout.splitlines() if ln.startswith("line ")]
    assert outs == [f"line {i}" for i in range(60)]
    errs = [ln for ln in res.stderr.splitlines() if ln.startswith("err ")]
    assert errs == [f"err {i}" for i in range(0, 60, 5)]
    rec = record(rproject, run_id)
    assert rec["status"] == "completed", rec
    assert rec["metrics"] == {"step": list(range(0, 60, 5))}
    assert wait_no_containers(rig, rproject) == []


def test_supervisor_killed_reattaches_by_label(rproject: RemoteProject, rig: Rig) -> None:
    rproject.write("slow.py", SLOW.replace("N", "40").replace("DELAY", "0.1"))
    res = rproject.cli("submit", "-a", "-c", "rig", "slow.py", check=True)
    run_id = run_id_of(res.stdout)
    assert until(lambda: " out line 5" in log_text(rproject, run_id), 60)
    os.kill(supervisor_pid(rproject, run_id), signal.SIGKILL)
    assert len(rig.labelled(f"org.labdeck.run={run_id}")) == 1  # goes on without it
    res = rproject.cli("runs", "logs", run_id, "-f", timeout=120)
    assert res.returncode == 0, res.stderr
    outs = [ln for ln in res.stdout.splitlines() if ln.startswith("line ")]
    assert outs == [f"line {i}" for i in range(40)]
    assert "reattaching" in res.stderr
    rec = record(rproject, run_id)
    assert rec["status"] == "completed"
    assert rec["metrics"] == {"step": list(range(0, 40, 5))}
    assert wait_no_containers(rig, rproject) == []


def test_cancel_terms_then_kills_and_leaves_nothing(rproject: RemoteProject, rig: Rig) -> None:
    rproject.write("stubborn.py", """
        import os, signal, time
        os.makedirs("outputs", exist_ok=True)
        open("outputs/partial.txt", "w").write("half")
        signal.signal(signal.SIGTERM, lambda *a: print("got SIGTERM, ignoring", flush=True))
        print("started", flush=True)
        time.sleep(120)
    """)
    res = rproject.cli("submit", "-a", "-c", "rig", "stubborn.py", check=True)
    run_id = run_id_of(res.stdout)
    assert until(lambda: " out started" in log_text(rproject, run_id), 60)
    res = rproject.cli("runs", "cancel", run_id, timeout=60)
    assert res.returncode == 0, res.stderr
    rec = record(rproject, run_id)
    assert rec["status"] == "canceled"
    assert rec["outputs"] == ["partial.txt"]
    assert "got SIGTERM, ignoring" in log_text(rproject, run_id)
    assert wait_no_containers(rig, rproject) == []


def test_explain_prints_ssh_and_docker_h_commands(rproject: RemoteProject, rig: Rig) -> None:
    rproject.write("hello.py", "print(1)\n")
    res = rproject.cli("submit", "-c", "rig", "--explain", "hello.py", check=True)
    lines = res.stdout.splitlines()
    assert any(ln.startswith(f"docker -H ssh://{rig.user}@{rig.host}:{rig.port} run") and
               ":/labdeck/work" in ln for ln in lines), res.stdout
    assert any(ln.startswith("ssh -p") for ln in lines)
    assert rig.labelled(f"org.labdeck.project={rproject.root}") == []  # nothing ran
    # The daemon refuses '~/...' as a bind source ("invalid characters for a local volume
    # name"): the docker command names the host's home as a placeholder, said in a note, and
    # runs as the SSH user, as a run does.
    docker_line = next(ln for ln in lines if ln.startswith("docker -H"))
    sources = [arg.split(":")[0] for arg in shlex.split(docker_line)
               if arg.startswith(("~", "<remote-home>"))]
    assert sources and all(src.startswith("<remote-home>/") for src in sources), docker_line
    assert "--user '<remote-uid>:<remote-gid>'" in docker_line
    assert any(ln.startswith("# <remote-home>") and "echo $HOME; id -u; id -g" in ln
               for ln in lines), res.stdout


def test_a_run_may_rewrite_project_files_and_the_hosts_cache_stays_intact(
        rproject: RemoteProject, rig: Rig) -> None:
    """The run folder on the host is built from the content cache; a script that rewrites a
    project file in place (as it may in a local snapshot) got EACCES on the cache's read-only
    hard links, and must never change the cache (the next run sees the original)."""
    token = uuid.uuid4().hex
    rproject.write("data/state.txt", f"original {token}\n")
    rproject.write("tool.sh", "echo tool\n")
    (rproject.root / "tool.sh").chmod(0o755)
    rproject.write("rewrite.py", """
        import os
        print("before:", open("data/state.txt").read().strip())
        with open("data/state.txt", "r+") as f:
            f.write("REWRITTEN")
        print("after:", open("data/state.txt").read().strip())
        print("exec:", os.access("tool.sh", os.X_OK))
    """)
    for _ in range(2):
        res = rproject.cli("submit", "-c", "rig", "rewrite.py", timeout=120)
        assert res.returncode == 0, res.stdout + res.stderr
        assert f"before: original {token}" in res.stdout  # the cache was not changed
        assert f"after: REWRITTEN{token}" in res.stdout  # "original " rewritten in place
        assert "exec: True" in res.stdout
    cached = rig.sh(f"grep -l {token} /home/{rig.user}/.labdeck/cache/*").stdout.split()
    assert len(cached) == 1
    assert rig.sh(f"cat {cached[0]}").stdout == f"original {token}\n"


def test_socket_folders_of_a_killed_supervisor_are_cleaned_on_the_next_start(
        rproject: RemoteProject, rig: Rig) -> None:
    """A supervisor killed with -9 cannot remove its /tmp/labdeck-ssh-<uid>-<pid>-* folder: the
    next process that opens a link removes those whose pid is gone (not a live one's)."""
    import subprocess
    import tempfile
    from pathlib import Path

    tmp = Path(tempfile.gettempdir())
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp / f"labdeck-ssh-{os.getuid()}-{dead.pid}-0"
    stale.mkdir(mode=0o700)
    (stale / "docker.sock").write_text("")
    live = tmp / f"labdeck-ssh-{os.getuid()}-{os.getpid()}-999"
    live.mkdir(mode=0o700)
    try:
        rproject.write("hello.py", "print('hi')\n")
        res = rproject.cli("submit", "-c", "rig", "hello.py", timeout=120)
        assert res.returncode == 0, res.stderr
        assert not stale.exists()
        assert live.exists()
    finally:
        import shutil

        shutil.rmtree(stale, ignore_errors=True)
        shutil.rmtree(live, ignore_errors=True)


def test_a_large_first_upload_is_previewed_and_explain_shows_it(rproject: RemoteProject,
                                                                 rig: Rig) -> None:
    import hashlib

    big = os.urandom(21 * 1024 * 1024)  # content the rig's cache cannot hold yet
    (rproject.root / "data").mkdir()
    (rproject.root / "data" / "big.bin").write_bytes(big)
    rproject.write("hello.py", "print('ran')\n")
    res = rproject.cli("submit", "-c", "rig", "--explain", "hello.py", check=True)
    assert re.search(r"upload: the snapshot is 21\.0 MB in 5 files; largest: data/big\.bin "
                     r"21\.0 MB, \S+ [\d.]+ KB", res.stdout), res.stdout
    try:
        res = rproject.cli("submit", "-c", "rig", "hello.py", timeout=180)
        assert res.returncode == 0, res.stdout + res.stderr
        log = log_text(rproject, run_id_of(res.stdout))
        preview = re.search(r"sync: uploading 21\.0 MB in \d+ files?; largest: data/big\.bin "
                            r"21\.0 MB", log)
        assert preview is not None, log
        assert preview.start() < log.index(" sys sync: ", preview.end())  # said before it went
        res = rproject.cli("submit", "-c", "rig", "hello.py", timeout=180)
        assert res.returncode == 0
        assert "sync: uploading" not in log_text(rproject, run_id_of(res.stdout))
    finally:
        rig.sh(f"rm -f /home/{rig.user}/.labdeck/cache/{hashlib.sha256(big).hexdigest()}")
