"""Run details: arguments, environment, snapshot, metrics (with charts of series), outputs,
what triggered it (watch mode) and the ``--explain`` view of how it runs."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from backends.errors import one_line
from backends.store import RunRecord

from ..render import duration, metric_value, when
from .chart import chart_line


def _section(title: str) -> Text:
    return Text(f"\n{title}", style="bold underline")


def details_renderable(record: RunRecord, explain: str | None, width: int = 40) -> Group:
    head = Table.grid(padding=(0, 1))
    head.add_column(style="bold", no_wrap=True)
    head.add_column()
    status = record.status.value + (f" ({record.error})" if record.error else "")
    rows = [
        ("run", record.id),
        ("status", status),
        ("target", f"{record.target} ({record.target_type})"),
        ("script", record.script or "-"),
        ("arguments", " ".join(record.args) or "-"),
        ("created", when(record.created)),
        ("duration", duration(record.duration)),
        ("exit code", "-" if record.exit_code is None else str(record.exit_code)),
        ("snapshot", (record.snapshot or "-")[:16]),
        ("commit", (record.git_commit or "-")[:12]),
    ]
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
                metrics.add_row(name, chart_line("", value, max(8, min(40, width - 30)))[2:])
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

    def __init__(self, engine: Any, id: str | None = None):
        super().__init__(id=id)
        self.engine = engine
        self.record: RunRecord | None = None
        self._explain: dict[str, str] = {}

    def compose(self) -> Any:
        yield Static("no run selected", id="details-body")

    def show(self, record: RunRecord | None) -> None:
        self.record = record
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
        if self.record is not None and self.record.id == run_id:
            self._draw()

    def _draw(self) -> None:
        body = self.query_one("#details-body", Static)
        if self.record is None:
            body.update("no run selected")
            return
        body.update(details_renderable(self.record, self._explain.get(self.record.id),
                                       self.size.width or 60))
