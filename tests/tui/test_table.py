"""FittedTable: a row painted between a size change and its Resize event fills the new width
(DataTable reused the row cached for the old width: snapshots differed from run to run)."""

from __future__ import annotations

from unittest.mock import PropertyMock, patch

from textual.app import App, ComposeResult
from textual.geometry import Size
from textual.widgets import DataTable

from tui.widgets.table import FittedTable


class OneTable(App[None]):
    def __init__(self, kind: type[DataTable[object]]) -> None:
        super().__init__()
        self.kind = kind

    def compose(self) -> ComposeResult:
        yield self.kind(cursor_type="row")


async def cursor_row_after_widening(kind: type[DataTable[object]]) -> set[object]:
    app = OneTable(kind)
    async with app.run_test(size=(60, 8)) as pilot:
        table = app.query_one(DataTable)
        table.add_column("name", key="name")
        table.add_row("a row", key="a")
        await pilot.pause()
        table.render_line(1)  # the cursor row, cached for 60 columns
        # The layout widens the table; its Resize event is still in the queue when it paints.
        wider = Size(80, table.size.height)
        with patch.object(kind, "size", new_callable=PropertyMock, return_value=wider):
            strip = table.render_line(1)
        assert strip.cell_length == 80
        return {seg.style.bgcolor for seg in strip if seg.style is not None}


async def test_a_row_painted_before_its_resize_event_fills_the_new_width() -> None:
    backgrounds = await cursor_row_after_widening(FittedTable)
    assert len(backgrounds) == 1, f"the cursor row has two backgrounds: {backgrounds}"
