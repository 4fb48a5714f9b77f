"""How a local run's process is started, without asyncio: by the supervisor-to-be the moment its
run arrives (``begin``, registry.EARLY: the script's own start then overlaps the supervisor's
loading of asyncio), or by ``LocalBackend.start`` otherwise, the same way.

``posix_spawn`` (no fork of the supervisor, no asyncio child watcher, no ``subprocess``): the
script gets its own session (a cancel signals its whole process group), /dev/null as stdin, one
pipe each for stdout and stderr (widened to 1 MiB, so a chatty script runs ahead of the reader),
every signal at its default action and none blocked (the supervisor-to-be ignores SIGTERM until
its handler is in place; an exec keeps ignored signals ignored). The supervisor becomes the
child subreaper first, so that what the script double-forks stays findable.
"""

from __future__ import annotations

import fcntl  # here, not in spawn: loaded in the warm phase, off the run's path to its start
import os
import signal
import sys

from . import procutil
from .base import EarlyWork, RunContext
from .config import Compute
from .errors import TargetError
from .project import Project, Target
from .runspec import RunSpec

PIPE_SIZE = 1 << 20  # the most an unprivileged process may ask (fs/pipe-max-size's default)
PYSPARK = "PySpark"  # spark/plan.py's (which loads asyncio)
# Signals the script gets at their default action whatever the supervisor does with them.
_DEFAULT_SIGNALS = frozenset(
    getattr(signal, name) for name in (
        "SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGPIPE", "SIGXFSZ", "SIGXCPU", "SIGCHLD",
        "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGTSTP", "SIGTTIN", "SIGTTOU",
    ) if hasattr(signal, name)
)


class LocalProcess(EarlyWork):
    """A started script: its pid (also its process group's id) and the read ends of its
    stdout and stderr pipes (non-blocking). Whoever takes it up owns the fds and the reaping."""

    def __init__(self, pid: int, out_fd: int, err_fd: int):
        self.pid = pid
        self.out_fd = out_fd
        self.err_fd = err_fd

    def discard(self) -> None:
        """Kill the script's whole tree, reap it, close the pipes (a run that does not go on)."""
        pids = procutil.descendants(os.getpid())
        procutil.signal_tree(self.pid, pids, signal.SIGKILL)
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass
        procutil.wait_gone(pids, 2.0)
        self.close_pipes()

    def close_pipes(self) -> None:
        """Close the read ends (once: a number closed twice may be another file's by then)."""
        for fd in (self.out_fd, self.err_fd):
            if fd >= 0:
                os.close(fd)
        self.out_fd = self.err_fd = -1


def interpreter(compute: Compute) -> str:
    wanted = compute.python_location or sys.executable
    if os.path.dirname(wanted):  # a path: shutil.which's check, without importing shutil
        usable = os.access(wanted, os.F_OK | os.X_OK) and not os.path.isdir(wanted)
        found: str | None = wanted if usable else None
    else:
        import shutil

        found = shutil.which(wanted)
    if found is None:
        where = f" ({compute.path})" if compute.path else ""
        raise TargetError(f"pythonLocation {wanted!r} not found{where}")
    return found


