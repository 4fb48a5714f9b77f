"""Docker with content-addressed snapshots (issue 12, item 1), on the real daemon: the run's
materialised snapshot is what the container mounts, and two projects with the same environment
inputs share one environment image (its tag names no project)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from tests.conftest import Project
from tests.docker.conftest import BASE_IMAGE, docker, remove_labelled, run_id_of
from tests.docker.test_docker_prepare import offline_env
from tests.docker.wheels import make_wheel

pytestmark = pytest.mark.docker

CONDA = """
    name: env
    dependencies:
      - python=3.11
      - pip
      - pip:
        - {name}
"""


def docker_project(root: Path, share: Path, name: str) -> Project:
    project = Project(root)
    project.write("aml_config/docker.compute", f"""
        type: docker
        baseDockerImage: "{BASE_IMAGE}"
        nativeSharedDirectory: "{share}"
    """)
    project.write("aml_config/conda_dependencies.yml", CONDA.format(name=name))
    project.write("uses.py", f"""
        import os, {name}
        print("value", {name}.VALUE)
        os.makedirs("outputs", exist_ok=True)
        open("outputs/model.txt", "w").write("m")
        open("data.txt", "w").write("changed in the container")
    """)
    project.write("data.txt", "original\n")
    return project


def test_two_projects_share_the_env_image_and_run_from_their_snapshots(
        docker_ready: None, tmp_path: Path) -> None:
    name = f"labdeckcas{uuid.uuid4().hex[:8]}"  # inputs no other test (or run) has built
    wheels = tmp_path / "wheels"
    make_wheel(wheels, name=name, value=7)
    one = docker_project(tmp_path / "one", tmp_path / "share1", name)
    two = docker_project(tmp_path / "two", tmp_path / "share2", name)
    try:
        built = one.cli("prepare", "-c", "docker", "--offline", env=offline_env(wheels),
                        timeout=300, check=True)
        assert "(cached)" not in built.stdout
        tag = built.stdout.split("prepared docker: ", 1)[1].split()[0]
        assert tag.startswith("labdeck-env/shared:"), built.stdout
        again = two.cli("prepare", "-c", "docker", env=offline_env(wheels), check=True)
        assert "(cached)" in again.stdout and tag in again.stdout  # the other project's image

        res = two.cli("submit", "-c", "docker", "uses.py", timeout=120)
        assert res.returncode == 0, res.stderr
        assert "value 7" in res.stdout
        run_id = run_id_of(res.stdout)
        run_dir = two.root / ".labdeck" / "runs" / run_id
        manifest = json.loads((run_dir / "snapshot.json").read_text())
        assert "uses.py" in [row[0] for row in manifest["files"]]
        assert (run_dir / "outputs" / "model.txt").read_text() == "m"
        # The container wrote into its mounted copy, never into the store.
        entry = next(row for row in manifest["files"] if row[0] == "data.txt")
        obj = two.root / ".labdeck" / "objects" / entry[1][:2] / entry[1][2:]
        assert obj.read_text() == "original\n"
        second = two.cli("submit", "-c", "docker", "uses.py", timeout=120, check=True)
        assert "value 7" in second.stdout
        assert not (run_dir / "snapshot").exists()  # dropped once its run ended
    finally:
        remove_labelled(one.root)
        remove_labelled(two.root)
        docker("rmi", "-f", tag if "tag" in locals() else "none", check=False)
