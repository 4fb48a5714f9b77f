"""Run details: arguments, environment, snapshot, metrics (with charts of series), outputs,
what triggered it (watch mode) and the ``--explain`` view of how it runs.

The run is read on the store worker's thread, each series cut to its last ``TAIL`` values: a
chart cannot show more, and a series of 200,000 values costs no more to draw than one of 400.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import Static

from backends.errors import one_line
from backends.store import RunRecord

from ..failure import explain_exit, failure_reason
from ..render import duration, metric_value, when
from .chart import chart_line
from .store_worker import StoreWorker

if TYPE_CHECKING:
    from backends.engine import Engine

TAIL = 400  # values per series read for the details (a chart is at most 40 cells wide)


def _section(title: str) -> Text:
    return Text(f"\n{title}", style="bold underline")


def details_renderable(record: RunRecord, explain: str | None, width: int = 40,
                       reason: str | None = None) -> Group:
    head = Table.grid(padding=(0, 1))
    head.add_column(style="bold", no_wrap=True)
    head.add_column()
    status = record.status.value + (f" ({record.error})" if record.error else "")
    rows: list[tuple[str, str | Text]] = [
        ("run", record.id),
        ("status", status),
        ("target", f"{record.target} ({record.target_type})"),
        ("script", record.script or "-"),
        ("arguments", " ".join(record.args) or "-"),
        ("created", when(record.created)),
        ("duration", duration(record.duration)),
        ("exit code", explain_exit(record.exit_code, record.error)),
        ("snapshot", (record.snapshot or "-")[:16]),
        ("commit", (record.git_commit or "-")[:12]),
    ]
    if reason and reason != record.error:
        rows.insert(2, ("error", Text(reason, style="bold red")))
    if record.trigger:
        rows.append(("triggered by", ", ".join(record.trigger)))
    for key, value in rows:
        head.add_row(key, value)
    parts: list[Any] = [head]
    if record.metrics:
        parts.append(_section("metrics"))
        metrics = Table.grid(padding=(0, 1))
        metrics.add_column(style="bold", no_wrap=True)
        metrics.add_column()
        for name, value in record.metrics.items():
            if isinstance(value, list):
                metrics.add_row(name, chart_line("", value, max(8, min(40, width - 30)),
                                                 tail=TAIL)[2:])
            else:
                metrics.add_row(name, metric_value(value))
        parts.append(metrics)
    if record.outputs:
        parts.append(_section("outputs"))
        parts += [Text(f"outputs/{o}") for o in record.outputs]
    if record.env:
        parts.append(_section("environment"))
        parts += [Text(f"{k}={v}") for k, v in sorted(record.env.items())]
    parts.append(_section("explain"))
    parts.append(Text(explain if explain is not None else "…", style="dim"))
    return Group(*parts)


class RunDetails(VerticalScroll):
    DEFAULT_CSS = """
    RunDetails { height: 1fr; padding: 0 1; }
    """

    @dataclass
    class Loaded(Message):
        """A run as the store worker read it, its series cut to their tails."""

        record: RunRecord
        reason: str | None = None  # a failed run's last error line

    def __init__(self, engine: Engine, reads: StoreWorker, id: str | None = None):
        super().__init__(id=id)
        self.engine = engine
        self.reads = reads
        self.record: RunRecord | None = None
        self.reason: str | None = None
        self.wanted: str | None = None  # the run to show (its read may be on its way)
        self._explain: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        yield Static("no run selected", id="details-body")

    def show_run(self, run_id: str | None) -> None:
        """Show a run (read off the UI thread), or none."""
        self.wanted = run_id
        if run_id is None:
            self.show(None)
            return
        self.reads.request(self, "details", lambda: self._read(run_id))

    def _read(self, run_id: str) -> RunDetails.Loaded:
        """On the store thread: the run and the tails of its metrics."""
        store = self.engine.store
        record = store.get(run_id, with_metrics=False)
        record.metrics = store.metrics_tail(run_id, TAIL)
        return self.Loaded(record, failure_reason(record, self.engine.log_path(run_id)))

    def on_run_details_loaded(self, message: RunDetails.Loaded) -> None:
        message.stop()
        if self.is_attached and message.record.id == self.wanted:
            self.show(message.record, message.reason)

    def show(self, record: RunRecord | None, reason: str | None = None) -> None:
        self.record = record
        self.reason = reason
        self._draw()
        if record is not None and record.id not in self._explain:
            self.run_worker(lambda: self._explain_for(record), thread=True, exclusive=True,
                            group="explain", name="explain", exit_on_error=False)

    def _explain_for(self, record: RunRecord) -> None:
        try:
            text = self.engine.explain(record.runconfig or record.target, record.script,
                                       list(record.args)).render()
        except Exception as err:  # shown in place: the run may predate a config change
            text = f"cannot explain: {one_line(err)}"
        self.app.call_from_thread(self._explained, record.id, text)

    def _explained(self, run_id: str, text: str) -> None:
        self._explain[run_id] = text
        if self.record is not None and self.record.id == run_id and self.is_attached:
            self._draw()

    def _draw(self) -> None:
        body = self.query_one("#details-body", Static)
        if self.record is None:
            body.update("no run selected")
            return
        body.update(details_renderable(self.record, self._explain.get(self.record.id),
                                       self.size.width or 60, self.reason))
