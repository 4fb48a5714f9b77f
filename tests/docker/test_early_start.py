"""The docker run's early start (backends/docker/early.py, prestart.py) against the real daemon:
the container is created and started before the supervisor loads asyncio, the event loop takes
it up, a run canceled in between leaves nothing behind, and a supervisor that dies before it
recorded the container's id is replaced by one that finds the run by its label. Each case runs
in a fresh interpreter, so that "asyncio is not loaded yet" is a fact, not an assumption."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import pytest

from tests.conftest import REPO, Project, cli_env
from tests.docker.conftest import labelled, record

# Records a run the way Engine.submit does, then plays the early-forked supervisor's part.
DRIVER = textwrap.dedent("""
    import json, os, select, shutil, sys
    from pathlib import Path
    from backends import prestart
    from backends.docker.client import docker_url
    from backends.docker.plan import ContainerPlan, container_name
    from backends.docker.sync import SyncDockerAPI
    from backends.project import Project
    from backends.runspec import RunSpec
    from backends.store import RunStore

    root, target, action = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    os.chdir(root)
    warmed = prestart.warm(target) if action == "warm" else None  # as the CLI's fork does
    project = Project(root)
    store = RunStore(project.db_path)
    run = store.create(project.name, target, "docker", runconfig=target, script="hello.py",
                       args=[], env={})
    run_dir = project.run_dir(run.id)
    (run_dir / "snapshot").mkdir(parents=True)
    shutil.copy(root / "hello.py", run_dir / "snapshot" / "hello.py")
    RunSpec(run.id, target, ["hello.py"], {"LABDECK_RUN_ID": run.id}, str(run_dir / "snapshot"),
            snapshot=True).save(run_dir)
    if action == "die-created":  # a supervisor that created the container, then died
        ctx = prestart.run_context(project, run.id)
        plan = ContainerPlan(ctx.compute, docker_url())
        plan.prepare_folders(ctx)
        SyncDockerAPI(plan.url).create(plan.config(ctx, plan.env_spec(ctx).base),
                                       name=container_name(run.id))
        ctx = None
    elif action.startswith("die-none"):  # a supervisor that died before doing anything
        ctx = None
    else:
        ctx = prestart.begin(project, run.id)
    report = {"run_id": run.id, "asyncio_loaded": "asyncio" in sys.modules, "warmed": warmed,
              "early": type(ctx.early).__name__ if ctx is not None else None}
    if action == "cancel" or action.endswith("-canceled"):
        store.request_cancel(run.id)
    if action.startswith("die"):  # ... before recording the container's id
        if action == "die-started":
            select.select([ctx.early.start_socket], [], [])  # the daemon has started it
        gone = os.fork()
        if gone == 0:
            os._exit(0)
        os.waitpid(gone, 0)
        store.update(run.id, supervisor_pid=gone)  # the pid of a supervisor that is no more
        print(json.dumps(report))
        sys.exit(0)
    store.close()
    from backends import supervisor
    report["code"] = supervisor.main([str(root), run.id], early=ctx)
    print(json.dumps(report))
