"""The Runs panel: every run in the store, live, sortable and filterable.

It re-reads the store when ``data_version`` says another process (a supervisor, the CLI) wrote,
and redraws durations of runs in flight once a second; it keeps no run state of its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Input

from backends.status import RunStatus
from backends.store import RunRecord

from ..keymap import RUNS_BINDINGS
from ..messages import RunSelected
from ..render import duration, metric_value

POLL_S = 0.5
STATUS_STYLES = {
    RunStatus.QUEUED: "dim",
    RunStatus.PREPARING: "magenta",
    RunStatus.RUNNING: "bold cyan",
    RunStatus.COMPLETED: "green",
    RunStatus.FAILED: "bold red",
    RunStatus.CANCELED: "yellow",
}
COLUMNS = ("run", "script", "target", "status", "time", "metrics")
SORTS: dict[str, Callable[[RunRecord], Any]] = {
    "created": lambda r: r.created,
    "status": lambda r: r.status.value,
    "script": lambda r: r.script or "",
    "target": lambda r: r.target,
    "time": lambda r: r.duration or 0.0,
}


def short_id(record: RunRecord) -> str:
    prefix = record.project + "_"
    return record.id[len(prefix):] if record.id.startswith(prefix) else record.id


def metrics_summary(last: dict[str, tuple[Any, bool]], limit: int = 3) -> str:
    """Scalars as name=value, then series as name~last value (``store.last_metrics``)."""
    scalars = [(k, v) for k, (v, series) in last.items() if not series]
    series = [(k, v) for k, (v, series) in last.items() if series]
    parts = [f"{k}={metric_value(v)}" for k, v in scalars[:limit]]
    parts += [f"{k}~{metric_value(v)}" for k, v in series[:limit - len(parts)]]
    return " ".join(parts)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"




class RunsPanel(Vertical):
    BINDINGS: list[Binding] = RUNS_BINDINGS  # type: ignore[assignment]
    DEFAULT_CSS = """
    RunsPanel > Input { display: none; height: 3; }
    RunsPanel > Input.-open { display: block; }
    RunsPanel > DataTable { height: 1fr; }
    """

    def __init__(self, engine: Any, *, poll: bool = True, id: str | None = None):
        super().__init__(id=id)
        self.engine = engine
        self.poll = poll
        self.records: list[RunRecord] = []  # without their metrics: see ``last``
        self.last: dict[str, dict[str, tuple[Any, bool]]] = {}  # run -> metric -> last value
        self.marked: list[str] = []
        self.sort_key = "created"
        self.filter_text = ""
        self._version: int | None = None
        self._shown: list[str] = []
        self._last_tick = 0.0

    def compose(self) -> ComposeResult:
        yield Input(placeholder="filter runs (id, script, target, status, metric)",
                    id="runs-filter")
        table: DataTable[Any] = DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        for col in COLUMNS:
            table.add_column(col, key=col)
        yield table

    @property
    def table(self) -> DataTable[Any]:
        return self.query_one(DataTable)

    def on_mount(self) -> None:
        self.reload()
        if self.poll:
            self.set_interval(POLL_S, self.tick, name="runs-poll")

    # ------------------------------------------------------------------ data

    def reload(self) -> None:
        """Re-read the store and redraw."""
        self._version = self.engine.store.data_version()
        selected = self.selected_id
        before = self._facts(selected)
        self.records = self.engine.runs(with_metrics=False)
        self.last = self.engine.store.last_metrics()
        self.redraw()
        after = self._facts(selected)
        if after is not None and before != after:
            self.post_message(RunSelected(selected))  # the selected run moved on: redraw it

    def _facts(self, run_id: str | None) -> tuple[Any, ...] | None:
        """What the details of a run show that can change; None for no such run."""
        record = self.record(run_id)
        if record is None:
            return None
        return (record.status, record.ended, record.exit_code, record.outputs, record.error,
                self.last.get(record.id))

    def tick(self) -> None:
        version = self.engine.store.data_version()
        if version != self._version:
            self.reload()
        elif any(not r.status.is_terminal() for r in self.records):
            now = time.monotonic()
            if now - self._last_tick >= 1.0:
                self._last_tick = now
                self.reload()  # reconciles runs in flight and moves their durations

    def compare_pair(self) -> tuple[list[str], str]:
        """The runs to compare: the marked ones, else the selected run and the row below it
        (above it on the last row); or a reason why there are none."""
        if len(self.marked) >= 2:
            return list(self.marked), ""
        current = self.selected_id
        if current is None or current not in self._shown:
            return [], "mark two runs with space to compare"
        index = self._shown.index(current)
        if len(self._shown) < 2:
            return [], "only one run: nothing to compare"
        other = self._shown[index + 1] if index + 1 < len(self._shown) else self._shown[index - 1]
        return [current, other], ""

    def record(self, run_id: str | None) -> RunRecord | None:
        return next((r for r in self.records if r.id == run_id), None)

    @property
    def selected_id(self) -> str | None:
        table = self.table
        if not self._shown or table.cursor_row < 0 or table.cursor_row >= len(self._shown):
            return None
        return self._shown[table.cursor_row]

    def select(self, run_id: str) -> None:
        if run_id in self._shown:
            self.table.move_cursor(row=self._shown.index(run_id))

    # ------------------------------------------------------------------ drawing

    def visible(self) -> list[RunRecord]:
        records = list(self.records)
        if self.filter_text:
            needle = self.filter_text.lower()
            records = [r for r in records if needle in self._haystack(r)]
        key = SORTS.get(self.sort_key, SORTS["created"])
        return sorted(records, key=key, reverse=self.sort_key in ("created", "time"))

    def _haystack(self, record: RunRecord) -> str:
        return " ".join([record.id, record.script or "", record.target, record.status.value,
                         " ".join(record.args),
                         metrics_summary(self.last.get(record.id, {}), 99)]).lower()

    def _cells(self, record: RunRecord) -> list[Any]:
        mark = "● " if record.id in self.marked else ""
        watch = "⟳ " if record.trigger else ""
        return [
            mark + short_id(record),
            watch + _clip(record.script or "-", 24),
            record.target,
            Text(record.status.value, style=STATUS_STYLES.get(record.status, "")),
            duration(record.duration),
            metrics_summary(self.last.get(record.id, {})),
        ]

    def redraw(self) -> None:
        table = self.table
        selected = self.selected_id
        records = self.visible()
        ids = [r.id for r in records]
        if ids == self._shown:
            for record in records:
                for col, value in zip(COLUMNS, self._cells(record), strict=True):
                    if str(table.get_cell(record.id, col)) != str(value):
                        table.update_cell(record.id, col, value, update_width=True)
        else:
            table.clear()
            for record in records:
                table.add_row(*self._cells(record), key=record.id)
            self._shown = ids
            if selected in ids:
                table.move_cursor(row=ids.index(selected), animate=False)
            elif ids:
                table.move_cursor(row=0, animate=False)
        sort = f"sort: {self.sort_key}"
        shown = f"{len(records)}/{len(self.records)} runs" if self.filter_text else (
            f"{len(self.records)} runs")
        filt = f" · filter {self.filter_text!r}" if self.filter_text else ""
        self.border_subtitle = f"{shown} · {sort}{filt}"
        if not ids:
            self.post_message(RunSelected(None))

    # ------------------------------------------------------------------ events and actions

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        key = event.row_key.value if event.row_key is not None else None
        self.post_message(RunSelected(key))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.app.run_action("open_log")

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        column = str(event.column_key.value)
        self.sort_key = column if column in SORTS else "created"
        self.redraw()

    def action_sort(self) -> None:
        keys = list(SORTS)
        self.sort_key = keys[(keys.index(self.sort_key) + 1) % len(keys)]
        self.redraw()

    def action_mark(self) -> None:
        run_id = self.selected_id
        if run_id is None:
            return
        if run_id in self.marked:
            self.marked.remove(run_id)
        else:
            self.marked = [*self.marked[-1:], run_id]  # at most two: a compare pair
        self._shown = []
        self.redraw()

    def action_filter(self) -> None:
        field = self.query_one(Input)
        field.value = self.filter_text
        field.add_class("-open")
        field.focus()

    def action_clear_filter(self) -> None:
        field = self.query_one(Input)
        field.remove_class("-open")
        if self.filter_text:
            self.filter_text = ""
            self.redraw()
        self.table.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.filter_text = event.value.strip()
        self.redraw()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.query_one(Input).remove_class("-open")
        self.table.focus()
