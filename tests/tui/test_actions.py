"""Pilot tests: each action's message flow, on a real engine over a fixture store."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable, Input

from backends.engine import Engine
from backends.errors import TargetError
from backends.status import RunStatus
from tui.app import LabdeckApp
from tui.messages import (
    EnvironmentPrepared,
    OutputsDownloaded,
    RunCanceled,
    RunSubmitted,
    WatchToggled,
    WatchTriggered,
)
from tui.screens.compare import CompareScreen
from tui.screens.full_log import FullLogScreen
from tui.screens.help import HelpScreen
from tui.screens.submit import SubmitScreen
from tui.widgets.targets import TargetsPanel

from .helpers import GUARD_S, of_type, settle, until

SIZE = (120, 40)


def app_for(engine: Engine, **kw: Any) -> LabdeckApp:
    return LabdeckApp(engine, **kw)


async def test_opens_on_the_newest_run_with_its_log(engine: Engine) -> None:
    app = app_for(engine)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.runs_panel.selected_id == "proj_1003"
        assert app.log_panel.view.lines[0].endswith("out hello from the fixture")
        assert app.details.record is not None and app.details.record.id == "proj_1003"


async def test_submit_dialog_submits_and_the_run_completes(engine: Engine) -> None:
    messages: list[Any] = []
    app = app_for(engine)
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        await settle(pilot)
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, SubmitScreen), "the submit dialog")
        assert isinstance(app.screen, SubmitScreen)
        app.screen.query_one("#args", Input).value = "--n 3"
        await pilot.press("enter")
        await until(pilot, lambda: bool(of_type(messages, RunSubmitted)), "RunSubmitted")
        record = of_type(messages, RunSubmitted)[0].record
        assert record.script == "hello.py" and record.args == ["--n", "3"]
        assert record.target == "local"
        await until(pilot, lambda: engine.get(record.id).status.is_terminal(), "run ends")
        app.runs_panel.reload()
        await settle(pilot)
        assert engine.get(record.id).status is RunStatus.COMPLETED
        assert app.runs_panel.selected_id == record.id
        assert engine.get(record.id).metrics["accuracy"] == 0.75


async def test_escape_closes_the_submit_dialog_without_a_run(engine: Engine) -> None:
    messages: list[Any] = []
    app = app_for(engine)
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        await settle(pilot)
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, SubmitScreen), "the submit dialog")
        await pilot.press("escape")
        await settle(pilot)
        assert not isinstance(app.screen, SubmitScreen)
        assert not of_type(messages, RunSubmitted)


async def test_resubmit_repeats_script_arguments_and_target(engine: Engine) -> None:
    messages: list[Any] = []
    app = app_for(engine)
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        await settle(pilot)
        await pilot.press("down", "down")  # proj_1001: train.py --alpha 0.1
        assert app.runs_panel.selected_id == "proj_1001"
        await pilot.press("r")
        await until(pilot, lambda: bool(of_type(messages, RunSubmitted)), "RunSubmitted")
        record = of_type(messages, RunSubmitted)[0].record
        assert (record.script, record.args, record.target) == (
            "train.py", ["--alpha", "0.1"], "local")


async def test_cancel_stops_a_running_run(engine: Engine, deck_project: Any) -> None:
    (deck_project.root / "slow.py").write_text("import time\nprint('go', flush=True)\n"
                                               "time.sleep(60)\n")
    running = engine.submit("local", "slow.py", [])
    messages: list[Any] = []
    app = app_for(engine)
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        await settle(pilot)
        assert app.runs_panel.selected_id == running.id
        await until(pilot, lambda: engine.get(running.id).status is RunStatus.RUNNING,
                    "the run starts")
        await pilot.press("c")
        await until(pilot, lambda: bool(of_type(messages, RunCanceled)), "RunCanceled")
        await until(pilot, lambda: engine.get(running.id).status.is_terminal(), "run stops")
        assert engine.get(running.id).status is RunStatus.CANCELED


async def test_cancel_on_a_finished_run_only_warns(engine: Engine) -> None:
    messages: list[Any] = []
    app = app_for(engine)
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        await settle(pilot)
        await pilot.press("c")
        await settle(pilot)
        assert not of_type(messages, RunCanceled)
        assert any("already completed" in n.message for n in app.notices)


async def test_download_copies_outputs_into_the_project(engine: Engine,
                                                        deck_project: Any) -> None:
    messages: list[Any] = []
    app = app_for(engine)
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        await settle(pilot)
        await pilot.press("d")
        await until(pilot, lambda: bool(of_type(messages, OutputsDownloaded)), "download")
    copied = deck_project.root / "downloads" / "proj_1003" / "result.txt"
    assert copied.read_text() == "42\n"


async def test_download_without_outputs_is_a_one_line_error(engine: Engine) -> None:
    app = app_for(engine)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("down", "d")
        await settle(pilot)
        texts = [n.message for n in app.notices]
        assert "run proj_1002 has no outputs" in texts
        assert app.is_running


async def test_prepare_reports_the_environment(engine: Engine) -> None:
    messages: list[Any] = []
    app = app_for(engine)
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        await settle(pilot)
        await pilot.press("p")
        await until(pilot, lambda: bool(of_type(messages, EnvironmentPrepared)), "prepared")
        assert of_type(messages, EnvironmentPrepared)[0].target == "local"


async def test_compare_two_marked_runs(engine: Engine) -> None:
    app = app_for(engine)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("space", "down", "space", "m")
        await settle(pilot)
        assert isinstance(app.screen, CompareScreen)
        assert [r.id for r in app.screen.records] == ["proj_1003", "proj_1002"]
        table = app.screen.query_one(DataTable)
        labels = [str(table.get_row_at(i)[0]) for i in range(table.row_count)]
        assert "accuracy" in labels and "loss" in labels
        await pilot.press("escape")
        assert not isinstance(app.screen, CompareScreen)


async def test_compare_without_marks_uses_the_run_before(engine: Engine) -> None:
    app = app_for(engine)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("m")
        await settle(pilot)
        assert isinstance(app.screen, CompareScreen)
        assert [r.id for r in app.screen.records] == ["proj_1003", "proj_1002"]


async def test_open_full_log_and_back(engine: Engine) -> None:
    app = app_for(engine)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("l")
        await settle(pilot)
        assert isinstance(app.screen, FullLogScreen)
        assert app.screen.path == engine.log_path("proj_1003")
        await pilot.press("q")
        assert not isinstance(app.screen, FullLogScreen)
        assert app.is_running


async def test_help_lists_every_binding(engine: Engine) -> None:
    app = app_for(engine)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        table = app.screen.query_one(DataTable)
        ids = {str(table.get_row_at(i)[3]) for i in range(table.row_count)}
        assert {"submit", "cancel", "resubmit", "watch", "download", "compare",
                "open_log", "prepare", "log.search", "log.filter"} <= ids


async def test_details_tab_shows_metrics_and_chart(engine: Engine) -> None:
    app = app_for(engine)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("down", "down", "i")
        await settle(pilot)
        from rich.console import Console

        from tui.widgets.run_details import details_renderable

        assert app.details.record is not None and app.details.record.id == "proj_1001"
        console = Console(width=100, record=True, file=open(os.devnull, "w"))
        console.print(details_renderable(app.details.record, None, 100))
        text = console.export_text()
        assert "--alpha 0.1" in text
        assert "0.8123" in text
        assert "▁" in text or "█" in text  # the loss series is charted


async def test_backend_error_is_a_notification_not_a_crash(engine: Engine,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_a: Any, **_k: Any) -> Any:
        raise TargetError("docker daemon not reachable at unix:///var/run/docker.sock\nmore")

    monkeypatch.setattr(engine, "submit", broken)
    app = app_for(engine)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("r")
        await settle(pilot)
        texts = [n.message for n in app.notices]
        assert "docker daemon not reachable at unix:///var/run/docker.sock" in texts
        assert app.is_running


async def test_unexpected_exception_is_a_notification_too(engine: Engine,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_a: Any, **_k: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(engine, "cancel", broken)
    monkeypatch.setattr(engine, "download", broken)
    app = app_for(engine)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("d")
        await settle(pilot)
        assert "boom" in [n.message for n in app.notices]
        assert app.is_running


async def test_submit_script_on_open(engine: Engine) -> None:
    messages: list[Any] = []
    app = app_for(engine, submit_script="hello.py")
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        await until(pilot, lambda: bool(of_type(messages, RunSubmitted)), "RunSubmitted")
        record = of_type(messages, RunSubmitted)[0].record
        await until(pilot, lambda: engine.get(record.id).status.is_terminal(), "run ends")
        await until(pilot, lambda: any("hello from the test" in line
                                       for line in app.log_panel.view.lines), "log streamed")


async def test_watch_toggle_resubmits_on_change_and_shows_the_trigger(
        engine: Engine, deck_project: Any) -> None:
    messages: list[Any] = []
    app = app_for(engine)
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        await settle(pilot)
        await pilot.press("w")
        await until(pilot, lambda: bool(of_type(messages, WatchToggled)), "watch on")
        assert of_type(messages, WatchToggled)[0].active
        script: Path = deck_project.root / "hello.py"
        n = 0
        deadline = time.monotonic() + GUARD_S
        while not of_type(messages, WatchTriggered):  # saves until the watcher is listening
            n += 1
            script.write_text(f"{script.read_text()}# save {n}\n")
            await pilot.pause(0.3)  # the pace of the saves, not a wait for anything
            assert time.monotonic() < deadline, f"watch never triggered ({n} saves)"
        event = of_type(messages, WatchTriggered)[0].event
        assert event.files == ["hello.py"]
        assert event.run is not None and event.run.trigger == ["hello.py"]
        assert event.run.script == "hello.py"
        await pilot.press("w")
        await until(pilot, lambda: len(of_type(messages, WatchToggled)) == 2, "watch off")
        assert not of_type(messages, WatchToggled)[1].active
        assert app.watcher is None


async def test_keymap_file_remaps_a_binding(engine: Engine, tmp_path: Path) -> None:
    keymap = tmp_path / "keymap.toml"
    keymap.write_text('[keymap]\nsubmit = "x"\nnot_a_binding = "y"\n')
    app = app_for(engine, keymap_file=keymap)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert any("unknown binding id 'not_a_binding'" in n.message
                   for n in app.notices)
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, SubmitScreen), "the submit dialog")


async def test_a_keymap_that_is_not_a_table_is_one_line(engine: Engine, tmp_path: Path) -> None:
    keymap = tmp_path / "keymap.toml"
    keymap.write_text('keymap = "x"\n')
    app = app_for(engine, keymap_file=keymap)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert any("'keymap' must be a table" in n.message for n in app.notices)


async def test_a_broken_target_config_keeps_its_row_state(engine: Engine,
                                                          deck_project: Any) -> None:
    (deck_project.root / "aml_config" / "broken.compute").write_text("type: [unclosed\n")
    app = app_for(engine)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.query_one(TargetsPanel).refresh_targets()
        await settle(pilot)
        row = app.query_one(TargetsPanel).get_row("broken")
        assert str(row[2]) == "✗ config"


async def test_runs_filter_and_sort(engine: Engine) -> None:
    app = app_for(engine)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        panel = app.runs_panel
        await pilot.press("slash", *"fail", "enter")
        assert [r.id for r in panel.shown_records()] == ["proj_1002"]
        await pilot.press("escape")
        assert len(panel.shown_records()) == 3
        await pilot.press("o")  # created -> status
        assert panel.sort_key == "status"
        statuses = [r.status.value for r in panel.shown_records()]
        assert statuses == ["completed", "completed", "failed"]


async def test_runs_appear_when_another_process_writes(engine: Engine,
                                                       deck_project: Any) -> None:
    app = app_for(engine)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        other = Engine(deck_project)  # a second connection, like the CLI
        record = other.store.create("proj", "local", "local", runconfig="local",
                                    script="x.py", args=[], env={})
        other.close()
        await until(pilot, lambda: app.runs_panel.record(record.id) is not None,
                    "the new run shows")


async def test_command_palette_offers_actions_and_submit_shortcuts(engine: Engine) -> None:
    from tui.commands import LabdeckCommands

    app = app_for(engine)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        provider = LabdeckCommands(app.screen)
        texts = [t for t, _cb, _h in provider._commands()]
        assert "Submit (s)" in texts and "Cancel (c)" in texts and "Log (l)" in texts
        assert "Submit hello.py on local" in texts
