"""Runs in containers on the real daemon: log, metrics, outputs, survival, reattach, cancel."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import pytest

from tests.conftest import Project
from tests.docker.conftest import BASE_IMAGE, labelled, record, run_id_of, wait_no_containers

pytestmark = pytest.mark.docker

HELLO = """
    import os, sys
    from azureml.logging import get_azureml_logger
    log = get_azureml_logger()
    print("to stdout " + os.environ["EXAMPLE"])
    print("to stderr", file=sys.stderr)
    print("x" * 70000)  # one line longer than docker's 16 KiB log messages
    log.log("acc", 0.75)
    log.log("loss", [0.5, 0.25])
    print("share=" + os.environ["AZUREML_NATIVE_SHARE_DIRECTORY"])
    open(os.path.join(os.environ["AZUREML_NATIVE_SHARE_DIRECTORY"], "seen.txt"), "w").write("1")
    os.makedirs("outputs/sub", exist_ok=True)
    open("outputs/model.txt", "w").write("model")
    open("outputs/sub/deep.txt", "w").write("deep")
    print("ünïcode ✓")
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


def log_lines(project: Project, run_id: str) -> list[str]:
    text = (project.root / ".labdeck" / "runs" / run_id / "log").read_text()
    return text.splitlines()


def test_submit_runs_in_container_with_log_metrics_outputs(dproject: Project) -> None:
    dproject.write("aml_config/docker.runconfig", """
        ArgumentVector: ["$file"]
        Target: docker
        Framework: Python
        EnvironmentVariables:
          EXAMPLE: "from-runconfig"
    """)
    dproject.write("hello.py", HELLO)
    res = dproject.cli("submit", "-c", "docker", "hello.py", timeout=120)
    assert res.returncode == 0, res.stderr
    assert "to stdout from-runconfig" in res.stdout
    assert "to stderr" in res.stderr and "to stderr" not in res.stdout
    assert "x" * 70000 in res.stdout.splitlines()  # reassembled across frames, whole
    assert "share=/azureml-share/" in res.stdout
    assert "ünïcode ✓" in res.stdout
    run_id = run_id_of(res.stdout)
    rec = record(dproject, run_id)
    assert rec["status"] == "completed" and rec["exit_code"] == 0
    assert rec["metrics"] == {"acc": 0.75, "loss": [0.5, 0.25]}
    assert rec["outputs"] == ["model.txt", "sub/deep.txt"]
    outputs = dproject.root / ".labdeck" / "runs" / run_id / "outputs"
    assert (outputs / "sub" / "deep.txt").read_text() == "deep"
    assert (dproject.root.parent / "share" / "proj" / "seen.txt").exists()  # per project
    lines = log_lines(dproject, run_id)
    assert any(" err to stderr" in line for line in lines)
    assert any(" out to stdout from-runconfig" in line for line in lines)
    assert wait_no_containers(dproject.root) == []


def test_localdocker_spelling_and_shared_volumes(dproject: Project) -> None:
    dproject.write("aml_config/old.compute", """
        type: localdocker
        baseDockerImage: "labdeck/python-base:bookworm"
        sharedVolumes: true
        nativeSharedDirectory: ""
    """)
    dproject.write("w.py", """
        import os
        os.makedirs("outputs", exist_ok=True)
        open("outputs/w.txt", "w").write("shared")
        print("cwd files:", sorted(os.listdir(".")))
    """)
    res = dproject.cli("submit", "-c", "old", "w.py", timeout=120)
    assert res.returncode == 0, res.stderr
    assert "'aml_config'" in res.stdout
    assert (dproject.root / "outputs" / "w.txt").read_text() == "shared"  # the project itself
    rec = record(dproject, run_id_of(res.stdout))
    assert rec["outputs"] == ["w.txt"]


