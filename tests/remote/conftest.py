"""The remote Docker host rig (scripts/start-rigs.sh: OpenSSH's sshd and its own Docker Engine
in a container on 127.0.0.1), started once per session, and per-test client state: a private
HOME (known_hosts, ~/.ssh/config) and config folder (the secrets file), and a project whose
containers on the rig's daemon are removed afterwards."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO, Project, need
from tests.docker.conftest import daemon_ok

FACTS = REPO / ".labdeck-rigs" / "remotedocker.json"


@dataclass
class Rig:
    container: str
    host: str
    port: int
    user: str
    nodocker_user: str
    nofwd_user: str
    password: str
    identity_file: str
    host_key: str
    base_image: str

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def known_hosts_line(self) -> str:
        return f"[{self.host}]:{self.port} {self.host_key}\n"

    def sh(self, command: str, check: bool = False,
           timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """A command inside the rig (as root), not over SSH."""
        return subprocess.run(["docker", "exec", self.container, "sh", "-c", command],
                              capture_output=True, text=True, check=check, timeout=timeout)

    def labelled(self, label: str) -> list[str]:
        out = self.sh(f"docker ps -aq --filter 'label={label}'").stdout
        return out.split()


@pytest.fixture(scope="session")
def rig() -> Rig:
    need(daemon_ok(), "the Docker daemon is not reachable (docker version failed)")
    started = subprocess.run(["bash", str(REPO / "scripts" / "start-rigs.sh")],
                             capture_output=True, text=True, timeout=600)
    need(started.returncode == 0,
         f"the remotedocker rig did not start: {started.stderr.strip()[-300:]}")
    facts = json.loads(FACTS.read_text())
    return Rig(**{k: facts[k] for k in Rig.__dataclass_fields__})


@dataclass
class Client:
    """This machine as a fresh user of the rig: HOME, config folder, environment."""

    home: Path
    env: dict[str, str]

    def known_hosts(self, text: str) -> None:
        ssh = self.home / ".ssh"
        ssh.mkdir(mode=0o700, exist_ok=True)
        (ssh / "known_hosts").write_text(text)

    @property
    def secrets(self) -> Path:
        return Path(self.env["XDG_CONFIG_HOME"]) / "labdeck" / "secrets.json"


@pytest.fixture
def client(tmp_path: Path, rig: Rig) -> Client:
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home), "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
           "LABDECK_SECRETS": "file", "SSH_AUTH_SOCK": ""}
    c = Client(home, env)
    c.known_hosts(rig.known_hosts_line)
    return c


class RemoteProject(Project):
    env: dict[str, str]

    def cli(self, *args: str, timeout: float = 120, env: dict[str, str] | None = None,
            check: bool = False):  # type: ignore[override]
        return super().cli(*args, timeout=timeout, env={**self.env, **(env or {})}, check=check)

    def popen(self, *args: str, env: dict[str, str] | None = None):  # type: ignore[override]
        return super().popen(*args, env={**self.env, **(env or {})})


@pytest.fixture
def rproject(project: Project, rig: Rig, client: Client) -> Iterator[RemoteProject]:
    """A project with target ``rig`` (key login as the docker user) and a runconfig for it."""
    rp = RemoteProject(project.root)
    rp.env = client.env
    rp.write("aml_config/rig.compute", f"""
        type: remotedocker
        address: "{rig.address}"
        username: "{rig.user}"
        privateKeyFile: "{rig.identity_file}"
        baseDockerImage: "{rig.base_image}"
    """)
    rp.write("aml_config/rig.runconfig", """
        ArgumentVector: ["$file"]
        Target: rig
        Framework: Python
        EnvironmentVariables:
          EXAMPLE: "from-runconfig"
    """)
    try:
        yield rp
    finally:
        ids = rig.labelled(f"org.labdeck.project={rp.root}")
        if ids:
            rig.sh("docker rm -f " + " ".join(ids))


def supervisor_pid(project: Project, run_id: str) -> int:
    db = sqlite3.connect(project.root / ".labdeck" / "runs.db")
    try:
        pid: int = db.execute("select supervisor_pid from runs where id=?",
                              (run_id,)).fetchone()[0]
    finally:
        db.close()
    return pid


def until(condition, timeout: float = 30, step: float = 0.05) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return bool(condition())


def wait_no_containers(rig: Rig, project: Project, timeout: float = 20) -> list[str]:
    label = f"org.labdeck.project={project.root}"
    until(lambda: not rig.labelled(label), timeout, 0.3)
    return rig.labelled(label)


__all__ = ["Client", "RemoteProject", "Rig", "os"]
