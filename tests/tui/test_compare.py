"""Compare any number of marked runs, ordered by a chosen metric, best first."""

from __future__ import annotations

from textual.widgets import DataTable

from backends.engine import Engine
from tui.app import LabdeckApp
from tui.screens.compare import CompareScreen

from .helpers import settle


def run_columns(screen: CompareScreen) -> list[str]:
    table = screen.query_one(DataTable)
    return [str(c.label) for c in table.columns.values()][1:]


async def test_three_marked_runs_sorted_by_a_metric(engine: Engine) -> None:
    app = LabdeckApp(engine, poll=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("space", "down", "space", "down", "space", "m")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        assert len(screen.records) == 3
        assert screen.sort_metric == "accuracy"
        assert run_columns(screen) == ["1003", "1001", "1002"]  # 0.9, 0.8123, 0.5
        await pilot.press("o")  # loss: lowest first; 1002 logged none: last
        await settle(pilot)
        assert screen.sort_metric == "loss"
        assert run_columns(screen) == ["1003", "1001", "1002"]
        text = "\n".join(s.text for s in app.screen._compositor.render_strips())
        assert "Compare 3 runs" in text and "by loss, best first" in text
