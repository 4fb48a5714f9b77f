"""A pre-loaded, single-threaded helper that forks run supervisors for threaded clients.

Forking is the fast way to start a supervisor (no interpreter start, no re-imports), but a client
with threads (the dashboard, watch mode) must not fork itself. It starts this process once instead;
each request names a run and carries the client's "done" pipe (SCM_RIGHTS), and the zygote forks a
detached supervisor for it. When the client goes, the socket closes and the zygote exits; the
supervisors it forked live on in their own sessions.

    python -m backends.zygote FD
"""

from __future__ import annotations

import json  # ~2 ms; the run's hand-off is a small JSON list
import os
import signal
import sys

from . import phasetrace

TYPE_CHECKING = False  # importing typing costs ~4 ms before the early fork
if TYPE_CHECKING:
    import socket
    from typing import Any

PRELOAD = ("backends.supervisor", "backends.local", "backends.docker.backend")
# What a supervisor forked ahead of its run loads while the client still works (early_fork), a
# step at a time: it stops where the run arrives (prestart.py), so asyncio's own chain is split.
EARLY_PRELOAD = ("backends.prestart", "socket", "selectors", "inspect", "concurrent.futures",
                 "ssl", "asyncio", "backends.supervisor", "backends.local")


class PendingSupervisor:
    """The client's end of a supervisor forked before its run exists (``early_fork``).

    The child loads the supervisor's modules on the other CPU while the client parses, resolves,
    snapshots and records the run; ``start`` then hands it the run over a pipe. Until then it has
    no store connection and no run: ``abort`` (or the client's death: EOF) ends it, recording
    nothing."""

    def __init__(self, pid: int, go_w: int, done_r: int, knows_target: bool = False):
        self.pid = pid
        self.done_r = done_r  # reads EOF when the supervisor exits
        self._go_w: int | None = go_w
        self._knows_target = knows_target  # early_fork(target): it readied the early start

    def preload(self, module: str, early: str = "") -> None:
        """Have it import the run's backend now, while the client still snapshots and records;
        ``early`` (the backend's asyncio-free start, prestart.py) before anything else.
        Nothing is sent that it does already (a line wakes it while the client works): the early
        start when it was forked knowing the target (it decided from prestart.warm), a module
        among its own steps (EARLY_PRELOAD)."""
        if self._knows_target:
            early = ""
        if module in EARLY_PRELOAD:
            module = ""
        if self._go_w is not None:
            lines = f"early {early}\n" if early else ""
            lines += f"preload {module}\n" if module else ""
            if lines:
                try:
                    os.write(self._go_w, lines.encode())
                except OSError:
                    pass  # it died: start() says so, and the client starts another supervisor

    def start(self, root: str, run_id: str, reattach: bool, log_path: str) -> int:
        """Hand the run over; from now on it is the run's detached supervisor."""
        assert self._go_w is not None, "a pending supervisor starts one run"
        message = json.dumps([root, run_id, reattach, log_path]).encode() + b"\n"
        try:
            os.write(self._go_w, message)  # far below PIPE_BUF: one atomic write
        except OSError:
            self.abort()  # it died before its run (EPIPE): reaped; the caller starts another
            raise
        os.close(self._go_w)
        self._go_w = None
        return self.pid

    def abort(self) -> None:
        """No run for it after all: end it and reap it, so nothing outlives the client."""
        if self._go_w is None:
            return
        os.close(self._go_w)
        self._go_w = None
        os.close(self.done_r)
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


def early_fork(target: str | None = None) -> PendingSupervisor:
    """Fork the supervisor-to-be now, before the client knows its run (single-threaded callers
    only, and before they open the store: no SQLite connection may cross a fork). ``target``
    (what ``-c`` named, when the caller knows it) lets it get the run's early start ready
    meanwhile (prestart.warm)."""
    go_r, go_w = os.pipe()
    done_r, done_w = os.pipe()  # closes when the supervisor exits: an instant "run ended"
    sys.stdout.flush()
    sys.stderr.flush()
    pid = _fork_ignoring_sigterm()
    if pid:
        os.close(go_r)
        os.close(done_w)
        os.set_inheritable(done_r, False)
        return PendingSupervisor(pid, go_w, done_r, knows_target=target is not None)
    code = 1
    early = None
    phasetrace.forget()
    phasetrace.mark("sup-forked")
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.setsid()  # out of the terminal's session at once: the client's Ctrl-C is not ours
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        low, high = sorted((go_r, done_w))
        os.closerange(3, low)
        os.closerange(low + 1, high)
        os.closerange(high + 1, 1 << 16)
        ready = None
        if target is not None:
            from . import prestart

            ready = prestart.warm(target)
            phasetrace.mark("sup-warmed")
        run = _await_run(go_r, list(EARLY_PRELOAD), ready)
        phasetrace.mark("sup-run-received")
        _gc_resume()
        if run is None:
            code = 0  # the client recorded no run (an error, --help...) or died first
        else:
            (root, run_id, reattach, log_path), later = run
            out = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(out, 1)
            os.dup2(out, 2)
            os.close(out)
            if not reattach:
                from pathlib import Path

                from . import prestart
                from .project import Project

                early = prestart.begin(Project(Path(root)), run_id)
                phasetrace.mark("sup-early-begun")
            from . import syncsupervisor

            if syncsupervisor.takes(early):  # a plain local run: no asyncio at all
                assert early is not None
                code = syncsupervisor.main(early, done_fd=done_w)
            else:
                for module in later:  # what the run did not arrive in time for (asyncio...)
                    _preload(module)
                phasetrace.mark(f"sup-preloaded({len(later)} left)")
                from . import supervisor

                # It closes done_w once the run's status is final: the client wakes then,
                # not after this process is torn down.
                code = supervisor.main([root, run_id] + (["--reattach"] if reattach else []),
                                       early=early, done_fd=done_w)
    except BaseException:  # nothing may escape into the client's code path
        import traceback

        traceback.print_exc()
        if early is not None and early.early is not None:  # begun, then never taken up
            early.early.discard()
    finally:
        os._exit(code)


