"""A multi-GB file in and out of a container costs the supervisor no memory: the snapshot's
upload and the outputs' download stream (a daemon elsewhere gets both through the API; a remote
target depends on it). The supervisor's peak RSS is read from /proc while it runs."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from backends.project import Project as LabdeckProject
from backends.store import RunStore
from tests.conftest import Project, need
from tests.docker.conftest import BASE_IMAGE, daemon_ok, docker, remove_labelled

pytestmark = pytest.mark.docker

GB = 1 << 30
SNAPSHOT_FILE = GB // 2  # goes in (its copy in the snapshot and in the container is dense)
OUTPUT_FILE = 2 * GB  # comes out: sparse in the container and, holes kept, in the run's folder
PEAK_LIMIT_KB = 300 * 1024  # whole-file buffers would need several GB

WRITER = f"""
    import os
    print("big.bin in the container:", os.path.getsize("big.bin"))
    os.makedirs("outputs", exist_ok=True)
    with open("outputs/ckpt.bin", "wb") as fh:
        fh.truncate({OUTPUT_FILE})
        fh.seek({OUTPUT_FILE} - 3)
        fh.write(b"end")
"""


def _vm_hwm_kb(pid: int) -> int | None:
    """The peak resident size so far of a live process; None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def _supervisor_pid(store: RunStore, deadline: float) -> tuple[str, int]:
    while time.monotonic() < deadline:
        runs = store.list_runs(with_metrics=False)
        if runs and runs[0].supervisor_pid:
            return runs[0].id, runs[0].supervisor_pid
        time.sleep(0.02)
    raise AssertionError("no supervisor recorded for the run")


def test_big_snapshot_in_and_big_outputs_out_keep_the_supervisor_small(
        project: Project, tmp_path: Path) -> None:
    need(daemon_ok(), "the Docker daemon is not reachable (docker version failed)")
    need(docker("image", "inspect", BASE_IMAGE, check=False).returncode == 0,
         f"base image {BASE_IMAGE} missing: run scripts/build-base-image.sh")
    need(shutil.disk_usage(tmp_path).free > 8 * GB, "8 GB of free disk for the big files")
    project.write("aml_config/docker.compute", f'type: docker\nbaseDockerImage: "{BASE_IMAGE}"\n')
    project.write("w.py", WRITER)
    with open(project.root / "big.bin", "wb") as fh:  # sparse here, dense once copied
        fh.truncate(SNAPSHOT_FILE)
    env = {"LABDECK_DOCKER_MOUNT": "0", "LABDECK_SNAPSHOT_LIMIT_MB": "1024"}
    store = RunStore(LabdeckProject(project.root).db_path)
    proc = project.popen("submit", "-c", "docker", "w.py", env=env)
    try:
        run_id, pid = _supervisor_pid(store, time.monotonic() + 120)
        peak = 0
        deadline = time.monotonic() + 300
        while (seen := _vm_hwm_kb(pid)) is not None:  # the last reading covers the collect
            peak = max(peak, seen)
            assert time.monotonic() < deadline, "the supervisor did not finish"
            time.sleep(0.02)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert 0 < peak < PEAK_LIMIT_KB, f"supervisor peak RSS {peak // 1024} MB"
        assert f"big.bin in the container: {SNAPSHOT_FILE}" in out
        data = json.loads(project.cli("runs", "show", run_id, "-o", "json", check=True).stdout)
        assert data["outputs"] == ["ckpt.bin"]
        ckpt = project.root / ".labdeck" / "runs" / run_id / "outputs" / "ckpt.bin"
        st = os.stat(ckpt)
        assert st.st_size == OUTPUT_FILE and st.st_blocks * 512 < 64 << 20
        with open(ckpt, "rb") as fh:
            fh.seek(-3, os.SEEK_END)
            assert fh.read() == b"end"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        store.disconnect()
        remove_labelled(project.root)
