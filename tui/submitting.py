"""The submit path of the CLI, free of click: shared by ``labdeck submit`` through click and by
the plain ``labdeck submit [-c NAME] [-a] SCRIPT [ARGS...]`` that ``entry.py`` runs without ever
importing click or building the command tree (~50 ms). Also the one-line error handling.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing itself costs ~4 ms of a submit's start
if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path
    from typing import Any


def echo(message: str, err: bool = False) -> None:
    stream = sys.stderr if err else sys.stdout
    stream.write(f"{message}\n")
    stream.flush()


class Ctx:
    def __init__(self, project_dir: Path | None):
        self.project_dir = project_dir
        self._engine: Any = None
        self.pending: Any = None  # a supervisor forked ahead (fast_submit)
        self.trace_file: str | None = None  # the run's supervisor.log (LABDECK_TRACE)

    @property
    def engine(self) -> Any:
        if self._engine is None:
            from backends.engine import Engine
            from backends.project import find_project

            self._engine = Engine(find_project(explicit=self.project_dir), fork_supervisors=True)
        return self._engine


def warn(message: str) -> None:
    echo(f"labdeck: warning: {message}", err=True)


def show_warnings(target: Any) -> None:
    for warning in target.warnings:
        warn(str(warning))


def do_submit(
    obj: Ctx,
    target: str,
    run_async: bool,
    explain: bool,
    script: str | None,
    args: list[str],
    watch: bool = False,
    policy: str = "cancel",
    meta: Any = None,
) -> None:
    engine = obj.engine
    if explain:
        echo(engine.explain(target, script, args).render())
        return
    if watch:
        from .watch_cli import watch_and_submit

        sys.exit(watch_and_submit(engine, target, script, args, policy))
    resolved = engine.project.resolve(target)
    show_warnings(resolved)
    record = engine.submit(target, script, args, target=resolved, pending=obj.pending, meta=meta)
    obj.pending = None  # handed over, or ended by submit
    import gc

    gc.enable()  # fast_submit's pause ends (submit froze what is loaded: it is not walked again)
    from backends import phasetrace

    phasetrace.mark("cli-submitted")
    obj.trace_file = str(engine.project.run_dir(record.id) / "supervisor.log")
    echo(f"run {record.id} submitted to {record.target}", err=True)
    echo(record.id)
    if run_async:
        return
    from .follow import follow

    try:
        final = follow(engine, record.id)
    except KeyboardInterrupt:
        final = detached(engine, record.id)
    from .cli_style import on, status

    summary = f"run {final.id} {status(final.status.value, on(sys.stderr))}"
    if final.exit_code is not None:
        summary += f" (exit code {final.exit_code})"
    if final.error and final.status.value != "completed":
        summary += f": {final.error}"
    echo(summary, err=True)
    sys.exit(exit_status(final))


CANCEL_WINDOW_S = 3.0  # a second Ctrl-C within it cancels the run


def detached(engine: Any, run_id: str) -> Any:
    """The first Ctrl-C of a foreground submit: the run goes on without us (exit 130), unless a
    second Ctrl-C comes within ``CANCEL_WINDOW_S``: then it is canceled, and its final record
    returned once it has ended (a third Ctrl-C stops waiting; the cancel stands)."""
    import time

    try:
        echo(f"\nlabdeck: detached; run {run_id} goes on (labdeck runs logs {run_id} -f). "
             f"Cancel it: labdeck runs cancel {run_id}, or Ctrl-C again within "
             f"{CANCEL_WINDOW_S:.0f} s", err=True)
        time.sleep(CANCEL_WINDOW_S)
    except KeyboardInterrupt:
        pass
    else:
        sys.exit(130)
    try:
        record = engine.cancel(run_id)
        echo(f"labdeck: canceling run {run_id}; waiting for it to end", err=True)
        return wait_terminal(engine, record)
    except KeyboardInterrupt:
        echo(f"labdeck: stopped waiting; the cancel of run {run_id} goes on", err=True)
        sys.exit(130)


def wait_terminal(engine: Any, record: Any) -> Any:
    """The run's record once terminal (a dead supervisor is noticed, as ``follow`` does)."""
    import select
    import time

    last_reconcile = time.monotonic()
    while not record.status.is_terminal():
        done = engine.done_fd(record.id)
        if done is not None:
            if select.select([done], [], [], 0.1)[0]:
                engine.forget_done_fd(record.id)
        else:
            time.sleep(0.05)
        record = engine.store.get(record.id, with_metrics=False)
        if not record.status.is_terminal() and time.monotonic() - last_reconcile > 2.0:
            record = engine.reconcile(record)
            last_reconcile = time.monotonic()
    return record


