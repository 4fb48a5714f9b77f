"""What every layout shows: the runs' sort and filter at 80 columns as at 120."""

from __future__ import annotations

import pytest

from backends.engine import Engine
from tui.app import LabdeckApp

from .helpers import settle


def screen_text(app: LabdeckApp) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
async def test_sort_and_filter_show_in_every_layout(engine: Engine,
                                                    size: tuple[int, int]) -> None:
    app = LabdeckApp(engine, poll=False)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        assert "sort: created" in screen_text(app)
        await pilot.press("o")
        await settle(pilot)
        assert "sort: status" in screen_text(app)
        await pilot.press("slash", "h", "e", "l", "enter")
        await settle(pilot)
        text = screen_text(app)
        assert "filter 'hel'" in text and "1/3 runs" in text
