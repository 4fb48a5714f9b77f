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

from ..render import duration, metric_value
from ..widgets.chart import sparkline


def compare_rows(records: list[RunRecord]) -> list[list[Any]]:
    names: list[str] = []
    for rec in records:
        names += [n for n in rec.metrics if n not in names]
    rows: list[list[Any]] = [
        ["status", *[r.status.value for r in records]],
        ["script", *[r.script or "-" for r in records]],
        ["target", *[r.target for r in records]],
        ["args", *[" ".join(r.args) or "-" for r in records]],
        ["duration", *[duration(r.duration) for r in records]],
    ]
    for name in names:
        cells: list[Any] = [Text(name, style="bold")]
        for rec in records:
            value = rec.metrics.get(name)
            if value is None:
                cells.append("-")
            elif isinstance(value, list):
                cells.append(f"{sparkline(value, 12)} {metric_value(value[-1]) if value else ''}")
            else:
                cells.append(metric_value(value))
        rows.append(cells)
    return rows


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
            table: DataTable[Any] = DataTable(cursor_type="row", zebra_stripes=True)
            yield table

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_column("")
        for rec in self.records:
            table.add_column(rec.id.rsplit("_", 1)[-1], key=rec.id)
        table.add_rows(compare_rows(self.records))
        table.focus()
