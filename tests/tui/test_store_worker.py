"""The dashboard never reads the store on the UI thread (issue 14, item 13), and its handlers
survive messages that arrive while another screen is on top or while the app closes (issue 11,
items 1 and 8).

Not a timed test: the store and the engine's reads are wrapped so that a call from the UI thread
(the main thread, where Pilot runs the app) is recorded and fails; a run whose series holds
200,000 values is selected, and its details show the series' tail.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from backends.engine import Engine
from backends.project import Project
from tui.app import LabdeckApp
from tui.messages import (
    CompareLoaded,
    RunCanceled,
    RunSelected,
    RunSubmitted,
    SubmitChoices,
    WatchRequested,
    WatchToggled,
)
from tui.screens.compare import CompareScreen
from tui.screens.full_log import FullLogScreen
from tui.screens.help import HelpScreen
from tui.widgets.run_details import TAIL

from .helpers import settle, until

SIZE = (120, 40)
VALUES = 200_000
STORE_READS = ("get", "find", "list_runs", "last", "active", "metrics", "metrics_tail",
               "last_metrics", "data_version")
ENGINE_READS = ("get", "last", "runs", "recover", "reconcile", "explain", "download", "cancel",
                "submit", "warm_up")


class UIThreadReads:
    """Wraps an engine's reads: each call made on the main thread is recorded, and refused."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def guard(self, owner: object, names: tuple[str, ...], label: str) -> None:
        for name in names:
            setattr(owner, name, self._guarded(getattr(owner, name), f"{label}.{name}"))

    def _guarded(self, method: Callable[..., Any], name: str) -> Callable[..., Any]:
        @functools.wraps(method)
        def call(*args: Any, **kwargs: Any) -> Any:
            if threading.current_thread() is threading.main_thread():
                self.calls.append(name)
                raise AssertionError(f"{name} called on the UI thread")
            return method(*args, **kwargs)

        return call


@pytest.fixture
def long_series(deck_project: Project) -> str:
    """The newest fixture run, its 'loss' series grown to 200,002 values."""
    engine = Engine(deck_project)
    run_id = "proj_1003"
    engine.store.add_metric(run_id, "loss", [float(i) for i in range(VALUES)])
    engine.close()
    return run_id


@pytest.fixture
def guarded(engine: Engine, long_series: str) -> Iterator[UIThreadReads]:
    reads = UIThreadReads()
    reads.guard(engine.store, STORE_READS, "store")
    reads.guard(engine, ENGINE_READS, "engine")
    yield reads


async def test_the_ui_thread_never_reads_the_store(engine: Engine, long_series: str,
                                                    guarded: UIThreadReads) -> None:
    app = LabdeckApp(engine)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.runs_panel.selected_id == long_series
        await pilot.press("down", "up", "i")  # away and back: the details read it again
        await settle(pilot)
        record = app.details.record
        assert record is not None and record.id == long_series
        loss = record.metrics["loss"]
        assert len(loss) == TAIL and loss[-1] == float(VALUES - 1)  # the tail, not 200,002
        await pilot.press("m")  # compare reads both runs with their metrics
        await until(pilot, lambda: isinstance(app.screen, CompareScreen), "compare opens")
        assert isinstance(app.screen, CompareScreen)
        assert len(app.screen.records[0].metrics["loss"]) == TAIL
        await pilot.press("escape", "s")  # the submit dialog lists scripts off the UI thread
        await settle(pilot)
        app.runs_panel.reload()
        await settle(pilot)
    assert guarded.calls == []


async def test_enter_on_a_run_opens_its_full_log(engine: Engine) -> None:
    app = LabdeckApp(engine)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("down", "enter")
        await until(pilot, lambda: isinstance(app.screen, FullLogScreen), "the full log opens")
        assert isinstance(app.screen, FullLogScreen)
        assert app.screen.path == engine.log_path("proj_1002")


async def test_messages_while_another_screen_is_on_top(engine: Engine) -> None:
    """A run's status changing under the help screen selects it anew: the handlers reach the
    main screen's widgets from under a modal screen (a guard: this held before too)."""
    app = LabdeckApp(engine)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        record = engine.get("proj_1002", with_metrics=False)
        app.post_message(RunSelected("proj_1002"))
        app.post_message(RunSubmitted(record))
        app.post_message(RunCanceled(record))
        app.post_message(WatchToggled(True, "local", "train.py", "cancel"))
        await settle(pilot)
        assert app.is_running and isinstance(app.screen, HelpScreen)
        assert app.details.record is not None and app.details.record.id == "proj_1002"


async def test_messages_after_the_app_closed_are_harmless(engine: Engine) -> None:
    app = LabdeckApp(engine)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
    record = engine.get("proj_1002", with_metrics=False)
    # What a worker finishing during shutdown delivers to the app's handlers.
    app.on_run_selected(RunSelected("proj_1002"))
    app.on_run_submitted(RunSubmitted(record))
    app.on_run_canceled(RunCanceled(record))
    app.on_watch_toggled(WatchToggled(False, "local", "train.py", "cancel"))
    app.on_watch_requested(WatchRequested(record, "cancel"))
    assert app.watcher is None
    app.on_compare_loaded(CompareLoaded([record]))
    app.on_submit_choices(SubmitChoices(["train.py"], ["local"]))
