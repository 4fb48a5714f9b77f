"""The GPU path: device requests as the real daemon records them (next to the docker CLI's own),
the daemon's real refusal on this GPU-less machine, --explain, and the nvidia-smi inventory read
from a stand-in script."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from backends.base import EnvRef, RunContext
from backends.config import GpuRequest
from backends.docker.backend import DockerBackend
from backends.errors import TargetError
from backends.gpu import NO_RUNTIME, device_requests, parse_nvidia_smi
from backends.project import Project as EngineProject
from tests.conftest import Project, stand_in_nvidia_smi
from tests.docker.conftest import BASE_IMAGE, docker, labelled

ALL = [{"Driver": "", "Count": -1, "DeviceIDs": None, "Capabilities": [["gpu"]], "Options": {}}]


def test_device_requests_match_the_docker_cli() -> None:
    assert device_requests(GpuRequest(count=-1)) == ALL
    assert device_requests(GpuRequest(count=2))[0]["Count"] == 2
    ids = device_requests(GpuRequest(count=0, device_ids=("0", "1")))[0]
    assert ids["Count"] == 0 and ids["DeviceIDs"] == ["0", "1"]
    assert device_requests(None) == []


def test_nvidia_smi_csv_parsing() -> None:
    gpus = parse_nvidia_smi("0, NVIDIA A100-SXM4-80GB, 81920, 1024, 37, GPU-aaa\n"
                            "1, Tesla T4, 15360, 0, [N/A], GPU-bbb\n\n")
    assert [(g.index, g.name, g.memory_total_mb, g.memory_used_mb, g.utilization_pct)
            for g in gpus] == [(0, "NVIDIA A100-SXM4-80GB", 81920, 1024, 37),
                               (1, "Tesla T4", 15360, 0, -1)]
    with pytest.raises(TargetError):
        parse_nvidia_smi("garbage\n")


def gpu_project(project: Project, gpus: str) -> RunContext:
    project.write("aml_config/gpu.compute",
                  f'type: docker\nbaseDockerImage: "{BASE_IMAGE}"\ngpus: {gpus}\n')
    project.write("t.py", "print(1)\n")
    eng = EngineProject(project.root)
    target = eng.resolve("gpu")
    run_id = f"gputest-{os.getpid()}-{abs(hash(gpus))}"
    return RunContext(run_id, eng, target, project.root / "run", project.root, ["t.py"], {})


async def _recorded(ctx: RunContext) -> list[dict[str, object]]:
    import aiodocker

    backend = DockerBackend(ctx.compute)
    async with aiodocker.Docker() as client:
        container = await client.containers.create(
            config=backend.plan.config(ctx, BASE_IMAGE))
        try:
            info = await container.show()
        finally:
            await container.delete(force=True)
    requests: list[dict[str, object]] = info["HostConfig"]["DeviceRequests"]
    return requests


@pytest.mark.docker
@pytest.mark.parametrize(("gpus", "cli"), [('"all"', "all"), ("2", "2"),
                                           ("[0, 1]", '"device=0,1"')])
def test_device_request_as_the_daemon_records_it(dproject: Project, gpus: str, cli: str) -> None:
    ctx = gpu_project(dproject, gpus)
    ours = asyncio.run(_recorded(ctx))
    made = docker("create", "--gpus", cli, "--label", f"org.labdeck.project={dproject.root}",
                  BASE_IMAGE, "true").stdout.strip()
    try:
        theirs = json.loads(docker("inspect", "-f", "{{json .HostConfig.DeviceRequests}}",
                                   made).stdout)
    finally:
        docker("rm", "-f", made)
    assert ours == theirs
    if gpus == '"all"':
        assert ours == ALL
    assert labelled("org.labdeck.run", ctx.run_id) == []


@pytest.mark.docker
def test_daemon_refuses_gpus_at_start_with_one_line_and_no_container(dproject: Project) -> None:
    ctx = gpu_project(dproject, '"all"')
    backend = DockerBackend(ctx.compute)

    async def start() -> None:
        await backend.start(ctx, EnvRef(BASE_IMAGE))

    with pytest.raises(TargetError) as caught:
        asyncio.run(start())
    assert str(caught.value) == NO_RUNTIME
    assert labelled("org.labdeck.run", ctx.run_id) == []


@pytest.mark.docker
def test_explain_prints_gpus_flag(dproject: Project) -> None:
    gpu_project(dproject, "[0, 1]")
    res = dproject.cli("submit", "-c", "gpu", "--explain", "t.py", check=True)
    assert "--gpus '\"device=0,1\"' " in res.stdout




@pytest.mark.docker
def test_target_show_lists_gpus_from_nvidia_smi(dproject: Project, tmp_path: Path) -> None:
    gpu_project(dproject, '"all"')
    smi = stand_in_nvidia_smi(tmp_path)
    res = dproject.cli("target", "show", "gpu", env={"LABDECK_NVIDIA_SMI": str(smi)}, check=True)
    assert "[0] NVIDIA A100-SXM4-80GB  1024/81920 MiB  37% util" in res.stdout
    assert "[1] NVIDIA A100-SXM4-80GB  0/81920 MiB  0% util" in res.stdout
    assert "reachable:    yes (docker " in res.stdout


@pytest.mark.docker
def test_target_show_without_gpus_says_so(dproject: Project, tmp_path: Path) -> None:
    gpu_project(dproject, '"all"')
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    res = dproject.cli("target", "show", "gpu", env={"LABDECK_NVIDIA_SMI": str(empty / "none")},
                       check=True)
    assert "gpus:         none (nvidia-smi failed" in res.stdout
    assert NO_RUNTIME in res.stdout
