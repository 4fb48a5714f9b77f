"""Issue 11 item 13: a run's resource use, sampled while it runs (backends/resources.py) and drawn
as sparklines in the run details.

The sampler is driven directly against a real local process tree and a real container; only
nvidia-smi is a stand-in (``FAKE_NVIDIA_SMI``: no GPU on this machine), named as such.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from backends import resources
from backends.engine import Engine
from backends.project import Project
from tests.conftest import need
from tests.docker.conftest import BASE_IMAGE, daemon_ok, docker
from tui.app import LabdeckApp
from tui.widgets.run_details import RunDetails

from .helpers import settle, until

GUARD_S = 120.0  # a hang guard, not a speed bound: generous for a loaded machine

# A parent that waits on a child holding ~64 MiB and spinning a CPU: the tree is what counts.
TREE = """
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c",
    "import time\\nb = bytearray(64 << 20)\\nfor i in range(0, len(b), 4096): b[i] = 1\\n"
    "print('ready', flush=True)\\nwhile True: pass"], stdout=sys.stdout)
child.wait()
"""


async def wait_for(condition, what: str, guard: float = GUARD_S) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + guard
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.05)


def samples(run_dir: Path) -> list[dict[str, float]]:
    return resources.read_samples(run_dir, 1000)


async def test_a_local_process_tree_is_sampled_until_it_ends(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", TREE], stdout=subprocess.PIPE,
                            start_new_session=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        stop = asyncio.Event()
        task = asyncio.create_task(resources.sample_resources(
            "r1", f"pid:{proc.pid}", tmp_path, stop, interval=0.1))
        await wait_for(lambda: len(samples(tmp_path)) >= 5, "five samples")
        seen = samples(tmp_path)
        assert all(s["rss"] >= 64 << 20 for s in seen), "the child's memory counts"
        assert max(s["cpu"] for s in seen) > 0, "the spinning child's CPU counts"
        assert "gpu_mem" not in seen[-1] or resources.nvidia_smi() is not None
        os.killpg(proc.pid, 9)
        proc.wait()
        assert await asyncio.wait_for(task, GUARD_S) is None  # ends by itself: the run is gone
        assert not stop.is_set()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait()


async def test_stop_ends_sampling_and_a_gone_process_is_no_error(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        stop = asyncio.Event()
        task = asyncio.create_task(resources.sample_resources(
            "r2", f"pid:{proc.pid}", tmp_path, stop, interval=0.1))
        await wait_for(lambda: len(samples(tmp_path)) >= 1, "a sample")
        stop.set()
        assert await asyncio.wait_for(task, GUARD_S) is None
    finally:
        proc.kill()
        proc.wait()
    gone = await resources.sample_resources("r3", f"pid:{proc.pid}", tmp_path / "x",
                                            asyncio.Event())
    assert gone is None  # ended before its first sample: no sys line in its log


def test_the_samples_file_stays_bounded(tmp_path: Path) -> None:
    out = resources.SampleFile(tmp_path / resources.FILE, keep=10)
    for i in range(40):
        out.append({"t": float(i), "cpu": float(i), "rss": 1.0})
    lines = (tmp_path / resources.FILE).read_text().splitlines()
    assert 10 <= len(lines) <= 12
    assert json.loads(lines[-1])["t"] == 39
    assert [s["t"] for s in resources.read_samples(tmp_path, 3)] == [37, 38, 39]
    again = resources.SampleFile(tmp_path / resources.FILE, keep=10)  # a reattached supervisor
    assert again.lines == len(lines)


FAKE_NVIDIA_SMI = """#!/bin/sh
# FAKE nvidia-smi (this machine has no GPU): one GPU whose only compute app is PID.
case "$1" in
  --query-compute-apps=*) echo "{pid}, GPU-fake-0, 2048" ;;
  --query-gpu=*) echo "GPU-fake-0, 87"; echo "GPU-fake-1, 3" ;;
  *) exit 2 ;;
esac
"""


async def test_gpu_use_with_a_fake_nvidia_smi(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        fake = tmp_path / "fake-nvidia-smi"
        fake.write_text(FAKE_NVIDIA_SMI.format(pid=proc.pid))
        fake.chmod(0o755)
        monkeypatch.setenv("LABDECK_NVIDIA_SMI", str(fake))
        stop = asyncio.Event()
        task = asyncio.create_task(resources.sample_resources(
            "r4", f"pid:{proc.pid}", tmp_path, stop, interval=0.1))
        await wait_for(lambda: len(samples(tmp_path)) >= 2, "two samples")
        stop.set()
        await asyncio.wait_for(task, GUARD_S)
        last = samples(tmp_path)[-1]
        assert last["gpu_mem"] == 2048 << 20 and last["gpu_util"] == 87
        # another process's GPU use is not this run's
        assert await resources.gpu_use(str(fake), [proc.pid + 100_000]) == {}
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.docker
async def test_a_container_is_sampled_through_the_engine_api(tmp_path: Path) -> None:
    need(daemon_ok(), "docker daemon not reachable")
    need(docker("image", "inspect", BASE_IMAGE, check=False).returncode == 0,
         f"{BASE_IMAGE} missing (scripts/build-base-image.sh)")
    script = ("b = bytearray(64 << 20)\nfor i in range(0, len(b), 4096): b[i] = 1\n"
              "while True: pass")
    cid = docker("run", "-d", "--label", "org.labdeck.test=resources", BASE_IMAGE,
                 "python", "-c", script).stdout.strip()
    try:
        from backends.docker.client import docker_url

        ref = resources.ContainerRef(docker_url(), cid)
        stop = asyncio.Event()
        task = asyncio.create_task(resources.sample_resources("r5", ref, tmp_path, stop,
                                                              interval=0.2))
        await wait_for(lambda: len(samples(tmp_path)) >= 4
                       and max(s["rss"] for s in samples(tmp_path)) >= 60 << 20,
                       "samples with the container's 64 MiB", guard=120)
        assert max(s["cpu"] for s in samples(tmp_path)) > 0
        docker("rm", "-f", cid)
        assert await asyncio.wait_for(task, 120) is None  # the container is gone: it ends
    finally:
        docker("rm", "-f", cid, check=False)


async def test_the_details_show_resource_sparklines_live(deck_project: Project) -> None:
    engine = Engine(deck_project)
    run_id = f"{deck_project.name}_1003"
    run_dir = engine.log_path(run_id).parent
    out = resources.SampleFile(run_dir / resources.FILE)
    for i in range(20):
        out.append({"t": 1_767_225_600.0 + i, "cpu": float(10 * i), "rss": float((i + 1) << 20),
                    "gpu_mem": float(512 << 20), "gpu_util": 40.0})
    app = LabdeckApp(engine, poll=False)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            app.runs_panel.select(run_id)
            await until(pilot, lambda: app.details.record is not None
                        and app.details.record.id == run_id, "the run's details")
            await until(pilot, lambda: "cpu" in app.details.text(), "the resources section")
            text = app.details.text()
            assert "▁" in text and "█" in text
            assert "max 190%" in text and "20 MiB" in text
            assert "gpu memory" in text and "512 MiB" in text and "gpu util" in text
            out.append({"t": 1_767_225_700.0, "cpu": 400.0, "rss": float(3 << 30)})
            await until(pilot, lambda: "max 400%" in app.details.text(), "the new sample")
            assert "3.0 GiB" in app.details.text()
    finally:
        engine.close()


def test_a_run_without_samples_shows_no_resources_section(deck_project: Project) -> None:
    from tui.widgets.run_details import resource_rows

    assert resource_rows([], 60) == []
    assert isinstance(RunDetails, type)
