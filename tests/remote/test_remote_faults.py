"""Faults on the link to the rig (issue 8, item 8): the host paused longer than the keepalive,
packets dropped inside the rig, an outputs symlink pointing out, a 200,000-line flood, login
through an ssh-agent. Every fault is undone in a ``finally`` (the rig is shared by the tests)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.docker.conftest import record, run_id_of
from tests.remote.conftest import RemoteProject, Rig, until, wait_no_containers
from tests.remote.test_remote_runs import SLOW, log_text

pytestmark = pytest.mark.docker

KEEPALIVE_LOST = 6.0  # backends/ssh/connection.py: 2 s x 2 unanswered, and a margin
FAULT_FOR = KEEPALIVE_LOST + 3.0  # how long a fault lasts: longer than the keepalive notices


def hold(seconds: float) -> None:
    """Keep a fault in place (its duration is the test's input, not a synchronisation)."""
    time.sleep(seconds)


def host_docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=60)


def run_slow_through(rproject: RemoteProject, rig: Rig,
                     fault: Callable[[], subprocess.CompletedProcess[str]],
                     undo: Callable[[], subprocess.CompletedProcess[str]], n: int = 100) -> None:
    """A run printing n lines over ~n/10 s; the fault put in place mid-run for FAULT_FOR s,
    then undone; the run must end complete with each line once, in order."""
    rproject.write("slow.py", SLOW.replace("N", str(n)).replace("DELAY", "0.1"))
    res = rproject.cli("submit", "-a", "-c", "rig", "slow.py", check=True)
    run_id = run_id_of(res.stdout)
    assert until(lambda: " out line 10" in log_text(rproject, run_id), 60)
    try:
        done = fault()
        assert done.returncode == 0, done.stderr
        hold(FAULT_FOR)
    finally:
        undone = undo()
    assert undone.returncode == 0, undone.stderr
    res = rproject.cli("runs", "logs", run_id, "-f", timeout=300)
    assert res.returncode == 0, res.stderr
    outs = [ln for ln in res.stdout.splitlines() if ln.startswith("line ")]
    assert outs == [f"line {i}" for i in range(n)]
    errs = [ln for ln in res.stderr.splitlines() if ln.startswith("err ")]
    assert errs == [f"err {i}" for i in range(0, n, 5)]
    assert "the end" in res.stdout
    log = log_text(rproject, run_id)
    assert " sys the SSH link to " in log and " is back after " in log  # it did drop
    rec = record(rproject, run_id)
    assert rec["status"] == "completed", rec
    assert rec["metrics"] == {"step": list(range(0, n, 5))}
    assert wait_no_containers(rig, rproject) == []


def test_rig_paused_longer_than_keepalive_then_resumed(rproject: RemoteProject,
                                                       rig: Rig) -> None:
    """``docker pause`` freezes sshd, the inner daemon and the run alike: only the keepalive
    notices the silent host; after the unpause the link comes back and the log resumes."""
    try:
        run_slow_through(rproject, rig, lambda: host_docker("pause", rig.container),
                         lambda: host_docker("unpause", rig.container))
    finally:
        if "paused" in host_docker("inspect", "-f", "{{.State.Status}}", rig.container).stdout:
            host_docker("unpause", rig.container)  # never left paused


def test_packets_dropped_inside_the_rig_then_let_through(rproject: RemoteProject,
                                                         rig: Rig) -> None:
    """DROP on the rig's own sshd port (inside its namespace: a published port goes through
    docker-proxy, which host FORWARD rules never see); removed after FAULT_FOR s."""
    rule = "INPUT -p tcp --dport 22 -j DROP"
    try:
        run_slow_through(rproject, rig, lambda: rig.sh(f"iptables -I {rule}"),
                         lambda: rig.sh(f"iptables -D {rule}"))
    finally:
        while rig.sh(f"iptables -C {rule}").returncode == 0:  # never left behind
            rig.sh(f"iptables -D {rule}")