""")

HELLO = "print('hello from the container')\n"


def drive(project: Project, target: str, action: str = "run") -> dict[str, object]:
    res = subprocess.run([sys.executable, "-c", DRIVER, str(project.root), target, action],
                         capture_output=True, text=True, cwd=REPO, env=cli_env(), timeout=120)
    assert res.returncode == 0, res.stderr
    report: dict[str, object] = json.loads(res.stdout.strip().splitlines()[-1])
    return report


@pytest.mark.docker
def test_container_is_started_before_asyncio_and_the_run_completes(dproject: Project) -> None:
    dproject.write("hello.py", HELLO)
    report = drive(dproject, "docker")
    assert report["early"] == "EarlyStart"
    assert report["asyncio_loaded"] is False
    run_id = str(report["run_id"])
    data = record(dproject, run_id)
    assert data["status"] == "completed" and data["exit_code"] == 0
    logs = dproject.cli("runs", "logs", run_id, check=True).stdout
    assert "hello from the container" in logs
    assert labelled("org.labdeck.run", run_id) == []


@pytest.mark.docker
def test_readied_before_the_run_arrives(dproject: Project) -> None:
    """prestart.warm (the CLI names the target when it forks): the daemon connection and the
    image are ready before the run is recorded; the run then starts from them."""
    dproject.write("hello.py", HELLO)
    report = drive(dproject, "docker", "warm")
    assert report["warmed"] is True
    assert report["early"] == "EarlyStart" and report["asyncio_loaded"] is False
    run_id = str(report["run_id"])
    assert record(dproject, run_id)["status"] == "completed"
    assert "hello from the container" in dproject.cli("runs", "logs", run_id, check=True).stdout
    assert labelled("org.labdeck.run", run_id) == []


@pytest.mark.docker
def test_cancel_between_early_start_and_event_loop_removes_the_container(
        dproject: Project) -> None:
    dproject.write("hello.py", "import time\ntime.sleep(60)\n")
    report = drive(dproject, "docker", "cancel")
    assert report["early"] == "EarlyStart"
    run_id = str(report["run_id"])
    data = record(dproject, run_id)
    assert data["status"] == "canceled"
    assert labelled("org.labdeck.run", run_id) == []


@pytest.mark.docker
def test_nothing_begun_early_when_the_environment_needs_a_build(dproject: Project) -> None:
    dproject.write("hello.py", HELLO)
    dproject.write("aml_config/deps.compute", """
        type: docker
        baseDockerImage: "labdeck/python-base:bookworm"
    """)
    dproject.write("aml_config/deps.runconfig", """
        Target: deps
        CondaDependenciesFile: aml_config/deps_conda.yml
    """)
    dproject.write("aml_config/deps_conda.yml", """
        dependencies:
          - python=3.11
          - pip:
            - labdeck-no-such-package-xyz==1.0
    """)
    report = drive(dproject, "deps", "warm")
    assert report["warmed"] is False and report["early"] is None  # the usual path reports it
    data = record(dproject, str(report["run_id"]))
    assert data["status"] == "failed"
    # PrepareEnvironment defaults to true (Workbench's default): the usual path tried the build,
    # which names the package it could not find.
    assert "labdeck-no-such-package-xyz" in str(data["error"]), data["error"]
    assert labelled("org.labdeck.run", str(report["run_id"])) == []


@pytest.mark.docker
def test_supervisor_dead_after_start_before_recording_is_reattached_by_label(
        dproject: Project) -> None:
    dproject.write("hello.py", "import time\nfor i in range(5):\n    print('tick', i)\n"
                               "    time.sleep(0.2)\n")
    report = drive(dproject, "docker", "die-started")
    run_id = str(report["run_id"])
    assert len(labelled("org.labdeck.run", run_id)) == 1  # the run goes on without it
    res = dproject.cli("runs", "logs", run_id, "-f", timeout=120)
    assert res.returncode == 0, res.stderr
    assert [ln for ln in res.stdout.splitlines() if ln.startswith("tick")] == [
        f"tick {i}" for i in range(5)]
    assert "by its label" in res.stderr
    assert record(dproject, run_id)["status"] == "completed"
    assert labelled("org.labdeck.run", run_id) == []


@pytest.mark.docker
@pytest.mark.parametrize(("action", "status", "reason"), [
    ("die-created", "failed", "died before its container started; the container was removed"),
    ("die-none", "failed", "has no container: its supervisor died before creating one"),
    ("die-none-canceled", "canceled", "has no container"),  # a cancel is what the user gets
])
def test_supervisor_dead_before_the_container_started_leaves_nothing(
        dproject: Project, action: str, status: str, reason: str) -> None:
    dproject.write("hello.py", HELLO)
    report = drive(dproject, "docker", action)
    run_id = str(report["run_id"])
    data = record(dproject, run_id)  # looking at it reconciles: a new supervisor reattaches
    deadline = time.monotonic() + 30
    while data["status"] not in ("failed", "completed", "canceled") and \
            time.monotonic() < deadline:
        time.sleep(0.2)
        data = record(dproject, run_id)
    assert data["status"] == status
    assert reason in str(data["error"])
    assert labelled("org.labdeck.run", run_id) == []
