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


def header(app: LabdeckApp) -> list[str]:
    """The metric columns' headers (after the fixed ones; the failed runs' error last)."""
    return [str(c.label) for c in app.runs_panel.table.columns.values()][5:-1]


def order(app: LabdeckApp) -> list[str]:
    return [r.id.rsplit("_", 1)[1] for r in app.runs_panel.shown_records()]


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
async def test_metrics_are_columns_visible_and_sortable(engine: Engine,
                                                        size: tuple[int, int]) -> None:
    app = LabdeckApp(engine, poll=False)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        assert header(app)[-2:] == ["accuracy", "loss"]
        table = app.runs_panel.table
        assert table.virtual_size.width <= table.size.width, "every column on screen"
        text = screen_text(app)
        assert "accuracy" in text and "0.8123" in text and "0.25" in text
        while not app.runs_panel.sort_key.endswith("accuracy"):
            await pilot.press("o")
        await settle(pilot)
        assert order(app) == ["1003", "1001", "1002"]  # highest first
        assert "sort: accuracy, best first" in screen_text(app)
        assert "accuracy ▼" in header(app)
        await pilot.press("o")  # loss: lowest first, the run without it last
        await settle(pilot)
        assert order(app) == ["1003", "1001", "1002"] and "loss ▲" in header(app)


async def test_the_chosen_columns_and_sort_are_kept_per_project(engine: Engine) -> None:
    app = LabdeckApp(engine, poll=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("k")
        await settle(pilot)
        await pilot.press("down", "space", "enter")  # untick loss
        await settle(pilot)
        assert header(app)[-1] == "accuracy" and "loss" not in header(app)
        while not app.runs_panel.sort_key.endswith("accuracy"):
            await pilot.press("o")
        await settle(pilot)
    again = LabdeckApp(engine, poll=False)
    async with again.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert header(again)[-1] == "accuracy ▼" and "loss" not in header(again)
        assert order(again) == ["1003", "1001", "1002"]


async def test_at_80x24_the_runs_get_the_rows_and_targets_one_line(engine: Engine) -> None:
    app = LabdeckApp(engine, poll=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        targets = app.query_one("#targets")
        assert targets.outer_size.height == 1
        assert "Targets · local ● ready" in screen_text(app)
        assert app.runs_panel.table.size.height >= 9
        targets.focus()
        await settle(pilot)
        assert targets.outer_size.height > 1, "focused: the whole panel"
