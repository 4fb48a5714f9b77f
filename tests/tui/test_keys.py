"""Keys you can see: the footer shows the focused panel's keys plus q and F1, F1 prints key
names as on the keyboard (with Enter and Tab), g/G go to the ends of lists, and every message
stays readable in the notifications screen."""

from __future__ import annotations

import pytest

from backends.engine import Engine
from tui.app import LabdeckApp
from tui.screens.help import HelpScreen, binding_rows
from tui.screens.notifications import NotificationsScreen
from tui.widgets.log_view import LogView
from tui.widgets.targets import TargetsPanel

from .helpers import settle


def footer(app: LabdeckApp) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())\
        .splitlines()[-1]


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
async def test_the_footer_shows_the_focused_panels_keys(engine: Engine,
                                                        size: tuple[int, int]) -> None:
    app = LabdeckApp(engine, poll=False)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        expected = {
            "runs": ("Enter Log", "space Mark", "/ Filter", "o Sort", "m Compare"),
            "log": ("/ Search", "f Follow", "g Top", "G End"),
            "targets": ("p Prepare",),
        }
        for panel, focus in (("runs", app.runs_panel.table), ("log", app.query_one(LogView)),
                             ("targets", app.query_one(TargetsPanel))):
            focus.focus()
            await settle(pilot)
            line = footer(app)
            for shown in (*expected[panel], "q Quit", "F1 Help"):
                assert shown in line, (panel, shown, line)
            assert "slash" not in line


def test_help_prints_keys_as_on_the_keyboard() -> None:
    rows = binding_rows({})
    keys = {row[1] for row in rows}
    assert "/" in keys and "&" in keys and "F1" in keys and "Enter" in keys
    assert any("Tab" in k for k in keys)
    assert not {"slash", "ampersand", "f1", "enter"} & keys


async def test_help_screen_lists_enter_and_tab(engine: Engine) -> None:
    app = LabdeckApp(engine, poll=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("f1")
        await settle(pilot)
        assert isinstance(app.screen, HelpScreen)


async def test_g_and_G_go_to_the_ends_of_the_runs(engine: Engine) -> None:
    app = LabdeckApp(engine, poll=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("G")
        await settle(pilot)
        assert app.runs_panel.selected_id is not None
        assert app.runs_panel.selected_id.endswith("1001")
        await pilot.press("g")
        await settle(pilot)
        assert app.runs_panel.selected_id.endswith("1003")


async def test_every_message_stays_readable(engine: Engine) -> None:
    app = LabdeckApp(engine, poll=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("c")  # the run is finished: a warning
        await settle(pilot)
        app.clear_notifications()  # gone from the screen, as after its timeout
        await pilot.press("e")
        await settle(pilot)
        assert isinstance(app.screen, NotificationsScreen)
        text = "\n".join(strip.text for strip in app.screen._compositor.render_strips())
        assert "already completed" in text