def run_env(compute: Compute, ctx: RunContext) -> dict[str, str]:
    """The run's variables as the local target gives them (without Spark's: local.py adds
    those for a PySpark run)."""
    from .metrics import SHIM_DIR

    env = dict(ctx.env)
    share = compute.share_dir(ctx.project.name)
    if share is not None:  # Workbench's per-project folder shared by all runs
        # With the separator at the end, as Workbench gave it: scripts write
        # os.environ["AZUREML_NATIVE_SHARE_DIRECTORY"] + "model.pkl".
        env["AZUREML_NATIVE_SHARE_DIRECTORY"] = os.path.join(str(share), "")
    # The shim first; the runconfig's PYTHONPATH (EnvironmentVariables) and then this
    # machine's are kept behind it.
    paths = [str(SHIM_DIR), ctx.env.get("PYTHONPATH", ""), os.environ.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    return env


def is_spark(ctx: RunContext) -> bool:
    """As spark/plan.py's ``is_spark``, which cannot be loaded before asyncio."""
    try:
        return RunSpec.load(ctx.run_dir).framework == PYSPARK
    except (OSError, ValueError, TypeError):
        return ctx.target.runconfig.framework == PYSPARK


def make_dirs(compute: Compute, ctx: RunContext) -> None:
    """What a local run needs before its start: the shared folder, and outputs/ (Workbench made
    it before every run; real scripts write ./outputs/model.pkl without creating it)."""
    compute.make_share_dir(ctx.project.name)
    try:
        os.makedirs(ctx.workdir / "outputs", exist_ok=True)
    except OSError as err:
        raise TargetError(f"cannot create {ctx.workdir / 'outputs'}: "
                          f"{err.strerror or err}") from err


def spawn(command: list[str], cwd: str, env: dict[str, str]) -> LocalProcess:
    """Start ``command`` in ``cwd`` in its own session; its stdout and stderr are pipes to us.

    posix_spawn cannot change the child's folder in this Python (3.13 adds it): the caller's is
    changed around the spawn and restored (the supervisor's paths are all absolute)."""
    procutil.become_subreaper()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    here = os.open(".", os.O_RDONLY | os.O_CLOEXEC)
    try:
        for fd in (out_r, err_r):
            try:
                fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
            except OSError:  # over the system's limit: as it is
                pass
            os.set_blocking(fd, False)
        os.chdir(cwd)
        try:
            pid = os.posix_spawn(
                command[0], command, env,
                file_actions=[(os.POSIX_SPAWN_DUP2, null, 0), (os.POSIX_SPAWN_DUP2, out_w, 1),
                              (os.POSIX_SPAWN_DUP2, err_w, 2)],
                setsid=True,  # its own session and process group: cancel reaches every child
                setsigmask=(),
                setsigdef=_DEFAULT_SIGNALS,
            )
        finally:
            os.fchdir(here)
    except OSError as err:
        os.close(out_r)
        os.close(err_r)
        raise TargetError(f"cannot start {command[0]}: {err.strerror or err}") from err
    finally:
        for fd in (out_w, err_w, null, here):
            os.close(fd)
    return LocalProcess(pid, out_r, err_r)


def command_of(ctx: RunContext, python: str) -> list[str]:
    return [python, *ctx.argv]


def start_plain(ctx: RunContext, python: str) -> LocalProcess:
    """A plain (not Spark, no sharedVolumes baseline) local run's start, whoever calls it."""
    from . import phasetrace

    make_dirs(ctx.compute, ctx)
    env = {**os.environ, **run_env(ctx.compute, ctx)}
    if phasetrace.ENABLED:  # the script notes its start there (shim/sitecustomize.py)
        env[phasetrace.FILE_ENV] = str(ctx.run_dir / "supervisor.log")
    return spawn(command_of(ctx, python), os.fspath(ctx.workdir), env)


def eligible(ctx: RunContext) -> bool:
    """Runs begun early: all but PySpark (spark-submit, its checks), sharedVolumes (the
    outputs' baseline is taken first) and GPUs (a local target refuses them)."""
    # (A compute asking for GPUs is refused before anything starts: no early start for it.)
    return not ctx.compute.shared_volumes and ctx.compute.gpus is None and not is_spark(ctx)


def warm(project: Project, target: Target) -> bool:
    """Before the run arrives (the client still records it): become the subreaper (ctypes off
    the run's path) and, for a run ``begin`` will start, load its supervisor
    (syncsupervisor.py, no asyncio) and say so: True, and the supervisor-to-be then only waits
    for the run. False (PySpark, sharedVolumes, GPUs): it goes on loading asyncio meanwhile."""
    procutil.become_subreaper()
    compute = target.compute
    if compute.shared_volumes or compute.gpus is not None or \
            target.runconfig.framework == PYSPARK:
        return False
    from . import syncsupervisor  # noqa: F401

    return True


def begin(ctx: RunContext) -> LocalProcess | None:
    """registry.EARLY: start the script now; None (the usual start later) when not eligible.
    Errors are the usual path's to report (it redoes the start)."""
    if not eligible(ctx):
        return None
    python = interpreter(ctx.compute)
    # The run's log is there when its script starts, as when the supervisor starts it.
    os.close(os.open(ctx.run_dir / "log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666))
    return start_plain(ctx, python)
