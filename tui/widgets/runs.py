"""The Runs panel: every run in the store, live, sortable and filterable.

It re-reads the store when ``data_version`` says another process (a supervisor, the CLI) wrote,
and redraws durations of runs in flight once a second; it keeps no run state of its own. The
reads happen on the store worker's thread (``Loaded`` brings their result back): never on the
UI thread, however many runs and metric values the store holds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Input

from backends.status import RunStatus
from backends.store import RunRecord

from .. import prefs
from ..failure import failure_reason
from ..keymap import RUNS_BINDINGS
from ..messages import RunSelected
from ..render import duration, metric_value
from .link_state import LinkWatch, is_remote, link_label
from .store_worker import StoreWorker
from .table import FittedTable

if TYPE_CHECKING:
    from backends.engine import Engine

POLL_S = 0.5
STATUS_STYLES = {
    RunStatus.QUEUED: "dim",
    RunStatus.PREPARING: "magenta",
    RunStatus.RUNNING: "bold cyan",
    RunStatus.COMPLETED: "green",
    RunStatus.FAILED: "bold red",
    RunStatus.CANCELED: "yellow",
}
COLUMNS = ("run", "script", "target", "status", "time")  # then a column per chosen metric
DEFAULT_METRIC_COLUMNS = 4
MAX_MARKED = 20  # runs compared at once (the oldest mark goes)
REASONS_BATCH = 100  # failed runs whose log ends are read per store read
FIRST_PAGE = 120  # the newest runs, read first on their own: a screenful in any terminal
UPDATE_IN_PLACE = 50  # changed rows updated cell by cell; more: every row replaced at once
ERROR_MIN = 10  # the error column's least width
METRIC_PREFIX = "m:"  # a metric column's key (and sort key): m:accuracy
LOWER_IS_BETTER = ("loss", "err", "mse", "mae", "perplexity", "latency", "time", "wer", "cer")
SORTS: dict[str, Callable[[RunRecord], Any]] = {
    "created": lambda r: r.created,
    "status": lambda r: r.status.value,
    "script": lambda r: r.script or "",
    "target": lambda r: r.target,
    "time": lambda r: r.duration or 0.0,
}


LinkInfo = tuple[str, str | None, str | None, str | None]  # target, state, host, sync progress
RANK = {"connected": 1, "reconnecting": 2, "lost": 3}


def sync_percent(sync: str) -> str:
    """``sync 120/5000 files, 12.0/200.0 MB`` -> ``sync 6%`` (by bytes)."""
    try:
        sent, total = sync.rsplit(", ", 1)[1].removesuffix(" MB").split("/")
        return f"sync {float(sent) / float(total) * 100:.0f}%" if float(total) else "sync"
    except (IndexError, ValueError):
        return "sync"


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


def lower_is_better(name: str) -> bool:
    """Best first means lowest first for a loss, an error, a time."""
    low = name.lower()
    return any(word in low for word in LOWER_IS_BETTER)


def sort_value(value: Any) -> float | None:
    """A metric's last value as a number to sort by (None: not a number, sorted last)."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value))
    except ValueError:
        return None


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


class RunsTable(FittedTable):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Log", id="list.open", key_display="Enter"),
    ]


