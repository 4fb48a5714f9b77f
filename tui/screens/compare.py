"""Runs side by side (the marked ones, any number): status, arguments, duration and every
metric; ``o`` orders them by the next metric, best first (lowest for a loss)."""

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
from ..widgets.runs import lower_is_better, sort_value
from ..widgets.table import FittedTable


def _metric_cell(value: Any) -> str:
    if isinstance(value, list):  # a series: its shape and its last value
        return f"{sparkline(value, 12)} {metric_value(value[-1]) if value else ''}"
    return metric_value(value)


def compare_rows(records: list[RunRecord]) -> list[list[Any]]:
    return render_rows(records, _metric_cell, lambda name: Text(name, style="bold"))


def last_value(record: RunRecord, name: str) -> float | None:
    value = record.metrics.get(name)
    if isinstance(value, list):
        value = value[-1] if value else None
    return None if value is None else sort_value(value)


def by_metric(records: list[RunRecord], name: str) -> list[RunRecord]:
    """Best first; runs without the metric (or not a number) last, in their order."""
    sign = 1.0 if lower_is_better(name) else -1.0
    numbered = [(last_value(r, name), i, r) for i, r in enumerate(records)]
    return [r for v, i, r in sorted(numbered, key=lambda t: (t[0] is None,
                                                              sign * (t[0] or 0.0), t[1]))]


class CompareScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,q,m", "dismiss", "Close", id="compare.close"),
        Binding("o", "sort", "Sort by metric", id="compare.sort"),
    ]
    DEFAULT_CSS = """
    CompareScreen { align: center middle; }
    CompareScreen > Vertical {
        width: auto; min-width: 50; max-width: 100%; height: auto; max-height: 100%;
        border: thick $accent; background: $surface; padding: 0 1;
    }
    CompareScreen DataTable { height: auto; max-height: 30; }
    """

    def __init__(self, records: list[RunRecord], sort_metric: str | None = None):
        super().__init__()
        self.records = records
        names: list[str] = []
        for rec in records:
            names += [n for n in rec.metrics if n not in names]
        self.metric_names = names
        self.sort_metric = sort_metric if sort_metric in names else (names[0] if names
                                                                      else None)

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("", id="compare-title")
            table: DataTable[Any] = FittedTable(cursor_type="row", zebra_stripes=True)
            yield table

    def on_mount(self) -> None:
        self.redraw()
        self.query_one(DataTable).focus()

    def ordered(self) -> list[RunRecord]:
        if self.sort_metric is None:
            return list(self.records)
        return by_metric(self.records, self.sort_metric)

    def redraw(self) -> None:
        table = self.query_one(DataTable)
        table.clear(columns=True)
        table.add_column("")
        records = self.ordered()
        for rec in records:
            table.add_column(rec.id.rsplit("_", 1)[-1], key=rec.id)
        table.add_rows(compare_rows(records))
        order = (f"by {self.sort_metric}, best first (o: next metric)" if self.sort_metric
                 else "as marked")
        self.query_one("#compare-title", Label).update(
            f"[b]Compare {len(records)} runs[/b] {order} · esc closes")

    def action_sort(self) -> None:
        if not self.metric_names:
            return
        at = (self.metric_names.index(self.sort_metric)
              if self.sort_metric in self.metric_names else -1)
        self.sort_metric = self.metric_names[(at + 1) % len(self.metric_names)]
        self.redraw()
