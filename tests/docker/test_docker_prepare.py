"""prepare: the environment image, its input-hash tag and cache, live build log, offline wheels."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from backends.engine import Engine
from backends.project import Project as EngineProject
from tests.conftest import Project
from tests.docker.conftest import docker, record, run_id_of
from tests.docker.wheels import make_wheel

pytestmark = pytest.mark.docker


def offline_env(wheels: Path) -> dict[str, str]:
    # The client's pip finds wheels only in this folder: no index, no network.
    return {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheels)}


def env_images(root: Path) -> list[str]:
    out = docker("images", "--format", "{{.Repository}}:{{.Tag}}", "--filter",
                 f"label=org.labdeck.project={root}").stdout
    return sorted(set(out.split()))


def test_offline_prepare_builds_caches_and_rebuilds_on_change(dproject: Project,
                                                              tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    make_wheel(wheels)
    dproject.write("aml_config/conda_dependencies.yml", """
        name: env
        dependencies:
          - python=3.11
          - pip
          - pip:
            - labdecktiny
    """)
    res = dproject.cli("prepare", "-c", "docker", "--offline", env=offline_env(wheels),
                       timeout=300)
    assert res.returncode == 0, res.stderr
    assert "Step 1/" in res.stderr and "Successfully built" in res.stderr  # the live build log
    assert "(cached)" not in res.stdout
    tags = env_images(dproject.root)
    assert len(tags) == 1 and tags[0].startswith("labdeck-env/proj:")
    assert tags[0] in res.stdout

    started = time.perf_counter()
    again = dproject.cli("prepare", "-c", "docker", check=True)
    assert time.perf_counter() - started < 1.5  # the whole command, interpreter start included
    assert "(cached)" in again.stdout and tags[0] in again.stdout
    engine = Engine(EngineProject(dproject.root))
    asyncio.run(engine.prepare("docker"))  # imports aiodocker once
    started = time.perf_counter()
    env = asyncio.run(engine.prepare("docker"))
    assert env.cached and time.perf_counter() - started < 0.3

    dproject.write("uses.py", "import labdecktiny\nprint('value', labdecktiny.VALUE)\n")
    res = dproject.cli("submit", "-c", "docker", "uses.py", timeout=120)
    assert res.returncode == 0, res.stderr
    assert "value 42" in res.stdout

    # A changed dependency list is another image; the comment-only edit is not.
    dproject.write("aml_config/conda_dependencies.yml", """
        # a comment changes nothing
        name: env
        dependencies:
          - python=3.11
          - pip
          - pip:
            - labdecktiny
    """)
    assert "(cached)" in dproject.cli("prepare", "-c", "docker", check=True).stdout
    make_wheel(wheels, version="0.2", value=7)
    dproject.write("aml_config/conda_dependencies.yml", """
        dependencies:
          - pip:
            - labdecktiny==0.2
    """)
    res = dproject.cli("prepare", "-c", "docker", "--offline", env=offline_env(wheels),
                       timeout=300)
    assert res.returncode == 0, res.stderr
    assert len(env_images(dproject.root)) == 2
    res = dproject.cli("submit", "-c", "docker", "uses.py", timeout=120)
    assert "value 7" in res.stdout
    assert record(dproject, run_id_of(res.stdout))["status"] == "completed"


def test_conda_section_without_conda_in_the_image_goes_through_pip(dproject: Project,
                                                                   tmp_path: Path) -> None:
    # A Workbench-era file: conda pins for a Python the image lacks; the image has no conda.
    wheels = tmp_path / "wheels"
    make_wheel(wheels, version="0.1", value=1)
    make_wheel(wheels, version="0.2", value=2)
    dproject.write("aml_config/conda_dependencies.yml", """
        name: project_environment
        dependencies:
          - python=3.5.2
          - labdecktiny=0.0.5
    """)
    res = dproject.cli("prepare", "-c", "docker", "--offline", env=offline_env(wheels),
                       timeout=300)
    assert res.returncode == 0, res.stderr
    assert "python=3.5.2 is not honoured: base image" in res.stderr
    assert "no labdecktiny 0.0.5 for Python 3.11; installing labdecktiny==0.1 instead" in \
        res.stderr
    dproject.write("uses.py", "import labdecktiny\nprint('value', labdecktiny.VALUE)\n")
    run = dproject.cli("submit", "-c", "docker", "uses.py", timeout=120)
    assert run.returncode == 0, run.stderr
    assert "value 1" in run.stdout
