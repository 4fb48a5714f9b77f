"""Run details: arguments, environment, snapshot, resource use (sparklines of CPU, memory and
GPU from ``runs/<id>/resources.jsonl``, re-read every RESOURCES_S while shown), metrics (with
charts of series), outputs, what triggered it (watch mode) and the ``--explain`` view of how it
runs.

The run is read on the store worker's thread, each series cut to its last ``TAIL`` values: a
chart cannot show more, and a series of 200,000 values costs no more to draw than one of 400.
"""

from __future__ import annotations

import io
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
from backends.resources import read_samples
from backends.store import RunRecord

from ..failure import explain_exit, failure_reason
from ..render import duration, metric_value, when
from .chart import chart_line, sparkline
from .store_worker import StoreWorker

if TYPE_CHECKING:
    from backends.engine import Engine

TAIL = 400  # values per series read for the details (a chart is at most 40 cells wide)
SAMPLES = 120  # resource samples shown (two minutes at one a second)
RESOURCES_S = 2.0  # how often the shown run's samples are read again
RESOURCE_ROWS = (  # sample key, row name, how a value reads
    ("cpu", "cpu", lambda v: f"{v:.0f}%"),
    ("rss", "memory", lambda v: human_bytes(v)),
    ("gpu_mem", "gpu memory", lambda v: human_bytes(v)),
    ("gpu_util", "gpu util", lambda v: f"{v:.0f}%"),
)


def human_bytes(value: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit in ("B", "KiB", "MiB") else \
                f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def resource_rows(samples: list[dict[str, Any]], width: int) -> list[tuple[str, str]]:
    """(name, "sparkline  now X  max Y") per resource the samples have; [] when none."""
    rows = []
    spark_width = max(8, min(40, width - 52))  # the name, now and max, padding, scrollbar
    for key, name, fmt in RESOURCE_ROWS:
        values = [float(s[key]) for s in samples if isinstance(s.get(key), int | float)]
        if not values:
            continue
        # from zero: an idle run's line stays low instead of stretching its noise full height
        line = sparkline([0.0, *values], spark_width + 1)[1:]
        rows.append((name, f"{line}  now {fmt(values[-1])}  max {fmt(max(values))}"))
    return rows


def _section(title: str) -> Text:
    return Text(f"\n{title}", style="bold underline")


def details_renderable(record: RunRecord, explain: str | None, width: int = 40,
                       reason: str | None = None,
                       samples: list[dict[str, Any]] | None = None) -> Group:
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
    used = resource_rows(samples or [], width)
    if used:
        parts.append(_section(f"resources (last {len(samples or [])} samples)"))
        grid = Table.grid(padding=(0, 1))
        grid.add_column(style="bold", no_wrap=True, min_width=10)
        grid.add_column(no_wrap=True, overflow="ellipsis")
        for name, line in used:
            grid.add_row(name, line)
        parts.append(grid)
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
        samples: list[dict[str, Any]] | None = None  # its last resource samples

    @dataclass
    class Resources(Message):
        """A run's last resource samples, read again."""

        run_id: str
        samples: list[dict[str, Any]]

    @dataclass
    class Explained(Message):
        """How a run runs (``--explain``), worked out by a worker thread."""

        run_id: str
        text: str

    def __init__(self, engine: Engine, reads: StoreWorker, id: str | None = None):
        super().__init__(id=id)
        self.engine = engine
        self.reads = reads
        self.record: RunRecord | None = None
        self.reason: str | None = None
        self.wanted: str | None = None  # the run to show (its read may be on its way)
        self._explain: dict[str, str] = {}
        self.samples: list[dict[str, Any]] = []
        self._shown: Group | None = None

    def on_mount(self) -> None:
        self.set_interval(RESOURCES_S, self._poll_resources, name="resources-poll")

    def _poll_resources(self) -> None:
        run_id = self.wanted
        if run_id is None or self.record is None:
            return
        path = self.engine.log_path(run_id).parent
        self.reads.request(self, "resources",
                           lambda: self.Resources(run_id, read_samples(path, SAMPLES)))

    def on_run_details_resources(self, message: RunDetails.Resources) -> None:
        message.stop()
        if (self.is_attached and self.record is not None and message.run_id == self.record.id
                and message.samples != self.samples):
            self.samples = message.samples
            self._draw()

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
        log = self.engine.log_path(run_id)
        return self.Loaded(record, failure_reason(record, log), read_samples(log.parent, SAMPLES))

    def on_run_details_loaded(self, message: RunDetails.Loaded) -> None:
        message.stop()
        if self.is_attached and message.record.id == self.wanted:
            self.show(message.record, message.reason, message.samples or [])

    def show(self, record: RunRecord | None, reason: str | None = None,
             samples: list[dict[str, Any]] | None = None) -> None:
        self.record = record
        self.reason = reason
        self.samples = samples or []
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
        # A message, never call_from_thread: that waits for the UI, which never comes once the
        # app quits (the thread hangs, or raises: ``self.app`` is gone with the widget).
        self.post_message(self.Explained(record.id, text))  # refused (False) once gone

    def on_run_details_explained(self, message: RunDetails.Explained) -> None:
        message.stop()
        self._explain[message.run_id] = message.text
        if self.is_attached and self.record is not None and self.record.id == message.run_id:
            self._draw()

    def _draw(self) -> None:
        body = self.query_one("#details-body", Static)
        if self.record is None:
            self._shown = None
            body.update("no run selected")
            return
        self._shown = details_renderable(self.record, self._explain.get(self.record.id),
                                         self.size.width or 60, self.reason, self.samples)
        body.update(self._shown)

    def text(self) -> str:
        """What the details say, as plain text (tests)."""
        from rich.console import Console

        if self._shown is None or self.record is None:
            return "no run selected"
        console = Console(width=max(40, self.size.width or 100), file=io.StringIO(),
                          color_system=None)
        with console.capture() as capture:
            console.print(self._shown)
        return capture.get()
