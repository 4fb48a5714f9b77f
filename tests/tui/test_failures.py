"""Errors stay visible: a failed run's reason (recorded, or the exception at its log's end) in
the runs list, the details and `runs show`; exit codes explained."""

from __future__ import annotations

from typing import Any

import pytest

from backends.engine import Engine
from backends.status import RunStatus
from backends.store import RunStore
from tests.conftest import Project
from tui.app import LabdeckApp
from tui.failure import explain_exit, last_error_line
from tui.widgets.run_details import RunDetails

from .helpers import settle, until


def screen_text(app: LabdeckApp) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


@pytest.mark.parametrize(("code", "error", "says"), [
    (-9, None, "killed by SIGKILL"), (137, None, "killed by SIGKILL"),
    (137, "container OOMKilled: out of memory", "out of memory"), (-15, None, "SIGTERM"),
    (1, None, "the script's exit status"), (0, None, "0"),
])
def test_exit_codes_are_explained(code: int, error: str | None, says: str) -> None:
    assert says in explain_exit(code, error)


def test_the_exception_is_the_last_error_line(tmp_path: Any) -> None:
    log = tmp_path / "log"
    log.write_text("2026-01-01T00:00:00.000000Z err Traceback (most recent call last):\n"
                   "2026-01-01T00:00:00.000000Z err   File \"x.py\", line 1\n"
                   "2026-01-01T00:00:00.000000Z err KeyError: 'alpha'\n"
                   "2026-01-01T00:00:00.000000Z err \n"
                   "2026-01-01T00:00:00.000000Z sys run failed; exit code 1\n")
    assert last_error_line(log) == "KeyError: 'alpha'"


async def test_the_list_and_details_show_why_a_run_failed(engine: Engine,
                                                          deck_project: Any) -> None:
    store = RunStore(deck_project.db_path)
    early = store.create(deck_project.name, "gpu", "docker", runconfig=None, script="train.py",
                         args=[], env={}, run_id=f"{deck_project.name}_1004",
                         created=1_767_225_600.0 + 300)
    store.set_status(early.id, RunStatus.FAILED, error="image labdeck/x not found")
    store.close()
    app = LabdeckApp(engine, poll=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        text = screen_text(app)
        assert "ValueError: alpha" in text  # run 1002: the exception at its log's end
        assert "image labdeck/x" in text  # run 1004: failed before its script started
        app.runs_panel.select(f"{deck_project.name}_1002")
        await pilot.press("i")  # the details tab
        await settle(pilot)
        details = app.query_one(RunDetails)
        await until(pilot, lambda: details.reason is not None, "the details read")
        text = screen_text(app)
        assert "ValueError: alpha too big" in text
        assert "1 (the script's exit status)" in text


def test_runs_show_names_the_exception_and_explains_the_exit(project: Project) -> None:
    project.write("boom.py", "raise ValueError('alpha too big')\n")
    project.cli("submit", "boom.py")
    shown = project.cli("runs", "last", check=True).stdout
    assert "error:     ValueError: alpha too big" in shown
    assert "exit code: 1 (the script's exit status)" in shown


async def test_reasons_are_read_after_the_rows_in_batches(engine: Engine, deck_project: Any,
                                                          monkeypatch: Any) -> None:
    """Many failed runs: the first rows do not wait for every log's end to be read."""
    from tui.widgets import runs as runs_module

    store = RunStore(deck_project.db_path)
    for i in range(250):
        rec = store.create(deck_project.name, "local", "local", runconfig=None,
                           script="train.py", args=[], env={},
                           run_id=f"{deck_project.name}_{2000 + i}", created=1_767_300_000.0 + i)
        store.set_status(rec.id, RunStatus.FAILED, error=f"reason {i}")
    store.close()
    batches: list[int] = []
    real = runs_module.RunsPanel._read_reasons

    def counting(panel: Any, records: list[Any]) -> Any:
        batches.append(len(records))
        return real(panel, records)

    monkeypatch.setattr(runs_module.RunsPanel, "_read_reasons", counting)
    app = LabdeckApp(engine, poll=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        panel = app.runs_panel
        assert len(panel.records) == 253
        assert panel.reasons[f"{deck_project.name}_2249"] == "reason 249"
        assert panel.reasons[f"{deck_project.name}_2000"] == "reason 0"
        assert max(batches) <= runs_module.REASONS_BATCH and sum(batches) == 251
