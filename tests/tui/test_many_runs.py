"""Issue 11 item 15: many runs and long logs without blocking the UI thread.

- FittedTable.set_rows (every row at once, plain cells measured by length) shows what add_row
  row by row shows: same cells, same column widths;
- the newest runs are on screen before the whole store is read (the full read held back here);
- a store re-read of unchanged runs rebuilds no row, a changed run rebuilds its row only;
- a log's lines are counted off the UI thread; Home pressed meanwhile waits for the count.
(Speed is measured in bench/bench_first_paint.py, not asserted here.)
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from rich.text import Text
from textual.app import App, ComposeResult

from backends.engine import Engine
from backends.logfile import format_ts
from backends.project import Project
from backends.store import RunStore
from tui.app import LabdeckApp
from tui.widgets import log_view as log_view_module
from tui.widgets import runs as runs_module
from tui.widgets.log_index import LineIndex
from tui.widgets.log_panel import LogPanel
from tui.widgets.log_view import LogView
from tui.widgets.table import FittedTable

from .helpers import settle, until


class Tables(App[None]):
    def compose(self) -> ComposeResult:
        yield FittedTable(id="bulk")
        yield FittedTable(id="one-by-one")


ROWS: list[tuple[str, list[Any]]] = [
    ("a", ["short", Text("completed", style="green"), "1.5s", Text("0.81", justify="right")]),
    ("b", ["a much longer name", Text("failed", style="red"), "12m03s", Text("-")]),
    ("c", ["[bold]markup[/bold]", Text("running"), "2h", 0.123456]),  # measured by DataTable
    ("d", ["wide ✓ 名前", Text("queued"), ":smile:", Text("1e-05")]),
]


async def test_set_rows_shows_what_add_row_shows() -> None:
    app = Tables()
    async with app.run_test(size=(100, 20)) as pilot:
        bulk = app.query_one("#bulk", FittedTable)
        single = app.query_one("#one-by-one", FittedTable)
        for table in (bulk, single):
            for col in ("name", "status", "time", "metric"):
                table.add_column(col, key=col)
        bulk.set_rows([("stale", ["x" * 60, Text("x"), "x", "x"])])  # widths shrink again
        await pilot.pause()
        bulk.set_rows(ROWS)
        for key, cells in ROWS:
            single.add_row(*cells, key=key)
        await pilot.pause()
        await until(pilot, lambda: not bulk._require_update_dimensions
                    and not single._require_update_dimensions, "widths measured")
        assert bulk.row_count == single.row_count == len(ROWS)
        for i in range(len(ROWS)):
            assert bulk.get_row_at(i) == single.get_row_at(i)
        widths = [c.content_width for c in bulk.ordered_columns]
        assert widths == [c.content_width for c in single.ordered_columns]
        assert bulk.virtual_size == single.virtual_size
        with pytest.raises(Exception, match="key"):
            bulk.set_rows([("a", []), ("a", [])])
        for table in (bulk, single):
            table.update_cell("b", "name", "x", update_width=True)  # the widest cell narrows
        await pilot.pause()
        await until(pilot, lambda: not bulk._require_update_dimensions
                    and not single._require_update_dimensions, "widths measured")
        assert [c.content_width for c in bulk.ordered_columns] == \
            [c.content_width for c in single.ordered_columns]
        assert bulk.ordered_columns[0].content_width < 18


def many_runs(root: Path, n: int) -> Project:
    (root / "aml_config").mkdir(parents=True)
    (root / "aml_config" / "local.compute").write_text('type: "local"\n')
    project = Project(root)
    project.ensure_state()
    store = RunStore(project.db_path)
    rows = []
    for i in range(n):
        t = 1_767_225_600 + i * 60
        rows.append((f"{project.name}_{i:05d}", project.name, "local", "local", "local",
                     "train.py", json.dumps([]), "{}", "completed", t, t + 1, t + 30, 0))
    store._db.executemany(
        "INSERT INTO runs (id, project, target, target_type, runconfig, script, args, env,"
        " status, created, started, ended, exit_code) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    for i in range(n):
        store.add_metric(f"{project.name}_{i:05d}", "accuracy", 0.5 + i / (4 * n), ts=0)
    store.close()
    return project


async def test_the_newest_runs_show_before_the_whole_store_is_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    page = getattr(runs_module, "FIRST_PAGE", 120)
    n = page + 80
    project = many_runs(tmp_path / "deck", n)
    release = threading.Event()
    full_read = runs_module.RunsPanel._read

    def held_read(self: Any, known: int | None, recover: bool = False) -> Any:
        assert release.wait(60), "the test never released the full read"
        return full_read(self, known, recover)

    monkeypatch.setattr(runs_module.RunsPanel, "_read", held_read)
    engine = Engine(project)
    app = LabdeckApp(engine, poll=False)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            panel = app.runs_panel
            await until(pilot, lambda: panel.table.row_count > 0, "the first rows")
            assert panel.table.row_count == page
            assert panel.selected_id == f"{project.name}_{n - 1:05d}"  # newest first
            assert f"{page}+ runs" in str(panel.border_title)
            assert str(panel.table.get_cell(panel.selected_id, "m:accuracy")) != "-"
            release.set()
            await until(pilot, lambda: panel.table.row_count == n, "every run")
            await settle(pilot)
            assert f"{n} runs" in str(panel.border_title)
            assert panel.selected_id == f"{project.name}_{n - 1:05d}"
    finally:
        release.set()
        engine.close()


async def test_a_reread_rebuilds_only_the_rows_that_changed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    n = 300
    project = many_runs(tmp_path / "deck", n)
    built: list[str] = []
    cells = runs_module.RunsPanel._cells

    def counting(self: Any, record: Any, metrics: list[str]) -> list[Any]:
        built.append(record.id)
        return cells(self, record, metrics)

    monkeypatch.setattr(runs_module.RunsPanel, "_cells", counting)
    engine = Engine(project)
    app = LabdeckApp(engine, poll=False)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            panel = app.runs_panel
            await until(pilot, lambda: panel.table.row_count == n, "every run")
            await settle(pilot)
            built.clear()
            panel.reload()
            await until(pilot, lambda: panel._version is not None, "read")
            await settle(pilot)
            assert built == [], "unchanged runs were rebuilt"
            changed = f"{project.name}_00007"
            engine.store.add_metric(changed, "accuracy", 0.01, ts=1)
            panel.reload()
            await until(pilot, lambda: changed in built, "the changed run rebuilt")
            await settle(pilot)
            assert built == [changed]
            assert str(panel.table.get_cell(changed, "m:accuracy")) == "0.01"
    finally:
        engine.close()


class LogHost(App[None]):
    def __init__(self, path: Path):
        super().__init__()
        self.path = path

    def compose(self) -> ComposeResult:
        yield LogPanel(self.path, id="panel", poll=False)


async def test_a_long_log_is_counted_off_the_ui_thread_and_home_waits_for_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "log"
    n = 30_000
    with open(path, "w") as fh:
        for i in range(n):
            fh.write(f"{format_ts(1_767_225_600 + i)} out line {i}\n")
    # count even this one in a worker (raising=False: the check that it fails before)
    monkeypatch.setattr(log_view_module, "COUNT_INLINE", 0, raising=False)
    release = threading.Event()
    threads: list[str] = []
    lines_before = LineIndex.lines_before

    def watched(self: LineIndex, end: int) -> int:
        threads.append(threading.current_thread().name)
        if threading.current_thread() is not threading.main_thread():
            assert release.wait(60), "the test never released the count"
        return lines_before(self, end)

    monkeypatch.setattr(LineIndex, "lines_before", watched)
    app = LogHost(path)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            view = app.query_one(LogView)
            view.window = 1000
            view.set_path(path)
            await until(pilot, lambda: bool(threads), "the count started")
            assert view.lines[-1].endswith(f"line {n - 1}")  # the tail is shown meanwhile
            assert "counting lines" in view.status_text()
            view.focus()
            await pilot.press("home")  # waits for the count
            release.set()
            await until(pilot, lambda: view.counting is None, "the count arrived")
            await pilot.pause()
            assert threading.main_thread().name not in threads
            assert view.total == n
            assert view.lines[0].endswith(" line 0") and view.first_lineno == 0
            assert view.status_text().startswith(f"line 1 of {n:,}")
            await pilot.press("end")
            await pilot.pause()
            assert view.linenos[-1] == n - 1
    finally:
        release.set()