class RunsPanel(Vertical):
    BINDINGS: ClassVar[list[BindingType]] = [*RUNS_BINDINGS]
    DEFAULT_CSS = """
    RunsPanel > Input { display: none; height: 3; }
    RunsPanel > Input.-open { display: block; }
    RunsPanel > DataTable { height: 1fr; }
    """

    @dataclass
    class Loaded(Message):
        """The store as the worker read it: runs without metrics, each metric's last value."""

        version: int | None
        records: list[RunRecord]
        last: dict[str, dict[str, tuple[Any, bool]]]
        first_page: bool = False  # only the newest FIRST_PAGE runs (the full read follows)
        links: dict[str, LinkInfo] | None = None  # remote runs in flight: their link

    @dataclass
    class Links(Message):
        """Remote runs in flight: (target, link state, host, sync progress), as their logs say;
        the store unchanged."""

        links: dict[str, LinkInfo]

    @dataclass
    class LinkStates(Message):
        """Each remote target's link, as its runs in flight say (for the Targets panel)."""

        states: dict[str, str]

    @dataclass
    class Reasons(Message):
        """Why failed runs failed (tui/failure.py), read after the rows are on screen."""

        reasons: dict[str, str]

    def __init__(self, engine: Engine, reads: StoreWorker, *, poll: bool = True,
                 id: str | None = None):
        super().__init__(id=id)
        self.engine = engine
        self.reads = reads
        self.poll = poll
        self.records: list[RunRecord] = []  # without their metrics: see ``last``
        self.last: dict[str, dict[str, tuple[Any, bool]]] = {}  # run -> metric -> last value
        self.marked: list[str] = []
        self.prefs = prefs.load(engine.project.state_dir)  # a small file: read once, here
        self.chosen_metrics: list[str] | None = self.prefs.metric_columns
        self.sort_key = self.prefs.sort
        self._columns: list[str] | None = None
        self._with_error = False
        self._error_width = 0
        self._sorted_as = ""
        self.filter_text = ""
        self._version: int | None = None
        self._shown: list[str] = []
        self._last_tick = 0.0
        self._announced: str | None = None  # the run last posted as selected
        self._to_select: str | None = None  # asked for before the store showed it
        self.label = "Runs"  # the title's start (watch mode names what it watches)
        self.reasons: dict[str, str] = {}  # failed run -> its last error line
        self._plain: dict[str, tuple[str, ...]] = {}  # run -> its row's text as shown
        # run -> (what its cells show, the cells, their text): rows rebuilt only when changed
        self._rows: dict[str, tuple[tuple[Any, ...], list[Any], tuple[str, ...]]] = {}
        self._by_id: dict[str, RunRecord] = {}
        self.complete = False  # every run is read (not only the first page)
        self._reasons_pending = False  # a batch of reasons is being read
        self.links: dict[str, LinkInfo] = {}  # remote run in flight -> its link, its sync
        self._links_read: dict[str, LinkInfo] = {}  # the store thread's last answer
        self._link_watches: dict[str, LinkWatch] = {}  # the store thread's only
        self.link_states: dict[str, str] = {}  # remote target -> its runs' worst link state

    def compose(self) -> ComposeResult:
        yield Input(placeholder="filter runs (id, script, target, status, metric)",
                    id="runs-filter")
        yield RunsTable(id="runs-table", cursor_type="row", zebra_stripes=True)

    @property
    def table(self) -> RunsTable:
        return self.query_one(RunsTable)

    def on_mount(self) -> None:
        self.show_title()
        if self.sort_key == "created" and not self.filter_text:
            # The newest runs first (a few ms); the whole store is read once they are painted.
            self.reads.request(self, "runs-first", self._read_first_page)
        else:
            self.reload()
        if self.poll:
            self.set_interval(POLL_S, self.tick, name="runs-poll")

    # ------------------------------------------------------------------ data

    def reload(self) -> None:
        """Re-read the store (on the store worker's thread) and redraw."""
        self._request(force=True)

    def tick(self) -> None:
        in_flight = any(not r.status.is_terminal() for r in self.records)
        now = time.monotonic()
        moving = in_flight and now - self._last_tick >= 1.0
        if moving:
            self._last_tick = now  # recovers runs in flight and moves their durations
        self._request(force=moving)

    def _request(self, force: bool) -> None:
        # Two kinds, so that a poll waiting behind a read never replaces a forced reload.
        if force:
            self.reads.request(self, "runs", lambda: self._read(None, recover=True))
        else:
            known = self._version
            self.reads.request(self, "runs-poll", lambda: self._read(known))

    def _read(self, known: int | None, recover: bool = False
              ) -> RunsPanel.Loaded | RunsPanel.Links | None:
        """On the store thread: the runs, unless the store has not changed since ``known``;
        ``recover``: first notice runs in flight whose supervisor is gone (engine.recover)."""
        if recover:
            self.engine.recover()
        store = self.engine.store
        version = store.data_version()
        if version == known:  # the store is the same; a remote run's link may not be
            links = self._read_links(self.records)
            if links == self._links_read:
                return None
            self._links_read = links
            return self.Links(links)
        records = self.engine.runs(with_metrics=False)
        self._links_read = self._read_links(records)
        return self.Loaded(version, records, store.last_metrics(), links=self._links_read)

    def _read_links(self, records: list[RunRecord]) -> dict[str, LinkInfo]:
        """On the store thread: what the logs of remote runs in flight say of their SSH link
        and sync (tui/widgets/link_state.py), read from where each was read last."""
        links: dict[str, LinkInfo] = {}
        watches: dict[str, LinkWatch] = {}
        for record in records:
            if record.status.is_terminal() or not is_remote(record.target_type):
                continue
            watch = self._link_watches.get(record.id) or LinkWatch(
                self.engine.log_path(record.id))
            watches[record.id] = watch
            links[record.id] = (record.target, *watch.update().as_tuple())
        self._link_watches = watches
        return links

    def _read_first_page(self) -> RunsPanel.Loaded:
        """On the store thread: the newest runs with their metrics' last values, read per run
        (the store's ``last_metrics`` reads every run's)."""
        store = self.engine.store
        records = self.engine.runs(limit=FIRST_PAGE, with_metrics=False)
        last: dict[str, dict[str, tuple[Any, bool]]] = {}
        for record in records:
            tail = store.metrics_tail(record.id, 1)
            last[record.id] = {
                name: ((value[-1] if value else None), True) if isinstance(value, list)
                else (value, False)
                for name, value in tail.items()}
        return self.Loaded(None, records, last, first_page=True)

    def _read_reasons(self, records: list[RunRecord]) -> RunsPanel.Reasons:
        """On the store thread: each failed run's reason (a backward read of its log's end)."""
        return self.Reasons({r.id: failure_reason(r, self.engine.log_path(r.id)) or ""
                             for r in records})

    def _request_reasons(self) -> None:
        """The newest failed runs without a reason yet, a batch at a time: 10,000 failed runs
        do not delay the first rows (a reason never changes once read)."""
        if self._reasons_pending:
            return  # its answer asks for the next batch
        missing = [r for r in self.records
                   if r.status is RunStatus.FAILED and r.id not in self.reasons]
        if missing:
            batch = sorted(missing, key=lambda r: -r.created)[:REASONS_BATCH]
            self._reasons_pending = True
            self.reads.request(self, "reasons", lambda: self._read_reasons(batch))

    def on_runs_panel_reasons(self, message: RunsPanel.Reasons) -> None:
        message.stop()
        self._reasons_pending = False
        if not self.is_attached:
            return
        self.reasons.update(message.reasons)
        self.redraw()
        self._request_reasons()

    def on_runs_panel_loaded(self, message: RunsPanel.Loaded) -> None:
        message.stop()
        if not self.is_attached:  # the dashboard is closing
            return
        if message.first_page and self.complete:
            return  # the whole store came first
        if message.first_page:
            self.call_after_refresh(self.reload)  # the rest once the first rows are on screen
        self._version = message.version
        self.complete = not message.first_page
        selected = self.selected_id
        before = self._facts(selected)
        self.records = message.records
        self._by_id = {r.id: r for r in message.records}
        self.last = message.last
        if message.links is not None:
            self._set_links(message.links)
        self.redraw()
        self._request_reasons()
        if self._to_select in self._shown:
            self.select(self._to_select)  # its highlight announces it
            return
        after = self._facts(selected)
        if after is not None and before != after:
            self._announce(selected)  # the selected run moved on: redraw it
        elif self.selected_id != self._announced:
            self._announce(self.selected_id)  # the first rows, or the selected run vanished

    def on_runs_panel_links(self, message: RunsPanel.Links) -> None:
        message.stop()
        if self.is_attached:
            self._set_links(message.links)
            self.redraw()

    def _set_links(self, links: dict[str, LinkInfo]) -> None:
        self.links = links
        states: dict[str, str] = {}
        for target, state, _where, _sync in links.values():
            if state is not None and RANK.get(state, 0) >= RANK.get(states.get(target, ""), 0):
                states[target] = state  # the worst of a target's runs
        if states != self.link_states:
            self.link_states = states
            self.post_message(self.LinkStates(states))

    def _announce(self, run_id: str | None) -> None:
        self._announced = run_id
        self.post_message(RunSelected(run_id))

    def _facts(self, run_id: str | None) -> tuple[Any, ...] | None:
        """What the details of a run show that can change; None for no such run."""
        record = self.record(run_id)
        if record is None:
            return None
        return (record.status, record.ended, record.exit_code, record.outputs, record.error,
                self.last.get(record.id))

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
        return self._by_id.get(run_id) if run_id is not None else None

    @property
    def selected_id(self) -> str | None:
        table = self.table
        if not self._shown or table.cursor_row < 0 or table.cursor_row >= len(self._shown):
            return None
        return self._shown[table.cursor_row]

    def select(self, run_id: str) -> None:
        """Move to a run; one not read yet (just submitted) is selected when it arrives."""
        self._to_select = None
        if run_id in self._shown:
            self.table.move_cursor(row=self._shown.index(run_id))
        else:
            self._to_select = run_id

    # ------------------------------------------------------------------ drawing

    def shown_records(self) -> list[RunRecord]:
        """The runs the table shows: filtered, sorted."""
        records = list(self.records)
        if self.filter_text:
            needle = self.filter_text.lower()
            records = [r for r in records if needle in self._haystack(r)]
        if self.sort_key.startswith(METRIC_PREFIX):
            return self._by_metric(records, self.sort_key[len(METRIC_PREFIX):])
        key = SORTS.get(self.sort_key, SORTS["created"])
        return sorted(records, key=key, reverse=self.sort_key in ("created", "time"))

    def _by_metric(self, records: list[RunRecord], name: str) -> list[RunRecord]:
        """Best first (highest, or lowest for a loss); runs without the metric last."""
        sign = 1.0 if lower_is_better(name) else -1.0

        def key(record: RunRecord) -> tuple[int, float, float]:
            found = self.last.get(record.id, {}).get(name)
            value = sort_value(found[0]) if found is not None else None
            return (1, 0.0, -record.created) if value is None else (0, sign * value,
                                                                     -record.created)

        return sorted(records, key=key)

    def metric_names(self) -> list[str]:
        """Every metric any run logged, the most common first."""
        counts: dict[str, int] = {}
        for metrics in self.last.values():
            for name in metrics:
                counts[name] = counts.get(name, 0) + 1
        return sorted(counts, key=lambda n: (-counts[n], n))

    def metric_columns(self) -> list[str]:
        """The metrics shown as columns: the project's choice, else the most common ones."""
        if self.chosen_metrics is not None:
            return list(self.chosen_metrics)
        return self.metric_names()[:DEFAULT_METRIC_COLUMNS]

    def _haystack(self, record: RunRecord) -> str:
        return " ".join([record.id, record.script or "", record.target, record.status.value,
                         " ".join(record.args),
                         metrics_summary(self.last.get(record.id, {}), 99)]).lower()

    def _cells(self, record: RunRecord, metrics: list[str]) -> list[Any]:
        """A run's cells but the error column's."""
        mark = "● " if record.id in self.marked else ""
        watch = "⟳ " if record.trigger else ""
        last = self.last.get(record.id, {})
        status = Text(record.status.value, style=STATUS_STYLES.get(record.status, ""))
        link = self.links.get(record.id)
        if link is not None:
            _target, state, _where, sync = link
            if state in ("reconnecting", "lost"):
                status.append(f" · {link_label(state)}",
                              style="bold yellow" if state == "reconnecting" else "bold red")
            elif sync is not None:
                status.append(f" · {sync_percent(sync)}", style="magenta")
        return [
            mark + short_id(record),
            watch + _clip(record.script or "-", 24),
            record.target,
            status,
            duration(record.duration),
            *(Text(metric_value(last[m][0]) if m in last else "-", justify="right")
              for m in metrics),
        ]

    def _row(self, record: RunRecord, metrics: list[str],
             marked: list[str]) -> tuple[list[Any], tuple[str, ...]]:
        """A run's cells (but the error's) and their text, rebuilt only when what they show
        changed: a store re-read of 10,000 unchanged runs rebuilds none."""
        live = not record.status.is_terminal()
        last = self.last.get(record.id, {})
        shows = (record.status, record.script, record.target, bool(record.trigger),
                 record.id in marked, record.started, record.ended,
                 duration(record.duration) if live else None,
                 tuple(last.get(m) for m in metrics), self.links.get(record.id))
        cached = self._rows.get(record.id)
        if cached is not None and cached[0] == shows:
            return cached[1], cached[2]
        cells = self._cells(record, metrics)
        text = tuple(map(str, cells))
        self._rows[record.id] = (shows, cells, text)
        return cells, text

    def _error_cell(self, record: RunRecord) -> Text:
        return Text(_clip(self.reasons.get(record.id, ""), self._error_width), style="red")

    def _set_columns(self, metrics: list[str]) -> None:
        """The table's columns: the fixed ones, then the metrics (the sorted one marked)."""
        table = self.table
        table.clear(columns=True)
        for col in COLUMNS:
            table.add_column(col + self._arrow(col), key=col)
        for name in metrics:
            table.add_column(name + self._arrow(METRIC_PREFIX + name), key=METRIC_PREFIX + name)
        if self._with_error:
            table.add_column("error", key="error")
        self._columns = metrics
        self._shown = []
        self._plain = {}
        self._rows = {}

    def _room_for_error(self, rows: list[tuple[str, ...]], metrics: list[str]) -> int:
        """The error column's width: what the other columns leave of the table's (the reason
        is cut to it: no horizontal scrolling for it), at least ERROR_MIN."""
        keys = [*COLUMNS, *(METRIC_PREFIX + m for m in metrics)]
        widths = [len(k.removeprefix(METRIC_PREFIX) + self._arrow(k)) for k in keys]
        for text in rows:
            widths = [max(w, len(t)) for w, t in zip(widths, text, strict=True)]
        used = sum(w + 2 * self.table.cell_padding for w in widths)
        return max(ERROR_MIN, self.table.size.width - used - 2 * self.table.cell_padding - 1)

    def on_resize(self) -> None:
        if self._with_error and self.table.size.width:
            self.redraw()  # the error column takes what is left

    def _arrow(self, key: str) -> str:
        if key != self.sort_key:
            return ""
        if key.startswith(METRIC_PREFIX):
            return " ▲" if lower_is_better(key[len(METRIC_PREFIX):]) else " ▼"
        return " ▼" if key in ("created", "time") else " ▲"

    def redraw(self) -> None:
        """Show ``records`` as they are now. Rows are built once per redraw and compared by
        their text with what the table shows: the same runs with a few changed cells get those
        cells updated; new, gone or reordered runs replace every row in one step
        (``FittedTable.set_rows``): 10,000 runs redraw without measuring 10,000 rows."""
        table = self.table
        selected = self.selected_id
        metrics = self.metric_columns()
        records = self.shown_records()
        if metrics != self._columns:
            self._rows = {}
        marked = self.marked
        built = [self._row(r, metrics, marked) for r in records]
        with_error = any(self.reasons.get(r.id) for r in records)
        error_width = self._room_for_error([t for _, t in built], metrics) if with_error else 0
        if (metrics != self._columns or self._sorted_as != self.sort_key
                or (with_error, error_width) != (self._with_error, self._error_width)):
            self._sorted_as = self.sort_key
            self._with_error, self._error_width = with_error, error_width
            rows_kept = self._rows
            self._set_columns(metrics)
            self._rows = rows_kept  # the same cells under the new columns
        if with_error:
            errors = [self._error_cell(r) for r in records]
            rows = [[*cells, error] for (cells, _), error in zip(built, errors, strict=True)]
            texts = [(*text, str(error)) for (_, text), error in zip(built, errors, strict=True)]
        else:
            rows = [cells for cells, _ in built]
            texts = [text for _, text in built]
        if len(self._rows) > 2 * len(self.records) + FIRST_PAGE:  # deleted runs' rows
            self._rows = {r.id: self._rows[r.id] for r in records if r.id in self._rows}
        keys = [*COLUMNS, *(METRIC_PREFIX + m for m in metrics),
                *(["error"] if with_error else [])]
        ids = [r.id for r in records]
        plain = dict(zip(ids, texts, strict=True))
        changed = ([i for i, run_id in enumerate(ids) if plain[run_id] != self._plain.get(run_id)]
                   if ids == self._shown else None)
        if changed is not None and len(changed) <= UPDATE_IN_PLACE:
            for i in changed:
                old = self._plain.get(ids[i], ())
                for j, (col, value) in enumerate(zip(keys, rows[i], strict=True)):
                    if j >= len(old) or old[j] != plain[ids[i]][j]:
                        table.update_cell(ids[i], col, value, update_width=True)
        elif changed is None or changed:
            table.set_rows(list(zip(ids, rows, strict=True)))
            if ids != self._shown:
                if selected in ids:
                    table.move_cursor(row=ids.index(selected), animate=False)
                elif ids:
                    table.move_cursor(row=0, animate=False)
            self._shown = ids
        self._plain = plain
        self.show_title()
        if not ids and self._announced is not None:
            self._announce(None)

    def summary(self) -> str:
        """How many runs, the sort and the filter: in the title, which every layout shows (the
        narrow one has no bottom border for a subtitle)."""
        total = len(self.records)
        shown = len(self._shown) if self.filter_text else total
        runs = "run" if total == 1 else "runs"
        more = "+" if not self.complete and total >= FIRST_PAGE else ""  # the rest being read
        count = (f"{shown}/{total}{more} {runs}" if self.filter_text
                 else f"{shown}{more} {runs}")
        filt = f" · filter {self.filter_text!r}" if self.filter_text else ""
        key = self.sort_key
        sort = (f"{key[len(METRIC_PREFIX):]}, best first" if key.startswith(METRIC_PREFIX)
                else key)
        return f"{count} · sort: {sort}{filt}"

    def set_label(self, label: str) -> None:
        self.label = label
        self.show_title()

    def show_title(self) -> None:
        self.border_title = f"{self.label} · {self.summary()}"

    # ------------------------------------------------------------------ events and actions

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        key = event.row_key.value if event.row_key is not None else None
        if key != self._announced:
            self._announce(key)

    async def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        await self.app.run_action("open_log")  # Enter (or a click on the selected row)

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        column = str(event.column_key.value)
        self.sort_by(column if column in SORTS or column.startswith(METRIC_PREFIX)
                     else "created")

    def sort_keys(self) -> list[str]:
        return [*SORTS, *(METRIC_PREFIX + m for m in self.metric_columns())]

    def action_sort(self) -> None:
        keys = self.sort_keys()
        at = keys.index(self.sort_key) if self.sort_key in keys else -1
        self.sort_by(keys[(at + 1) % len(keys)])

    def sort_by(self, key: str) -> None:
        self.sort_key = key
        self.prefs.sort = key
        prefs.save(self.engine.project.state_dir, self.prefs)
        self.redraw()

    def action_choose_columns(self) -> None:
        from ..screens.metric_columns import MetricColumnsScreen

        self.app.push_screen(MetricColumnsScreen(self.metric_names(), self.metric_columns()),
                             self.set_metric_columns)

    def set_metric_columns(self, names: list[str] | None) -> None:
        if names is None:
            return
        self.chosen_metrics = names
        self.prefs.metric_columns = names
        if self.sort_key.startswith(METRIC_PREFIX) and self.sort_key[2:] not in names:
            self.sort_key = "created"
            self.prefs.sort = "created"
        prefs.save(self.engine.project.state_dir, self.prefs)
        self.redraw()

    def action_mark(self) -> None:
        run_id = self.selected_id
        if run_id is None:
            return
        if run_id in self.marked:
            self.marked.remove(run_id)
        else:
            self.marked = [*self.marked[-(MAX_MARKED - 1):], run_id]
        self.redraw()  # the same rows: their cells change, the cursor stays

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
