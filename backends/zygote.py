"""A pre-loaded, single-threaded helper that forks run supervisors for threaded clients.

Forking is the fast way to start a supervisor (no interpreter start, no re-imports), but a client
with threads (the dashboard, watch mode) must not fork itself. It starts this process once instead;
each request names a run and carries the client's "done" pipe (SCM_RIGHTS), and the zygote forks a
detached supervisor for it. When the client goes, the socket closes and the zygote exits; the
supervisors it forked live on in their own sessions.

    python -m backends.zygote FD
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys

PRELOAD = ("backends.supervisor", "backends.local", "backends.docker")


def fork_detached_supervisor(root: str, run_id: str, reattach: bool, log_path: str,
                             keep_fd: int | None) -> int:
    """Fork; the child becomes the run's supervisor in its own session and never returns."""
    pid = os.fork()
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
        from . import supervisor

        code = supervisor.main([root, run_id] + (["--reattach"] if reattach else []))
    except BaseException:  # nothing may escape into the parent's code path
        import traceback

        traceback.print_exc()
    finally:
        os._exit(code)


def serve(sock: socket.socket) -> None:
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
