"""The Targets panel: aml_config/ watched (a fixed or new target appears without a restart), a
config error readable in full at 80 columns, a GPU target its daemon would refuse not 'ready'."""

from __future__ import annotations

from typing import Any

from backends.base import TargetInfo
from backends.engine import Engine
from backends.gpu import NO_RUNTIME
from tui.app import LabdeckApp
from tui.messages import TargetSelected
from tui.widgets.targets import TargetsPanel

from .helpers import settle, until


def row_texts(panel: TargetsPanel, name: str) -> list[str]:
    return [str(cell) for cell in panel.get_row(name)]


async def test_a_fixed_or_new_config_appears_without_a_restart(engine: Engine,
                                                                deck_project: Any) -> None:
    broken = deck_project.root / "aml_config" / "later.compute"
    broken.write_text("type: [unclosed\n")
    app = LabdeckApp(engine, poll=False)
    async with app.run_test(size=(80, 24)) as pilot:
        panel = app.query_one(TargetsPanel)
        panel.watch_config = True
        panel.on_mount()  # as with poll=True, without the other timers
        await until(pilot, lambda: "later" in panel.names, "the broken target listed")
        assert row_texts(panel, "later")[2] == "✗ config"
        broken.write_text('type: "local"\n')
        await until(pilot, lambda: row_texts(panel, "later")[1] == "local", "the fixed file read")
        (deck_project.root / "aml_config" / "fresh.compute").write_text('type: "local"\n')
        await until(pilot, lambda: "fresh" in panel.names, "the new target listed")
        await until(pilot, lambda: row_texts(panel, "fresh")[2] == "● ready", "described")


async def test_a_config_error_is_whole_and_fits_the_width(engine: Engine,
                                                          deck_project: Any) -> None:
    (deck_project.root / "aml_config" / "bad.compute").write_text("type: [unclosed\n")
    app = LabdeckApp(engine, poll=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        panel = app.query_one(TargetsPanel)
        assert "bad ✗ config" in str(panel.border_title)  # collapsed: its title line
        panel.focus()
        await settle(pilot)
        state, detail = row_texts(panel, "bad")[2:]
        assert state == "✗ config"
        assert "bad.compute:" in detail and "invalid YAML" in detail
        assert panel.virtual_size.width <= panel.size.width, "no horizontal scrolling"
        screen = "\n".join(s.text for s in app.screen._compositor.render_strips())
        assert "✗ config" in screen
        assert "did not find expected" in screen  # the end of the error, on screen


async def test_a_gpu_target_its_daemon_refuses_is_not_ready(engine: Engine) -> None:
    app = LabdeckApp(engine, poll=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        panel = app.query_one(TargetsPanel)
        # What the docker backend's describe returns for gpus: on a daemon without the runtime.
        refused = TargetInfo(True, "docker 27.0 (API 1.46) at unix:///run/docker.sock; "
                             "runtimes: runc", [], f"none (nvidia-smi not found); {NO_RUNTIME}")
        panel.show_info("local", refused)
        await pilot.pause()
        state, detail = row_texts(panel, "local")[2:]
        assert state == "✗ no GPU"
        assert NO_RUNTIME in detail
        panel.show_info("local", TargetInfo(True, "this machine", [], "none"))
        await pilot.pause()
        assert row_texts(panel, "local")[2] == "● ready"


async def test_the_dashboard_opens_on_the_target_asked_for(engine: Engine,
                                                           deck_project: Any) -> None:
    """`labdeck ui -c local` with a target listed before it: the submit dialog's target stays
    local. Before, the first rows' cursor (row 0) chose "alpha", and each redraw (a target
    described) announced "alpha" then the selected target again: a submit between the two went
    to the wrong target (the e2e test's run went to docker under load)."""
    (deck_project.root / "aml_config" / "alpha.compute").write_text('type: "local"\n')
    chosen: list[str] = []
    app = LabdeckApp(engine, target="local", poll=False)
    async with app.run_test(size=(120, 40), message_hook=lambda m: chosen.append(m.name)
                            if isinstance(m, TargetSelected) else None) as pilot:
        await settle(pilot)
        panel = app.query_one(TargetsPanel)
        assert panel.names == ["alpha", "local"]
        assert panel.selected_name == "local" and app.target == "local"
        panel.show_info("alpha", TargetInfo(False, "down now"))  # its detail changed: redrawn
        await settle(pilot)
        assert app.target == "local"
        assert "alpha" not in chosen
        panel.focus()
        await pilot.press("up")  # the user's choice is announced
        await until(pilot, lambda: app.target == "alpha", "alpha chosen")