def test_outputs_symlinks_pointing_out_are_neither_followed_nor_copied(
        rproject: RemoteProject, rig: Rig) -> None:
    rproject.write("links.py", """
        import os
        os.makedirs("outputs/sub", exist_ok=True)
        open("outputs/sub/real.txt", "w").write("mine")
        os.symlink("/etc/passwd", "outputs/passwd")             # a file outside
        os.symlink("../../data", "outputs/sub/up")              # a folder outside outputs/
        os.symlink("/", "outputs/root")                         # the whole filesystem
        os.symlink("sub/real.txt", "outputs/inside")            # inside: not recreated either
        print("made", flush=True)
    """)
    rproject.write("data/secret.txt", "not an output\n")
    res = rproject.cli("submit", "-c", "rig", "links.py", timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    run_id = run_id_of(res.stdout)
    assert record(rproject, run_id)["outputs"] == ["sub/real.txt"]
    out = rproject.root / ".labdeck" / "runs" / run_id / "outputs"
    found = sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))
    assert found == ["sub", "sub/real.txt"], found  # no link, nothing behind one
    assert (out / "sub" / "real.txt").read_text() == "mine"
    assert wait_no_containers(rig, rproject) == []


def test_a_200000_line_flood_arrives_whole_and_in_order(rproject: RemoteProject,
                                                        rig: Rig) -> None:
    n = 200_000
    rproject.write("flood.py", f"""
        import sys
        for i in range({n}):
            print("flood", i)
        print("done", file=sys.stderr)
    """)
    res = rproject.cli("submit", "-a", "-c", "rig", "flood.py", check=True)
    run_id = run_id_of(res.stdout)
    res = rproject.cli("runs", "logs", run_id, "-f", timeout=300)
    assert res.returncode == 0, res.stderr
    assert record(rproject, run_id)["status"] == "completed"
    log = log_text(rproject, run_id).splitlines()
    numbers = [int(ln.rsplit(" ", 1)[1]) for ln in log if " out flood " in ln]
    assert len(numbers) == n and numbers == list(range(n))  # nothing lost, none twice
    assert any(ln.endswith(" err done") for ln in log)


@pytest.fixture
def agent(rig: Rig) -> Iterator[str]:
    """An ssh-agent holding the rig's key, on a socket of its own (a short path: unix sockets
    have a ~100-byte limit); stopped afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="labdeck-agent-"))
    sock = folder / "agent.sock"
    proc = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        assert until(sock.exists, 10), "ssh-agent did not make its socket"
        key = folder / "id"  # ssh-add wants a private key only its owner can read
        shutil.copyfile(rig.identity_file, key)
        key.chmod(0o600)
        added = subprocess.run(["ssh-add", str(key)], env={**os.environ, "SSH_AUTH_SOCK":
                                                            str(sock)},
                               capture_output=True, text=True, timeout=30)
        assert added.returncode == 0, added.stderr
        key.unlink()  # from here the agent is the only holder of the key on this side
        yield str(sock)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)


def test_login_through_an_ssh_agent(rproject: RemoteProject, rig: Rig, agent: str) -> None:
    compute = rproject.root / "aml_config" / "rig.compute"
    compute.write_text("".join(ln + "\n" for ln in compute.read_text().splitlines()
                               if "privateKeyFile" not in ln))
    rproject.write("hello.py", "print('via the agent')\n")
    res = rproject.cli("submit", "-c", "rig", "hello.py", timeout=120,
                       env={"SSH_AUTH_SOCK": agent})
    assert res.returncode == 0, res.stdout + res.stderr
    assert "via the agent" in res.stdout
    # No identity file and no agent: the same target cannot log in (the agent did it).
    res = rproject.cli("target", "show", "rig", env={"SSH_AUTH_SOCK": ""})
    assert "authentication failed" in res.stdout + res.stderr, res.stdout + res.stderr
