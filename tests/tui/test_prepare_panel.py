"""Issue 11 item 12: prepare from the dashboard streams its build log into the Prepare tab under
a progress line (step N/M of a Docker build), and x cancels it. A real Docker build (offline
wheels made on the spot, as tests/docker/test_docker_prepare.py does)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Log, TabbedContent

from backends.base import PrepareOptions
from backends.engine import Engine
from backends.project import Project
from backends.ssh.sync import sync_progress_line
from tests.conftest import need
from tests.docker.conftest import BASE_IMAGE, daemon_ok, docker, remove_labelled
from tests.docker.wheels import make_wheel
from tui.app import LabdeckApp
from tui.messages import EnvironmentPrepared
from tui.widgets.prepare_panel import PrepareProgress, progress_text

from .helpers import of_type, settle, until

SIZE = (120, 40)


def test_progress_line() -> None:
    assert progress_text((3, 7, "RUN pip install x"), 12.4, "ignored") == \
        "step 3/7 · 12s · RUN pip install x"
    assert progress_text(None, 5.0, "Collecting numpy") == "5s · Collecting numpy"
    assert progress_text(None, 5.0, "x" * 100).endswith("…")
    assert progress_text((1, 2, "FROM x"), 3.0, "", "sync 2/5 files, 4.0/10.0 MB") == \
        "sync 2/5 files, 4.0/10.0 MB · 3s"


async def test_p_opens_the_prepare_tab_with_the_outcome(engine: Engine) -> None:
    messages: list[Any] = []
    app = LabdeckApp(engine, poll=False)
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        await settle(pilot)
        await pilot.press("p")
        await until(pilot, lambda: bool(of_type(messages, EnvironmentPrepared)), "prepared")
        await until(pilot, lambda: app.prepare_panel is not None
                    and not app.prepare_panel.running, "the panel says it ended")
        assert app.query_one(TabbedContent).active == "tab-prepare"
        panel = app.prepare_panel
        assert panel is not None
        assert panel.status_text().startswith("local: ✓ cached in")
        await pilot.press("p")  # again: the same tab, a new prepare
        await until(pilot, lambda: len(of_type(messages, EnvironmentPrepared)) == 2, "again")
        await until(pilot, lambda: not panel.running, "the second ended")
        # a remote target's prepare: its sync progress lines make the progress line
        panel.begin("rig")
        panel.add_line(sync_progress_line(2, 5, 4 << 20, 10 << 20))
        assert panel.status_text().startswith("rig: sync 2/5 files, 4.0/10.0 MB · ")


# Above the 300 s guard of the waits on a build (a loaded machine builds slowly), so that a
# guard says what never happened rather than pytest-timeout's stack dump.
BUILD_TIMEOUT_S = 420


@pytest.fixture
def offline_docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    need(daemon_ok(), "docker daemon not reachable")
    need(docker("image", "inspect", BASE_IMAGE, check=False).returncode == 0,
         f"{BASE_IMAGE} missing (scripts/build-base-image.sh)")
    root = tmp_path / "dproj"
    (root / "aml_config").mkdir(parents=True)
    (root / "aml_config" / "docker.compute").write_text(
        f'type: docker\nbaseDockerImage: "{BASE_IMAGE}"\n')
    (root / "aml_config" / "conda_dependencies.yml").write_text(textwrap.dedent("""
        name: env
        dependencies:
          - python=3.11
          - pip
          - pip:
            - labdecktiny
    """))
    wheels = tmp_path / "wheels"
    make_wheel(wheels)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    project = Project(root)
    project.ensure_state()
    try:
        yield project
    finally:
        remove_labelled(root)


@pytest.mark.docker
@pytest.mark.timeout(BUILD_TIMEOUT_S)
async def test_a_docker_build_streams_its_steps_into_the_panel(offline_docker: Project) -> None:
    engine = Engine(offline_docker)
    statuses: list[str] = []
    app = LabdeckApp(engine, target="docker", poll=False)

    def seen(message: Any) -> None:
        if isinstance(message, PrepareProgress) and app.prepare_panel is not None:
            statuses.append(app.prepare_panel.status_text())

    try:
        async with app.run_test(size=SIZE, message_hook=seen) as pilot:
            await settle(pilot)
            await app.start_prepare("docker", PrepareOptions(offline=True))
            panel = app.prepare_panel
            assert panel is not None
            await until(pilot, lambda: not panel.running, "the build ended", guard=300)
            assert panel.status_text().startswith("docker: ✓ built in"), panel.status_text()
            assert panel.step is not None and panel.step[0] == panel.step[1]  # the last step
            assert any(" · step " in s or ": step " in s for s in statuses), statuses[-5:]
            assert any("Successfully built" in line for line in panel.query_one(Log).lines)
    finally:
        engine.close()


@pytest.mark.docker
@pytest.mark.timeout(BUILD_TIMEOUT_S)
async def test_x_cancels_a_docker_build(offline_docker: Project) -> None:
    engine = Engine(offline_docker)
    app = LabdeckApp(engine, target="docker", poll=False)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await app.start_prepare("docker", PrepareOptions(offline=True))
            panel = app.prepare_panel
            assert panel is not None
            # or the prepare's end: one that fails at once says why here, not after the guard
            await until(pilot, lambda: panel.step is not None or not panel.running,
                        "the build's first step", guard=300)
            assert panel.step is not None, panel.status_text()
            assert app.focused is not None and panel in app.focused.ancestors
            await pilot.press("x")
            await until(pilot, lambda: not panel.running, "the prepare ended", guard=120)
            assert panel.status_text().startswith("docker: ✗ canceled after"), \
                panel.status_text()
            assert not [w for w in app.workers if w.group == "prepare" and not w.is_finished]
            assert any("canceled" in n.message for n in app.notices)
    finally:
        engine.close()