def test_cli_killed_mid_run_then_logs_follow_shows_whole_log(dproject: Project) -> None:
    dproject.write("slow.py", SLOW.replace("N", "30").replace("DELAY", "0.1"))
    cli = dproject.popen("submit", "-c", "docker", "slow.py")
    assert cli.stdout is not None
    run_id = cli.stdout.readline().strip()
    time.sleep(1.5)
    cli.send_signal(signal.SIGKILL)
    cli.wait()
    res = dproject.cli("runs", "logs", run_id, "-f", timeout=120)
    assert res.returncode == 0, res.stderr
    outs = [ln for ln in res.stdout.splitlines() if ln.startswith("line ")]
    assert outs == [f"line {i}" for i in range(30)]
    assert res.stdout.splitlines()[-1] == "the end"
    assert record(dproject, run_id)["status"] == "completed"
    assert wait_no_containers(dproject.root) == []


def test_supervisor_killed_reattaches_without_gap_or_duplicate(dproject: Project) -> None:
    dproject.write("slow.py", SLOW.replace("N", "40").replace("DELAY", "0.1"))
    res = dproject.cli("submit", "-a", "-c", "docker", "slow.py", check=True)
    run_id = run_id_of(res.stdout)
    deadline = time.monotonic() + 30
    while record(dproject, run_id)["status"] != "running" and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.2)
    import sqlite3

    db = sqlite3.connect(dproject.root / ".labdeck" / "runs.db")
    pid = db.execute("select supervisor_pid from runs where id=?", (run_id,)).fetchone()[0]
    db.close()
    os.kill(pid, signal.SIGKILL)
    assert len(labelled("org.labdeck.run", run_id)) == 1  # the run goes on without it
    res = dproject.cli("runs", "logs", run_id, "-f", timeout=120)
    assert res.returncode == 0, res.stderr
    outs = [ln for ln in res.stdout.splitlines() if ln.startswith("line ")]
    assert outs == [f"line {i}" for i in range(40)]
    errs = [ln for ln in res.stderr.splitlines() if ln.startswith("err ")]
    assert errs == [f"err {i}" for i in range(0, 40, 5)]
    assert "reattaching" in res.stderr
    rec = record(dproject, run_id)
    assert rec["status"] == "completed"
    assert rec["metrics"] == {"step": list(range(0, 40, 5))}  # none lost, none twice
    assert wait_no_containers(dproject.root) == []


FLOOD = """
    import sys, time
    for i in range(300_000):
        print(f"flood {i}")
        if i % 50_000 == 0:
            print(f"flood err {i}", file=sys.stderr)
        if i % 1000 == 0:
            time.sleep(0.002)  # ~1 s in all: the supervisor is killed while lines are in flight
"""


def test_supervisor_killed_mid_flood_read_through_attach_resumes_by_count(
    dproject: Project,
) -> None:
    """A new run's lines come live through the attach stream, stamped on arrival (later than
    the daemon's own stamps): a reattach that resumed by timestamp would drop the lines in
    flight when the supervisor died; by the log's line counts, every line is there once."""
    dproject.write("flood.py", FLOOD)
    res = dproject.cli("submit", "-a", "-c", "docker", "flood.py", check=True)
    run_id = run_id_of(res.stdout)
    log = dproject.root / ".labdeck" / "runs" / run_id / "log"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if log.exists() and log.stat().st_size > 2_000_000:  # ~40,000 lines in
            break
        time.sleep(0.005)
    import sqlite3

    db = sqlite3.connect(dproject.root / ".labdeck" / "runs.db")
    pid = db.execute("select supervisor_pid from runs where id=?", (run_id,)).fetchone()[0]
    db.close()
    os.kill(pid, signal.SIGKILL)
    res = dproject.cli("runs", "logs", run_id, "-f", timeout=240)
    assert res.returncode == 0, res.stderr
    assert "reattaching" in res.stderr
    lines = log_lines(dproject, run_id)
    outs = [ln.split(" ", 2)[2] for ln in lines if ln.split(" ", 2)[1] == "out"]
    errs = [ln.split(" ", 2)[2] for ln in lines if ln.split(" ", 2)[1] == "err"]
    assert outs[:40_000] == [f"flood {i}" for i in range(40_000)]  # read before the kill
    assert outs == [f"flood {i}" for i in range(300_000)]
    assert errs == [f"flood err {i}" for i in range(0, 300_000, 50_000)]
    assert record(dproject, run_id)["status"] == "completed"
    assert wait_no_containers(dproject.root) == []


