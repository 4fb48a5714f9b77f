"""prepare on the rig: the environment image built by the remote daemon (live build log),
cached by the same input hash as locally, its base image sent from this machine when the
remote daemon lacks it and cannot pull it; offline wheels from this machine."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from tests.docker.conftest import docker
from tests.docker.wheels import make_wheel
from tests.remote.conftest import RemoteProject, Rig

pytestmark = pytest.mark.docker


def image_id(inspect: str) -> str:
    return inspect.strip().strip("'")


def test_prepare_sends_a_missing_base_image_builds_there_and_caches(
        rproject: RemoteProject, rig: Rig, tmp_path: Path) -> None:
    # A name the rig's daemon lacks (and cannot pull: it has no registry), for the base image
    # this machine has: the rig's own copy under its usual name stays for the other tests.
    base = f"labdeck/python-base:rigtest-{uuid.uuid4().hex[:8]}"
    docker("tag", rig.base_image, base)
    local_id = docker("image", "inspect", "-f", "{{.Id}}", base).stdout.strip()
    env_tag = ""
    try:
        assert rig.sh(f"docker image inspect {base}").returncode != 0
        compute = rproject.root / "aml_config" / "rig.compute"
        compute.write_text(compute.read_text().replace(rig.base_image, base))
        wheels = tmp_path / "wheels"
        make_wheel(wheels)
        rproject.write("aml_config/conda_dependencies.yml", """
            dependencies:
              - pip:
                - labdecktiny
        """)
        offline = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheels)}
        res = rproject.cli("prepare", "-c", "rig", "--offline", env=offline, timeout=300)
        assert res.returncode == 0, res.stdout + res.stderr
        assert "the remote daemon cannot pull it" in res.stderr
        assert f"sent {base} to the remote host" in res.stderr
        assert "Step 1/" in res.stderr and "Successfully built" in res.stderr  # its build log
        remote_id = rig.sh(f"docker image inspect -f '{{{{.Id}}}}' {base}").stdout.strip()
        assert remote_id == local_id  # the same id: the same environment hash as locally
        env_tag = res.stdout.split("prepared rig: ", 1)[1].split()[0]
        assert env_tag.startswith("labdeck-env/shared:")
        assert rig.sh(f"docker image inspect {env_tag}").returncode == 0  # built over there

        started = time.perf_counter()
        again = rproject.cli("prepare", "-c", "rig", timeout=60)
        took = time.perf_counter() - started
        assert again.returncode == 0, again.stderr
        assert "(cached)" in again.stdout and env_tag in again.stdout
        assert "sending" not in again.stderr and "Step 1/" not in again.stderr
        assert took < 2.0, took  # the whole command: interpreter, SSH handshake, two calls

        rproject.write("uses.py", "import labdecktiny\nprint('value', labdecktiny.VALUE)\n")
        res = rproject.cli("submit", "-c", "rig", "uses.py", timeout=120)
        assert res.returncode == 0, res.stdout + res.stderr
        assert "value 42" in res.stdout
    finally:
        docker("rmi", base, check=False)  # the tag only: the image stays under its own name
        rig.sh(f"docker rmi {base} {env_tag}".strip())


def test_prepare_names_a_base_image_no_one_has(rproject: RemoteProject, rig: Rig) -> None:
    compute = rproject.root / "aml_config" / "rig.compute"
    compute.write_text(compute.read_text().replace(rig.base_image, "labdeck/nowhere:1"))
    res = rproject.cli("prepare", "-c", "rig", timeout=60)
    assert res.returncode != 0
    last = res.stderr.strip().splitlines()[-1]
    assert "'labdeck/nowhere:1' is on neither the remote host" in last, res.stderr
    assert "cannot pull it" in last