def _gc_resume() -> None:
    """The supervisor's cyclic collector on for its run (it may last days) when its client had
    paused it (the CLI's submit does: submitting.fast_submit); what was loaded so far is frozen
    first, so no collection walks it again."""
    import gc

    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def _fork_ignoring_sigterm() -> int:
    """``os.fork()``, the child born ignoring SIGTERM until the supervisor installs its handler.

    A cancel's SIGTERM may come as soon as the client recorded the child's pid, while it still
    loads modules or starts a container: it must not die then, with a container running and
    no one to record its end. The cancel is not lost: its store flag is set before the signal,
    and the supervisor reads it. SIGTERM is blocked across the fork, so there is no moment when
    the child has the default action, and one sent to the parent meanwhile is delivered after."""
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    return pid


def _await_run(go_r: int, steps: list[str],
               early: bool | None = None) -> tuple[list[Any], list[str]] | None:
    """Import ``steps`` one at a time until the client hands over the run, then stop: the run's
    backend may begin it before asyncio is loaded (prestart.py). Lines on the pipe: any number
    of "preload MODULE" (imported after the steps) and "early MODULE" (imported at once; no
    step after it), then the run as one JSON list, then EOF. Returns the run and the imports
    still to do; None when the client closed the pipe without a run. ``early``: whether the
    run's early start was readied already (None: not known yet, the "early" line tells)."""
    import select

    decided = early is not None
    pending, run = b"", None
    while True:
        if steps and not early and not select.select([go_r], [], [], 0)[0]:
            _preload(steps.pop(0))
            continue
        chunk = os.read(go_r, 65536)
        if not chunk:
            break
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            if line.startswith(b"preload "):
                steps.append(line[8:].decode())
            elif line.startswith(b"early "):
                if not decided:
                    # The run's backend begins it before asyncio: load that, then only wait
                    # (an import under way when the run arrives would delay its start).
                    early = True
                    _preload(line[6:].decode())
            else:
                run = line
    os.close(go_r)
    return (json.loads(run), steps) if run is not None else None


def _preload(module: str) -> None:
    try:
        __import__(module)
    except ImportError:
        pass  # the supervisor reports it when it loads the backend itself


def fork_detached_supervisor(root: str, run_id: str, reattach: bool, log_path: str,
                             keep_fd: int | None) -> int:
    """Fork; the child becomes the run's supervisor in its own session and never returns."""
    pid = _fork_ignoring_sigterm()
    if pid:
        return pid
    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.setsid()
        null = os.open(os.devnull, os.O_RDONLY)
        out = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        # Nothing of the parent's but the done pipe (closed when this process exits).
        if keep_fd is None:
            os.closerange(3, 1 << 16)
        else:
            os.closerange(3, keep_fd)
            os.closerange(keep_fd + 1, 1 << 16)
        _gc_resume()  # a supervisor may run for days: its cycles are collected
        from . import supervisor

        code = supervisor.main([root, run_id] + (["--reattach"] if reattach else []),
                               done_fd=keep_fd)
    except BaseException:  # nothing may escape into the parent's code path
        import traceback

        traceback.print_exc()
    finally:
        os._exit(code)


def serve(sock: socket.socket) -> None:
    import socket

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps our children
    while True:
        try:
            msg, fds, _flags, _addr = socket.recv_fds(sock, 65536, 1)
        except (ConnectionResetError, OSError):
            return
        if not msg:
            return  # the client is gone
        done_w = fds[0] if fds else None
        try:
            root, run_id, reattach, log_path = json.loads(msg)
            pid = fork_detached_supervisor(root, run_id, bool(reattach), log_path, done_w)
            reply = str(pid)
        except Exception as err:  # a bad request must not end the zygote
            reply = f"error {err}"
        finally:
            if done_w is not None:
                os.close(done_w)
        sock.sendall(reply.encode())


def main(argv: list[str]) -> int:
    import socket

    sock = socket.socket(fileno=int(argv[0]))
    for module in PRELOAD:
        try:
            __import__(module)
        except ImportError:
            pass  # a backend's optional dependency is missing: load it in the child if needed
    serve(sock)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
