"""The dashboard quits while its thread workers are still busy: the app exits at once, and each
thread, once its blocking call returns, ends on its own without raising and without waiting for
the (gone) UI.

Each worker is held on an Event inside its blocking call while the app exits; the Event is then
set with the loop's thread blocked, as the interpreter's exit blocks it (it joins the worker
threads). A worker that hands its result back with ``call_from_thread`` waits for the loop for
good there (or raises: its widget, and so ``self.app``, is gone); one that posts a message ends.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from backends.engine import Engine
from tui.app import LabdeckApp
from tui.messages import SubmitRequest
from tui.widgets import log_view
from tui.widgets.log_view import LogView
from tui.widgets.run_details import RunDetails

from .helpers import GUARD_S, settle, until
from .test_log_view import Host, write_log

SIZE = (120, 40)


@dataclass
class Held:
    """A blocking call held until ``gate`` is set, and the worker thread that made it."""

    entered: threading.Event = field(default_factory=threading.Event)
    gate: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)
    errors: list[BaseException] = field(default_factory=list)

    def hold(self, call: Callable[..., Any]) -> Callable[..., Any]:
        def held(*args: Any, **kwargs: Any) -> Any:
            self.entered.set()
            self.gate.wait(GUARD_S)
            return call(*args, **kwargs)

        return held

    def track(self, work: Callable[..., None]) -> Callable[..., None]:
        """``work`` (a worker thread's function), its end and its exception recorded."""

        def tracked(*args: Any, **kwargs: Any) -> None:
            try:
                work(*args, **kwargs)
            except BaseException as err:
                self.errors.append(err)
                raise
            finally:
                self.finished.set()

        return tracked

    def release_after_exit(self) -> None:
        assert not self.finished.is_set()  # the app exited while its worker was still held
        self.gate.set()
        # The loop's thread blocked, as at the interpreter's exit: the thread must end alone.
        assert self.finished.wait(GUARD_S), "the worker thread never ended after the app quit"
        assert self.errors == []


@pytest.fixture
def held() -> Iterator[Held]:
    state = Held()
    yield state
    state.gate.set()  # never leave a thread held, whatever the test did


async def test_an_explain_ending_after_the_app_quit(engine: Engine, held: Held,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "explain", held.hold(engine.explain))
    monkeypatch.setattr(RunDetails, "_explain_for", held.track(RunDetails._explain_for))
    app = LabdeckApp(engine, poll=False)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, held.entered.is_set, "the selected run's explain starts")
    held.release_after_exit()


async def test_a_submit_with_watch_ending_after_the_app_quit(
        engine: Engine, held: Held, monkeypatch: pytest.MonkeyPatch) -> None:
    record = engine.get("proj_1003", with_metrics=False)
    monkeypatch.setattr(engine, "submit", held.hold(lambda *_a, **_kw: record))
    monkeypatch.setattr(LabdeckApp, "_do_submit", held.track(LabdeckApp._do_submit))
    app = LabdeckApp(engine, poll=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.start_submit(SubmitRequest("local", "hello.py", [], watch=True))
        await until(pilot, held.entered.is_set, "the submit starts")
    held.release_after_exit()
    assert app.watcher is None  # no watcher started on the closed app


async def test_a_submit_with_watch_starts_the_watcher(engine: Engine,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The watch box of the submit dialog still watches (the worker posts it, the app starts
    it)."""
    record = engine.get("proj_1003", with_metrics=False)
    monkeypatch.setattr(engine, "submit", lambda *_a, **_kw: record)
    app = LabdeckApp(engine, poll=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.start_submit(SubmitRequest("local", "hello.py", [], watch=True, policy="queue"))
        await until(pilot, lambda: app.watcher is not None, "the watcher starts")
        assert app.watcher is not None and app.watcher.policy.value == "queue"
        app.stop_watch()


@pytest.mark.parametrize(("key", "work"), [("ampersand", "_scan_filter"),
                                           ("slash", "_scan_search")])
async def test_a_log_scan_ending_after_the_app_quit(
        tmp_path: Path, held: Held, monkeypatch: pytest.MonkeyPatch, key: str,
        work: str) -> None:
    path = tmp_path / "log"
    write_log(path, 50)
    monkeypatch.setattr(log_view, "scan", held.hold(log_view.scan))
    monkeypatch.setattr(LogView, work, held.track(getattr(LogView, work)))
    app = Host(path, window=100)
    async with app.run_test(size=(80, 24)) as pilot:
        app.query_one(LogView).focus()
        await pilot.press(key, *"line 1", "enter")
        await until(pilot, held.entered.is_set, "the scan starts")
    held.release_after_exit()


async def test_a_log_scan_still_shows_its_result(tmp_path: Path) -> None:
    """Search then filter, each scanned by a thread that posts its result to the view."""
    path = tmp_path / "log"
    write_log(path, 50)
    app = Host(path, window=100)
    async with app.run_test(size=(80, 24)) as pilot:
        view = app.query_one(LogView)
        view.focus()
        await pilot.press("slash", *"line 3", "enter")
        await until(pilot, lambda: bool(view.search_hits), "the search's scan ends")
        assert [lineno for lineno, _offset in view.search_hits] == [3, *range(30, 40)]
        await pilot.press("ampersand", *"line 4", "enter")
        await until(pilot, lambda: view.filter_text is not None and not view.scanning,
                    "the filter's scan ends")
        assert [line.rsplit(" ", 1)[-1] for line in view.lines] == ["4", *map(str, range(40, 50))]
