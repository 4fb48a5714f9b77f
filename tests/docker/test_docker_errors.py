"""Bad input on the docker target: each is one line naming the cause, a failed run record where a
run was submitted, and no container left behind."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from backends.gpu import NO_RUNTIME
from tests.conftest import Project
from tests.docker.conftest import docker, labelled, record, run_id_of, wait_no_containers
from tests.docker.wheels import make_wheel

pytestmark = pytest.mark.docker


def one_line_error(stderr: str) -> str:
    errors = [ln for ln in stderr.splitlines() if ln.startswith("labdeck: error:")]
    assert len(errors) == 1, stderr
    assert "Traceback" not in stderr
    return errors[0]


def submit_fails(project: Project, target: str, script: str = "ok.py",
                 env: dict[str, str] | None = None) -> dict[str, object]:
    """Submit, expect a failed run, return its record; checks the one-line summary."""
    if not (project.root / script).exists():
        project.write(script, "print('ran')\n")
    res = project.cli("submit", "-c", target, script, env=env, timeout=180)
    assert res.returncode != 0
    assert "Traceback" not in res.stderr, res.stderr
    summary = [ln for ln in res.stderr.splitlines() if ln.startswith("run ")][-1]
    assert " failed" in summary
    rec = record(project, run_id_of(res.stdout))
    assert rec["status"] == "failed"
    assert rec["error"] and "\n" not in str(rec["error"])
    assert wait_no_containers(project.root) == []
    return rec


def test_unknown_base_image_on_prepare(dproject: Project) -> None:
    dproject.write("aml_config/bad.compute", 'type: docker\nbaseDockerImage: "labdeck/nope:1"\n')
    res = dproject.cli("prepare", "-c", "bad")
    assert res.returncode != 0
    line = one_line_error(res.stderr)
    assert "base image 'labdeck/nope:1' not found on the Docker daemon" in line


def test_unknown_base_image_on_submit(dproject: Project) -> None:
    dproject.write("aml_config/bad.compute", 'type: docker\nbaseDockerImage: "labdeck/nope:1"\n')
    rec = submit_fails(dproject, "bad")
    assert "base image 'labdeck/nope:1' not found" in str(rec["error"])


def test_daemon_not_running(dproject: Project, tmp_path: Path) -> None:
    env = {"DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"}
    res = dproject.cli("prepare", "-c", "docker", env=env)
    line = one_line_error(res.stderr)
    assert "the Docker daemon is not running (no socket at" in line
    assert "systemctl start docker" in line


def test_daemon_refuses_connection_fails_the_run(dproject: Project) -> None:
    rec = submit_fails(dproject, "docker", env={"DOCKER_HOST": "tcp://127.0.0.1:1"})
    assert "not running at tcp://127.0.0.1:1 (connection refused)" in str(rec["error"])


@pytest.fixture
def closed_socket(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "docker.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen()
    path.chmod(0)
    try:
        yield path
    finally:
        server.close()


def test_daemon_not_permitted(dproject: Project, closed_socket: Path) -> None:
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is needed to drop CAP_DAC_OVERRIDE")
    from tests.conftest import cli_argv, cli_env

    argv = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *cli_argv(
        "prepare", "-c", "docker")]
    proc = subprocess.run(argv, cwd=dproject.root, capture_output=True, text=True, timeout=60,
                          env=cli_env({"DOCKER_HOST": f"unix://{closed_socket}"}))
    line = one_line_error(proc.stderr)
    assert "permission denied on the Docker socket" in line and "'docker' group" in line


def test_dependency_that_does_not_exist(dproject: Project, tmp_path: Path) -> None:
    make_wheel(tmp_path / "wheels")
    dproject.write("aml_config/conda_dependencies.yml", """
        dependencies:
          - pip:
            - labdeck-no-such-package-xyz
    """)
    res = dproject.cli("prepare", "-c", "docker", "--offline", timeout=120,
                       env={"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(tmp_path / "wheels")})
    line = one_line_error(res.stderr)
    assert "pip download failed" in line and "labdeck-no-such-package-xyz" in line
    assert docker("images", "-q", "--filter",
                  f"label=org.labdeck.project={dproject.root}").stdout.split() == []


def test_failed_build_step_names_command_and_marks_nothing_prepared(dproject: Project) -> None:
    dproject.write("aml_config/conda_dependencies.yml", """
        dependencies:
          - pip:
            - labdecktiny
    """)
    # The build's pip asks an index on the build container's own loopback: refused at once.
    env = {"PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_RETRIES": "0",
           "PIP_DEFAULT_TIMEOUT": "2"}
    res = dproject.cli("prepare", "-c", "docker", env=env, timeout=180)
    line = one_line_error(res.stderr)
    assert "image build failed at 'RUN python3 -m pip install" in line
    assert "(exit code 1)" in line and "labdecktiny" in line
    assert "No matching distribution" in res.stderr  # the step's output was shown live
    assert docker("images", "-q", "--filter",
                  f"label=org.labdeck.project={dproject.root}").stdout.split() == []
    # ... so a submit with PrepareEnvironment: false refuses to run unprepared
    dproject.write("aml_config/docker.runconfig",
                   "Target: docker\nFramework: Python\nPrepareEnvironment: false\n")
    rec = submit_fails(dproject, "docker")
    assert "is not prepared: run 'labdeck prepare -c docker'" in str(rec["error"])


def test_conda_package_not_on_pypi_names_itself(dproject: Project) -> None:
    """An image without conda installs the conda section with pip; a package pip cannot find
    (a conda-only library) is named in one line."""
    dproject.write("aml_config/conda_dependencies.yml", """
        dependencies:
          - python=3.11
          - libgfortran
    """)
    res = dproject.cli("prepare", "-c", "docker", timeout=120)
    line = one_line_error(res.stderr)
    assert "libgfortran" in line and "No matching distribution" in line, line
    assert wait_no_containers(dproject.root) == []


def test_container_that_exits_at_once(dproject: Project) -> None:
    dproject.write("boom.py", "raise SystemExit('boom: bad input')\n")
    rec = submit_fails(dproject, "docker", "boom.py")
    assert rec["exit_code"] == 1 and rec["error"] == "exit code 1"
    log = (dproject.root / ".labdeck" / "runs" / str(rec["id"]) / "log").read_text()
    assert " err boom: bad input" in log


@pytest.fixture
def no_python_image(dproject: Project, tmp_path: Path) -> Iterator[str]:
    tag = f"labdeck-test/nopython:{os.getpid()}"
    empty = tmp_path / "rootfs"
    (empty / "etc").mkdir(parents=True)
    (empty / "etc" / "hostname").write_text("x\n")
    tar = subprocess.run(["tar", "-C", str(empty), "-cf", "-", "."], capture_output=True,
                         check=True).stdout
    subprocess.run(["docker", "import", "-c", f"LABEL org.labdeck.project={dproject.root}",
                    "-", tag], input=tar, capture_output=True, check=True)
    try:
        yield tag
    finally:
        docker("rmi", "-f", tag, check=False)


def test_image_without_python_cannot_start(dproject: Project, no_python_image: str) -> None:
    dproject.write("aml_config/np.compute", f'type: docker\nbaseDockerImage: "{no_python_image}"\n')
    rec = submit_fails(dproject, "np")
    assert rec["error"] == "exit code 127"  # docker-init could not exec python3
    log = (dproject.root / ".labdeck" / "runs" / str(rec["id"]) / "log").read_text()
    assert "exec python3 failed: No such file or directory" in log


def test_gpu_request_on_a_daemon_without_nvidia_runtime(dproject: Project) -> None:
    dproject.write("aml_config/gpu.compute",
                   'type: docker\nbaseDockerImage: "labdeck/python-base:bookworm"\n'
                   "nvidiaDocker: true\n")
    rec = submit_fails(dproject, "gpu")
    assert rec["error"] == NO_RUNTIME


def test_reattach_to_a_container_removed_meanwhile(dproject: Project) -> None:
    dproject.write("sleepy.py", "import time\nprint('up', flush=True)\ntime.sleep(60)\n")
    run_id = run_id_of(dproject.cli("submit", "-a", "-c", "docker", "sleepy.py",
                                    check=True).stdout)
    deadline = time.monotonic() + 30
    while not labelled("org.labdeck.run", run_id) or record(dproject, run_id)["status"] != \
            "running":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    db = sqlite3.connect(dproject.root / ".labdeck" / "runs.db")
    pid = db.execute("select supervisor_pid from runs where id=?", (run_id,)).fetchone()[0]
    db.close()
    os.kill(pid, signal.SIGKILL)
    docker("rm", "-f", *labelled("org.labdeck.run", run_id))
    res = dproject.cli("runs", "logs", run_id, "-f", timeout=60)
    assert "is gone" in res.stderr
    rec = record(dproject, run_id)
    assert rec["status"] == "failed"
    assert "removed outside labdeck" in str(rec["error"])
