"""The Spark rig (scripts/start-spark.sh): a standalone master and worker on 127.0.0.1, pyspark
in the venv. One rig for the whole session; tests needing it FAIL in CI when it cannot start
and skip elsewhere. Spark jobs cost 15-25 s each here: the suite runs only a handful."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, Project, need

FACTS = REPO / ".labdeck-rigs" / "spark.json"
SPARK_ENV = {"SPARK_LOCAL_IP": "127.0.0.1"}


@pytest.fixture(scope="session")
def spark_rig() -> dict[str, Any]:
    need(shutil.which("java") is not None or bool(os.environ.get("JAVA_HOME")),
         "Java 17+ for Spark")
    proc = subprocess.run(["bash", str(REPO / "scripts" / "start-spark.sh")], capture_output=True,
                          text=True, timeout=900)
    need(proc.returncode == 0 and FACTS.is_file(),
         f"the Spark rig (scripts/start-spark.sh): {proc.stderr.strip()[-300:]}")
    facts: dict[str, Any] = json.loads(FACTS.read_text())
    return facts


def master_state(rig: dict[str, Any]) -> dict[str, Any]:
    with urllib.request.urlopen(f"{rig['ui_url']}/json/", timeout=10) as resp:
        state: dict[str, Any] = json.load(resp)
    return state


@pytest.fixture
def spark_project(sample_copy: Project, spark_rig: dict[str, Any]) -> Project:
    """The sample project, its Spark computes pointed at the rig."""
    del spark_rig  # the rig's addresses are the sample's (127.0.0.1, default ports)
    return sample_copy


def last_run_dir(project: Project) -> Path:
    runs = sorted((project.root / ".labdeck" / "runs").iterdir(), key=lambda p: p.name)
    return runs[-1]


HEAD_FACTS = REPO / ".labdeck-rigs" / "spark-head.json"


@pytest.fixture(scope="session")
def head_rig() -> dict[str, Any]:
    """The Spark head node over SSH (scripts/start-spark-head.sh): sshd, Java, pyspark."""
    from tests.docker.conftest import daemon_ok

    need(daemon_ok(), "the Docker daemon is not reachable (docker version failed)")
    proc = subprocess.run(["bash", str(REPO / "scripts" / "start-spark-head.sh")],
                          capture_output=True, text=True, timeout=900)
    need(proc.returncode == 0 and HEAD_FACTS.is_file(),
         f"the Spark head-node rig (scripts/start-spark-head.sh): {proc.stderr.strip()[-300:]}")
    facts: dict[str, Any] = json.loads(HEAD_FACTS.read_text())
    return facts


class HeadProject(Project):
    env: dict[str, str]

    def cli(self, *args: str, timeout: float = 120, env: dict[str, str] | None = None,
            check: bool = False):  # type: ignore[no-untyped-def,override]
        return super().cli(*args, timeout=timeout, env={**self.env, **(env or {})}, check=check)


@pytest.fixture
def head_project(sample_copy: Project, head_rig: dict[str, Any], tmp_path: Path) -> HeadProject:
    """The sample project as a new user of the head node: a private HOME whose known_hosts has
    the rig's key, spark-head.compute with the rig's key file, the shared wheel cache."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "known_hosts").write_text(
        f"[{head_rig['host']}]:{head_rig['port']} {head_rig['host_key']}\n")
    project = HeadProject(sample_copy.root)
    project.env = {"HOME": str(home), "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
                   "LABDECK_SECRETS": "file", "SSH_AUTH_SOCK": "",
                   "LABDECK_WHEEL_CACHE": head_rig["wheels"]}
    compute = project.root / "aml_config" / "spark-head.compute"
    compute.write_text(compute.read_text()
                       .replace("../.labdeck-rigs/id_ed25519", head_rig["identity_file"])
                       .replace("127.0.0.1:2223", f"{head_rig['host']}:{head_rig['port']}"))
    return project


def head_sh(rig: dict[str, Any], command: str) -> str:
    """A command inside the head node (as root), not over SSH."""
    return subprocess.run(["docker", "exec", rig["container"], "sh", "-c", command],
                          capture_output=True, text=True, timeout=60).stdout