def test_cancel_stops_collects_outputs_and_leaves_nothing(dproject: Project) -> None:
    dproject.write("stubborn.py", """
        import os, signal, time
        os.makedirs("outputs", exist_ok=True)
        open("outputs/partial.txt", "w").write("half")
        signal.signal(signal.SIGTERM, lambda *a: print("got SIGTERM, ignoring", flush=True))
        print("started", flush=True)
        time.sleep(120)
    """)
    res = dproject.cli("submit", "-a", "-c", "docker", "stubborn.py", check=True)
    run_id = run_id_of(res.stdout)
    log = dproject.root / ".labdeck" / "runs" / run_id / "log"
    deadline = time.monotonic() + 30
    while (not log.exists() or "started" not in log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    started = time.monotonic()
    res = dproject.cli("runs", "cancel", run_id, timeout=60)
    assert res.returncode == 0, res.stderr
    assert time.monotonic() - started < 30
    rec = record(dproject, run_id)
    assert rec["status"] == "canceled"
    assert rec["outputs"] == ["partial.txt"]
    assert "got SIGTERM, ignoring" in log.read_text()  # SIGTERM first, SIGKILL after the grace
    assert wait_no_containers(dproject.root) == []


def test_explain_prints_equivalent_docker_run(dproject: Project) -> None:
    dproject.write("hello.py", "print(1)\n")
    res = dproject.cli("submit", "-c", "docker", "--explain", "hello.py", "a b", check=True)
    cmd = [ln for ln in res.stdout.splitlines() if ln.startswith("docker run")]
    assert len(cmd) == 1
    assert "--init" in cmd[0] and "-e PYTHONPATH=/labdeck/shim" in cmd[0]
    assert cmd[0].endswith("python3 hello.py 'a b'")
    assert "--gpus" not in cmd[0]
    assert labelled("org.labdeck.project", str(dproject.root)) == []  # nothing ran


def test_docker_ps_shows_the_run_while_it_goes(dproject: Project) -> None:
    dproject.write("slow.py", SLOW.replace("N", "20").replace("DELAY", "0.1"))
    res = dproject.cli("submit", "-a", "-c", "docker", "slow.py", check=True)
    run_id = run_id_of(res.stdout)
    deadline = time.monotonic() + 30
    seen: list[str] = []
    while not seen and time.monotonic() < deadline:
        seen = labelled("org.labdeck.run", run_id)
        time.sleep(0.1)
    assert len(seen) == 1
    fmt = "{{.Config.WorkingDir}} {{.HostConfig.Init}}"
    inspect = subprocess.run(["docker", "inspect", "-f", fmt, seen[0]],
                             capture_output=True, text=True, check=True)
    assert inspect.stdout.split() == ["/labdeck/work", "true"]
    dproject.cli("runs", "logs", run_id, "-f", timeout=120, check=True)
    assert wait_no_containers(dproject.root) == []


@pytest.mark.parametrize("mount", ["1", "0"])
def test_snapshot_mounted_or_copied_outputs_back_and_nothing_left(dproject: Project,
                                                                  mount: str) -> None:
    """A local daemon gets the snapshot bind-mounted; LABDECK_DOCKER_MOUNT=0 copies it in and
    outputs/ out through the API (as for a daemon elsewhere). Either way the container is gone
    the moment submit returns."""
    dproject.write("data/in.txt", "input\n")
    dproject.write("m.py", """
        import os
        os.makedirs("outputs/sub", exist_ok=True)
        open("outputs/sub/o.txt", "w").write(open("data/in.txt").read().upper())
        print("mounted" if os.path.ismount("/labdeck/work") else "copied")
    """)
    res = dproject.cli("submit", "-c", "docker", "m.py", env={"LABDECK_DOCKER_MOUNT": mount},
                       timeout=120)
    assert res.returncode == 0, res.stderr
    assert labelled("org.labdeck.project", str(dproject.root)) == []  # no wait: gone already
    assert ("mounted" if mount == "1" else "copied") in res.stdout
    run_id = run_id_of(res.stdout)
    assert record(dproject, run_id)["outputs"] == ["sub/o.txt"]
    run_dir = dproject.root / ".labdeck" / "runs" / run_id
    assert (run_dir / "outputs" / "sub" / "o.txt").read_text() == "INPUT\n"
    assert not (run_dir / "snapshot" / "outputs" / "sub" / "o.txt").exists()


@pytest.mark.parametrize("mount", ["1", "0"])
def test_shared_volume_runs_record_only_their_own_outputs(dproject: Project, mount: str) -> None:
    """With sharedVolumes the run works in the project, whose outputs/ keeps earlier runs'
    files: a run's outputs are what it wrote (begun early, or through the usual start)."""
    dproject.write("aml_config/shared.compute", """
        type: docker
        baseDockerImage: "labdeck/python-base:bookworm"
        sharedVolumes: true
    """)
    dproject.write("w.py", """
        import os, sys
        os.makedirs("outputs", exist_ok=True)
        open(f"outputs/{sys.argv[1]}.txt", "w").write(sys.argv[1])
    """)
    env = {"LABDECK_DOCKER_MOUNT": mount}
    ids = []
    for name in ("first", "second"):
        res = dproject.cli("submit", "-c", "shared", "w.py", name, env=env, timeout=120)
        assert res.returncode == 0, res.stderr
        ids.append(run_id_of(res.stdout))
    assert record(dproject, ids[0])["outputs"] == ["first.txt"]
    assert record(dproject, ids[1])["outputs"] == ["second.txt"]
    second = dproject.root / ".labdeck" / "runs" / ids[1] / "outputs"
    assert sorted(p.name for p in second.iterdir()) == ["second.txt"]
    assert sorted(p.name for p in (dproject.root / "outputs").iterdir()) == [
        "first.txt", "second.txt"]


def test_archive_streams_fail_cleanly_and_connections_stay_usable(docker_ready: None,
                                                                  tmp_path: Path) -> None:
    """The streamed upload and download against the real daemon: an upload whose producer
    fails mid-way raises its error (the daemon gets a broken body, not a truncated tar), one to
    a container that is not there is the daemon's 404, a reader that stops early ends the
    download; none of them hangs, and the client goes on working."""
    import asyncio
    import io
    import tarfile

    from backends.docker.api import APIError, DockerAPI
    from backends.docker.client import docker_url
    from backends.outputs import extract_tar

    def failing(out: BinaryIO) -> None:
        out.write(b"\0" * (3 << 20))
        raise OSError("the snapshot file vanished")

    def tar_of(files: dict[str, bytes]) -> Callable[[BinaryIO], None]:
        def write(out: BinaryIO) -> None:
            with tarfile.open(fileobj=out, mode="w|") as tar:
                for name, data in files.items():
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        return write

    def first_name(stream: BinaryIO) -> str:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            return next(iter(tar)).name

    async def main() -> None:
        async with DockerAPI(docker_url()) as api:
            cid = await api.create({"Image": BASE_IMAGE, "Cmd": ["true"],
                                    "Labels": {"org.labdeck.project": str(tmp_path)}})
            try:
                with pytest.raises(OSError, match="vanished"):
                    await api.put_archive(cid, "/", failing)
                with pytest.raises(APIError) as missing:
                    await api.put_archive("no-such-container", "/", tar_of({"a": b"a"}))
                assert missing.value.status == 404
                big = bytes(5 << 20)
                await api.put_archive(cid, "/", tar_of({"o/a.txt": b"a", "o/big": big}))
                assert await api.get_archive(cid, "/o", first_name) == "o"
                dest = tmp_path / "out"
                assert await api.get_archive(cid, "/o", lambda s: extract_tar(s, dest)) == [
                    "a.txt", "big"]
                assert (dest / "big").read_bytes() == big
                assert (await api.inspect(cid))["Id"] == cid
            finally:
                await api.remove(cid)

    asyncio.run(asyncio.wait_for(main(), 60))