def exit_status(record: Any) -> int:
    if record.exit_code is not None:
        return int(record.exit_code) if record.exit_code >= 0 else 128 - int(record.exit_code)
    return 0 if record.status.value == "completed" else 1


def guarded(func: Callable[..., None], *args: Any) -> None:
    """Errors are one line on stderr with their exit status; a bug's traceback goes to a file."""
    from backends.errors import LabdeckError

    try:
        func(*args)
    except LabdeckError as err:
        from .cli_style import error_line, on

        echo(error_line(str(err), on(sys.stderr)), err=True)
        for line in getattr(err, "details", []):
            echo(f"  {line}", err=True)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(1)
    except Exception as err:  # a bug: one line for the person, the traceback in a file
        sys.exit(report_crash(err))


def report_crash(err: Exception) -> int:
    import traceback

    path = crash_log_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(traceback.format_exc())
        where = f"; details in {path}"
    except OSError:
        where = ""
    echo(f"labdeck: internal error: {type(err).__name__}: {err}{where}", err=True)
    return 70


def crash_log_path() -> Path:
    """Where a bug's traceback goes: the project's own ``.labdeck/crash.log``, else the
    user's state folder (never one file in the system's temp folder that every user and project
    would overwrite)."""
    from pathlib import Path

    from backends.errors import LabdeckError
    from backends.project import find_project

    try:
        return find_project().state_dir / "crash.log"
    except (LabdeckError, OSError):
        base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
        return Path(base) / "labdeck" / "crash.log"


def plain_submit(args: list[str]) -> tuple[str, bool, str, list[str]] | None:
    """``submit [-c|--target NAME] [-a|--async] SCRIPT [ARGS...]`` as (target, async, script,
    args); None for anything else (other verbs, --explain, --watch, --help, --project...)."""
    if args[:1] != ["submit"]:
        return None
    target, run_async, i = "local", False, 1
    while i < len(args):
        arg = args[i]
        if arg in ("-a", "--async"):
            run_async, i = True, i + 1
        elif arg in ("-c", "--target") and i + 1 < len(args) and not args[i + 1].startswith("-"):
            target, i = args[i + 1], i + 2
        elif arg.startswith("-"):
            return None
        else:
            return target, run_async, arg, args[i + 1 :]
    return None


def fast_submit(argv: list[str]) -> None:
    """Run a plain submit without click, and exit; return (having done nothing) if it is not."""
    plain = plain_submit(argv)
    if plain is None or os.environ.get("LABDECK_FAST_SUBMIT") == "0":
        return
    target, run_async, script, args = plain
    # No cyclic collection until the run is handed over: the imports and the submit allocate
    # enough to trigger ~20 collections (~8% of the CLI's CPU) that free nothing. do_submit turns
    # it back on for the follow; a supervisor forked meanwhile does at its start (zygote.py).
    import gc

    gc.disable()
    obj = Ctx(None)
    if os.environ.get("LABDECK_EARLY_FORK") != "0":
        # What both processes need is loaded once, before the fork; then the supervisor-to-be
        # loads asyncio and the backend on the other CPU while this one loads the engine and
        # plans, snapshots and records the run (Engine.submit hands it the run, or ends it).
        import backends.base
        import backends.project
        import backends.runspec
        import backends.store  # noqa: F401
        from backends import phasetrace
        from backends.zygote import early_fork

        phasetrace.mark("cli-fork")
        obj.pending = early_fork(target)
    code: object = 0
    try:
        guarded(do_submit, obj, target, run_async, False, script, args)
    except SystemExit as done:
        code = done.code
    finally:
        if obj.pending is not None:
            obj.pending.abort()  # a no-op once it was handed the run
    quick_exit(code, obj.trace_file)


def quick_exit(code: object, trace_file: str | None = None) -> None:
    """Exit without the interpreter's teardown (~3 ms of freeing modules and objects at the end
    of every submit): the run is recorded and handed over, and nothing else is left to do."""
    from backends import phasetrace

    phasetrace.mark("cli-exit")
    phasetrace.write("cli", trace_file)
    if code is not None and not isinstance(code, int):
        echo(str(code), err=True)
        code = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (BrokenPipeError, ValueError):
        code = code or 1
    os._exit(code or 0)
