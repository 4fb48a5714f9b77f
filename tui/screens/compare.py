"""Two (or more) runs side by side: status, arguments, duration and every metric."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label

from backends.store import RunRecord

from ..render import compare_rows as render_rows
from ..render import metric_value
from ..widgets.chart import sparkline
from ..widgets.table import FittedTable


def _metric_cell(value: Any) -> str:
    if isinstance(value, list):  # a series: its shape and its last value
        return f"{sparkline(value, 12)} {metric_value(value[-1]) if value else ''}"
    return metric_value(value)


def compare_rows(records: list[RunRecord]) -> list[list[Any]]:
    return render_rows(records, _metric_cell, lambda name: Text(name, style="bold"))


class CompareScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,m", "dismiss", "Close", id="compare.close")]
    DEFAULT_CSS = """
    CompareScreen { align: center middle; }
    CompareScreen > Vertical {
        width: auto; min-width: 50; max-width: 100%; height: auto; max-height: 100%;
        border: thick $accent; background: $surface; padding: 0 1;
    }
    CompareScreen DataTable { height: auto; max-height: 30; }
    """

    def __init__(self, records: list[RunRecord]):
        super().__init__()
        self.records = records

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("[b]Compare runs[/b] (esc closes)")
            table: DataTable[Any] = FittedTable(cursor_type="row", zebra_stripes=True)
            yield table

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_column("")
        for rec in self.records:
            table.add_column(rec.id.rsplit("_", 1)[-1], key=rec.id)
        table.add_rows(compare_rows(self.records))
        table.focus()
