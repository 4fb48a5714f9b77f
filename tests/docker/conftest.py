"""Fixtures for the docker target: the real daemon, the locally built base image, a project with
docker computes, and cleanup of every container and image a test made (found by label)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Project, need

BASE_IMAGE = "labdeck/python-base:bookworm"


def docker(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check,
                          timeout=timeout)


def daemon_ok() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return docker("version", "--format", "{{.Server.Version}}", check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def labelled(label: str, value: str) -> list[str]:
    out = docker("ps", "-aq", "--filter", f"label={label}={value}").stdout
    return out.split()


def remove_labelled(project_root: Path) -> None:
    ids = labelled("org.labdeck.project", str(project_root))
    if ids:
        docker("rm", "-f", *ids, check=False)
    images = docker("images", "-q", "--filter", f"label=org.labdeck.project={project_root}").stdout
    if images.split():
        docker("rmi", "-f", *sorted(set(images.split())), check=False)


def wait_no_containers(project_root: Path, timeout: float = 15) -> list[str]:
    """Containers of the project still there after ``timeout`` (supervisors remove them last)."""
    deadline = time.monotonic() + timeout
    left = labelled("org.labdeck.project", str(project_root))
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = labelled("org.labdeck.project", str(project_root))
    return left


def record(project: Project, run_id: str) -> dict[str, object]:
    res = project.cli("runs", "show", run_id, "-o", "json", check=True)
    data: dict[str, object] = json.loads(res.stdout)
    return data


def run_id_of(stdout: str) -> str:
    return stdout.strip().splitlines()[0]


@pytest.fixture(scope="session")
def docker_ready() -> None:
    need(daemon_ok(), "the Docker daemon is not reachable (docker version failed)")
    need(docker("image", "inspect", BASE_IMAGE, check=False).returncode == 0,
         f"base image {BASE_IMAGE} missing: run scripts/build-base-image.sh")


@pytest.fixture
def dproject(project: Project, docker_ready: None, tmp_path: Path) -> Iterator[Project]:
    """A project with a plain docker target (no dependencies: the base image is the env)."""
    share = tmp_path / "share"
    project.write("aml_config/docker.compute", f"""
        type: docker
        baseDockerImage: "{BASE_IMAGE}"
        nativeSharedDirectory: "{share}"
    """)
    try:
        yield project
    finally:
        remove_labelled(project.root)
