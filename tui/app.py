"""The dashboard: wiring only. Widgets read the store (on the store worker's thread) and log
files; actions call the engine in workers; every failure ends as a one-line notification
(``on_worker_state_changed``). Nothing on the UI thread reads the store or walks the project.

The main screen's widgets are looked up on the main screen (``_main``), and messages that arrive
while the app closes (workers end then, its screens are gone) are dropped (``while_open``): a
handler never meets a widget that is not there.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, TypeVar

from textual.app import App, ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.notifications import SeverityLevel
from textual.widget import Widget
from textual.widgets import Footer, TabbedContent, TabPane
from textual.worker import Worker, WorkerState

from backends.base import PrepareOptions
from backends.errors import LabdeckError, one_line
from backends.snapshot import list_files
from backends.store import RunRecord
from backends.watch import Watcher, WatchEvent

from .commands import LabdeckCommands
from .keymap import APP_BINDINGS, load_keymap
from .messages import (
    CompareLoaded,
    EnvironmentPrepared,
    OutputsDownloaded,
    RunCanceled,
    RunSelected,
    RunSubmitted,
    SubmitChoices,
    SubmitRequest,
    TargetSelected,
    WatchRequested,
    WatchToggled,
    WatchTriggered,
)
from .screens.notifications import Notice
from .widgets.log_panel import LogPanel
from .widgets.prepare_panel import PrepareEnded, PreparePanel, PrepareProgress
from .widgets.run_details import TAIL as COMPARE_TAIL
from .widgets.run_details import RunDetails
from .widgets.runs import RunsPanel
from .widgets.store_worker import StoreWorker
from .widgets.targets import TargetsPanel

if TYPE_CHECKING:
    from backends.engine import Engine

# The screens (help's Markdown alone is ~60 ms of imports) load when first opened: the first
# paint waits for no screen it does not show.

MAX_NOTICES = 500
WARM_UP_S = 2.0  # the zygote starts by then if no run has been drawn
W = TypeVar("W", bound=Widget)
M = TypeVar("M", bound=Message)


def while_open(handler: Callable[[LabdeckApp, M], None]) -> Callable[[LabdeckApp, M], None]:
    """A message handler that does nothing once the app closes: its widgets are going."""

    @wraps(handler)
    def guarded(app: LabdeckApp, message: M) -> None:
        if app.is_running and app.screen_stack:
            handler(app, message)

    return guarded


class LabdeckApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "labdeck"
    BINDINGS: ClassVar[list[BindingType]] = [*APP_BINDINGS]
    COMMANDS = App.COMMANDS | {LabdeckCommands}
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]
    NOTIFICATION_TIMEOUT = 4

    def __init__(self, engine: Engine, target: str = "local", submit_script: str | None = None,
                 *, poll: bool = True, keymap_file: Path | None = None):
        super().__init__()
        self.engine = engine
        self.reads = StoreWorker()
        self.target = target
        self.submit_script = submit_script
        self.poll = poll
        self.keymap_file = keymap_file
        self.user_keymap: dict[str, str] = {}
        self.watcher: Watcher | None = None
        self._watch_worker: Worker[None] | None = None
        self.sub_title = str(engine.project.root)
        self.notices: list[Notice] = []
        self._warmed = False

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        with Horizontal(id="main"):
            with Vertical(id="left"):
                targets = TargetsPanel(self.engine, selected=self.target, poll=self.poll,
                                       id="targets")
                targets.border_title = "Targets"
                yield targets
                runs = RunsPanel(self.engine, self.reads, poll=self.poll, id="runs")
                yield runs
            with TabbedContent(id="right", initial="tab-log"):
                with TabPane("Log", id="tab-log"):
                    yield LogPanel(poll=self.poll, id="log")
                with TabPane("Details", id="tab-details"):
                    yield RunDetails(self.engine, self.reads, id="details")
        yield Footer(compact=True, show_command_palette=False)

    def _main(self, kind: type[W]) -> W:
        """The main screen's widget of this type, whatever screen is on top."""
        return self.screen_stack[0].query_one(kind)

    @property
    def runs_panel(self) -> RunsPanel:
        return self._main(RunsPanel)

    @property
    def log_panel(self) -> LogPanel:
        return self._main(LogPanel)

    @property
    def details(self) -> RunDetails:
        return self._main(RunDetails)

    def on_mount(self) -> None:
        # The supervisor zygote (fast starts for this threaded client) starts a process: once
        # the first runs are on screen (it takes a CPU for a while), or after WARM_UP_S anyway.
        self._warm_timer = self.set_timer(WARM_UP_S, self.warm_up, name="warm up")
        remaps, problems = load_keymap(self.keymap_file)
        self.user_keymap = remaps
        if remaps:
            self.set_keymap(remaps)
        for problem in problems:
            self.notify(problem, title="keymap", severity="warning")
        self.runs_panel.table.focus()  # its first rows select a run when they arrive
        if self.submit_script:
            self.start_submit(SubmitRequest(self.target, self.submit_script, []))

    # ------------------------------------------------------------------ selection

    def selected_record(self) -> RunRecord | None:
        return self.runs_panel.record(self.runs_panel.selected_id)

    def require_run(self) -> RunRecord | None:
        record = self.selected_record()
        if record is None:
            self.notify("no run selected", severity="warning")
        return record

    def show_run(self, run_id: str | None) -> None:
        record = self.runs_panel.record(run_id)
        if record is None:
            self.log_panel.show(None, "")
            self.details.show_run(None)
            return
        self.log_panel.show(self.engine.log_path(record.id),
                            f"{record.id} {record.status.value}")
        self.details.show_run(record.id)  # read with its metrics' tails, off the UI thread

    def warm_up(self) -> None:
        if not self._warmed:
            self._warmed = True
            self._warm_timer.stop()
            self.run_worker(self.engine.warm_up, thread=True, name="warm up",
                            exit_on_error=False)

    @while_open
    def on_run_selected(self, message: RunSelected) -> None:
        self.show_run(message.run_id)
        if not self._warmed:
            self.call_after_refresh(self.warm_up)  # the first rows are drawn

    @while_open
    def on_runs_panel_link_states(self, message: RunsPanel.LinkStates) -> None:
        self._main(TargetsPanel).set_links(message.states)

    def on_target_selected(self, message: TargetSelected) -> None:
        self.target = message.name

    # ------------------------------------------------------------------ failures

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The one place a failed engine call becomes a message on screen."""
        if not self.is_running:
            return
        if event.state is WorkerState.ERROR and event.worker.error is not None:
            self.notify(one_line(event.worker.error), title=event.worker.name or "error",
                        severity="error", timeout=8)

    # ------------------------------------------------------------------ submit / resubmit

    def project_scripts(self) -> list[str]:
        return [f.rel for f in list_files(self.engine.project.root) if f.rel.endswith(".py")]

    def action_submit(self) -> None:
        def work() -> None:  # walks the project: not on the UI thread
            self.post_message(SubmitChoices(self.project_scripts(),
                                            self.engine.project.compute_names()))

        self.run_worker(work, thread=True, name="submit", exit_on_error=False,
                        group="submit-dialog", exclusive=True)

    @while_open
    def on_submit_choices(self, message: SubmitChoices) -> None:
        from .screens.submit import SubmitScreen

        if isinstance(self.screen, SubmitScreen):
            return  # already open (s pressed twice)
        record = self.selected_record()
        screen = SubmitScreen(message.scripts, message.targets, self.target,
                              record.script if record else None,
                              list(record.args) if record else None)
        self.push_screen(screen, self._submit_chosen)

    def _submit_chosen(self, request: SubmitRequest | None) -> None:
        if request is not None:
            self.start_submit(request)

    def start_submit(self, request: SubmitRequest) -> None:
        self.run_worker(lambda: self._do_submit(request), thread=True, name="submit",
                        exit_on_error=False, group="submit")

    def _do_submit(self, request: SubmitRequest) -> None:
        record = self.engine.submit(request.target, request.script, request.args)
        self.post_message(RunSubmitted(record))
        if request.watch:  # a message, never call_from_thread: that blocks this thread until the
            # UI runs it, which it never does once the app quits (a hang, or a raise, at exit)
            self.post_message(WatchRequested(record, request.policy))

    @while_open
    def on_run_submitted(self, message: RunSubmitted) -> None:
        self.runs_panel.reload()
        self.runs_panel.select(message.record.id)
        self.notify(f"run {message.record.id} submitted to {message.record.target}")

    def action_resubmit(self) -> None:
        record = self.require_run()
        if record is not None:
            self.start_submit(SubmitRequest(record.runconfig or record.target, record.script,
                                            list(record.args)))

    # ------------------------------------------------------------------ cancel / download

    def action_cancel_run(self) -> None:
        record = self.require_run()
        if record is None:
            return
        if record.status.is_terminal():
            self.notify(f"run {record.id} already {record.status.value}", severity="warning")
            return
        run_id = record.id

        def work() -> None:
            self.post_message(RunCanceled(self.engine.cancel(run_id)))

        self.run_worker(work, thread=True, name="cancel", exit_on_error=False, group="cancel")

    @while_open
    def on_run_canceled(self, message: RunCanceled) -> None:
        self.runs_panel.reload()
        self.notify(f"cancel requested for run {message.record.id}")

    def action_download(self) -> None:
        record = self.require_run()
        if record is None:
            return
        run_id = record.id
        dest = self.engine.project.root / "downloads" / run_id  # never the project's outputs/

        def work() -> None:
            files = self.engine.download(run_id, dest)
            self.post_message(OutputsDownloaded(run_id, [str(f) for f in files], str(dest)))

        self.run_worker(work, thread=True, name="download", exit_on_error=False,
                        group="download")

    @while_open
    def on_outputs_downloaded(self, message: OutputsDownloaded) -> None:
        self.notify(f"{len(message.files)} file(s) of run {message.run_id} → {message.dest}")

    # ------------------------------------------------------------------ prepare

    async def action_prepare(self) -> None:
        await self.start_prepare(self.target)

    async def start_prepare(self, target: str, options: PrepareOptions | None = None) -> None:
        """Prepare ``target`` with its build log streaming into the Prepare tab (added the
        first time), which shows the progress and cancels with x."""
        if self.prepare_panel is not None and self.prepare_panel.running:
            self.notify(f"already preparing {self.prepare_panel.target} (x in the Prepare tab "
                        "cancels it)", severity="warning")
            return
        tabs = self.screen_stack[0].query_one(TabbedContent)
        if self.prepare_panel is None:
            await tabs.add_pane(TabPane("Prepare", PreparePanel(id="prepare"), id="tab-prepare"))
        tabs.active = "tab-prepare"
        panel = self.prepare_panel
        assert panel is not None
        panel.begin(target)
        panel.focus_log()  # x cancels from here
        self.run_worker(self._do_prepare(target, options), name="prepare", exit_on_error=False,
                        group="prepare", exclusive=True)

    @property
    def prepare_panel(self) -> PreparePanel | None:
        found = self.screen_stack[0].query(PreparePanel) if self.screen_stack else None
        return found.first() if found else None

    async def _do_prepare(self, target: str, options: PrepareOptions | None = None) -> None:
        def progress(text: str) -> None:  # any thread
            self.post_message(PrepareProgress(target, text))

        try:
            ref = await self.engine.prepare(target, options, progress=progress)
        except asyncio.CancelledError:  # x: the build's request closes, the daemon stops it
            self.post_message(PrepareEnded(target, canceled=True))
            raise
        except Exception as err:  # said in the panel too, and notified as every failure
            self.post_message(PrepareEnded(target, error=one_line(err)))
            raise
        self.post_message(PrepareEnded(target, ref.ref, ref.cached))
        self.post_message(EnvironmentPrepared(target, ref.ref, ref.cached))

    def action_cancel_prepare(self) -> None:
        panel = self.prepare_panel
        if panel is None or not panel.running:
            self.notify("no prepare is running", severity="warning")
            return
        self.workers.cancel_group(self, "prepare")

    @while_open
    def on_prepare_progress(self, message: PrepareProgress) -> None:
        panel = self.prepare_panel
        if panel is not None and panel.target == message.target and panel.running:
            panel.add_line(message.line)

    @while_open
    def on_prepare_ended(self, message: PrepareEnded) -> None:
        panel = self.prepare_panel
        if panel is not None and panel.target == message.target and panel.running:
            panel.end(message)
        if message.canceled:
            self.notify(f"{message.target}: prepare canceled", severity="warning")

    @while_open
    def on_environment_prepared(self, message: EnvironmentPrepared) -> None:
        state = "cached" if message.cached else "built"
        self.notify(f"{message.target}: environment {state} ({message.ref})")

    # ------------------------------------------------------------------ watch

    def action_toggle_watch(self) -> None:
        if self.watcher is not None:
            self.stop_watch()
            return
        record = self.require_run()
        if record is not None:
            self.start_watch(record, "cancel")

    def start_watch(self, record: RunRecord, policy: str) -> None:
        self.stop_watch(quiet=True)
        in_flight = [] if record.status.is_terminal() else [record.id]
        self.watcher = Watcher(self.engine, self.engine.project.root,
                               record.runconfig or record.target, record.script,
                               list(record.args), policy, self._watch_event, in_flight)
        self._watch_worker = self.run_worker(self.watcher.run(), name="watch",
                                             exit_on_error=False, group="watch",
                                             exclusive=True)
        self.post_message(WatchToggled(True, self.watcher.target, record.script, policy))

    @while_open
    def on_watch_requested(self, message: WatchRequested) -> None:
        self.start_watch(message.record, message.policy)

    def stop_watch(self, quiet: bool = False) -> None:
        if self._watch_worker is not None:
            self._watch_worker.cancel()
        was = self.watcher
        self.watcher = None
        self._watch_worker = None
        if was is not None and not quiet:
            self.post_message(WatchToggled(False, was.target, was.script, was.policy.value))

    def _watch_event(self, event: WatchEvent) -> None:
        self.post_message(WatchTriggered(event))

    @while_open
    def on_watch_toggled(self, message: WatchToggled) -> None:
        if message.active:
            self.runs_panel.set_label(f"Runs · watching {message.script} on "
                                      f"{message.target} ({message.policy})")
            self.notify(f"watching: a change resubmits {message.script} on {message.target}")
        else:
            self.runs_panel.set_label("Runs")
            self.notify("watch off")

    @while_open
    def on_watch_triggered(self, message: WatchTriggered) -> None:
        event = message.event
        if event.run is not None:
            self.runs_panel.reload()
            self.runs_panel.select(event.run.id)
        self.notify(event.describe(), severity="error" if event.error else "information")

    # ------------------------------------------------------------------ views

    def action_compare(self) -> None:
        ids, problem = self.runs_panel.compare_pair()
        if problem:
            self.notify(problem, severity="warning")
            return
        self.reads.request(self, "compare", lambda: self._read_compared(ids))

    def _read_compared(self, ids: list[str]) -> CompareLoaded:
        """On the store thread: the runs with their metrics (series cut to their tails)."""
        records = []
        try:
            for run_id in ids:
                record = self.engine.get(run_id, with_metrics=False)
                record.metrics = self.engine.store.metrics_tail(record.id, COMPARE_TAIL)
                records.append(record)
        except LabdeckError as err:  # deleted meanwhile
            return CompareLoaded([], one_line(err))
        return CompareLoaded(records)

    @while_open
    def on_compare_loaded(self, message: CompareLoaded) -> None:
        from .screens.compare import CompareScreen

        if message.problem:
            self.notify(message.problem, severity="error")
        elif not isinstance(self.screen, CompareScreen):
            key = self.runs_panel.sort_key  # a metric the runs are sorted by orders them here
            self.push_screen(CompareScreen(message.records, key.removeprefix("m:")))

    def action_open_log(self) -> None:
        record = self.require_run()
        if record is not None:
            from .screens.full_log import FullLogScreen

            self.push_screen(FullLogScreen(self.engine.log_path(record.id), record.id))

    def action_toggle_details(self) -> None:
        tabs = self.query_one(TabbedContent)
        tabs.active = "tab-details" if tabs.active == "tab-log" else "tab-log"

    def action_help(self) -> None:
        from .screens.help import HelpScreen

        self.push_screen(HelpScreen(self.user_keymap))

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = True) -> None:
        """Shown for a while, and kept: ``e`` lists every message of the session."""
        self.notices.append(Notice(time.time(), severity, title, message))
        del self.notices[:-MAX_NOTICES]
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    def action_notifications(self) -> None:
        from .screens.notifications import NotificationsScreen

        self.push_screen(NotificationsScreen(list(self.notices)))


    def on_unmount(self) -> None:
        self.reads.close()


def run_app(engine: Engine, target: str = "local", submit_script: str | None = None) -> None:
    """``labdeck`` / ``labdeck ui``: open the dashboard; runs go on after it closes."""
    engine.store  # noqa: B018 -- a damaged store is one line before the screen opens
    app = LabdeckApp(engine, target=target, submit_script=submit_script)
    try:
        app.run()
    finally:
        # The store thread's last read ends before its connection is closed (the interpreter's
        # exit would wait for that thread anyway).
        app.reads.close(wait=True)
        engine.close()
    if app.return_code:  # a crash inside the app: Textual printed it; the status says so
        raise SystemExit(app.return_code)


__all__ = ["LabdeckApp", "run_app"]
