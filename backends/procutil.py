"""Process-tree helpers for local runs: find every descendant, stop them all."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Orphaned descendants of this process re-parent to it instead of init, so a script's
    double-forked children stay findable (and killable) through the parent links."""
    global _subreaper
    if _subreaper is not None and _subreaper[0] == os.getpid():  # once per process
        return _subreaper[1]
    import ctypes  # only the supervisor needs it

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        done = bool(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        done = False
    _subreaper = (os.getpid(), done)
    return done


_subreaper: tuple[int, bool] | None = None  # (pid, result): a fork's child is not a subreaper


def set_title(title: str) -> None:
    """What ``ps -ef`` and ``pgrep -f`` show for this process (its command line, rewritten in
    place by setproctitle; a forked supervisor would otherwise show its client's command), and
    its short name (``comm``: ``ps -e``, ``pgrep``), 15 bytes at most."""
    setter = _setproctitle()
    if setter is not None:
        setter(title)
    try:
        with open("/proc/self/comm", "w") as fh:
            fh.write(title.encode()[:15].decode(errors="ignore"))
    except OSError:
        pass


def _setproctitle() -> Callable[[str], None] | None:
    """setproctitle's C function, its extension loaded alone: the package's ``__init__``
    imports ``logging`` (5-50 ms on a busy machine: more than a supervisor's whole start-up
    budget) for a debug message. None when it is not installed (the short name only, then)."""
    import importlib.machinery as machinery

    spec = machinery.PathFinder.find_spec("setproctitle")
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        for suffix in machinery.EXTENSION_SUFFIXES:
            path = os.path.join(folder, "_setproctitle" + suffix)
            if os.path.exists(path):
                name = "setproctitle._setproctitle"
                loader = machinery.ExtensionFileLoader(name, path)
                try:
                    module = loader.create_module(machinery.ModuleSpec(name, loader,
                                                                       origin=path))
                    loader.exec_module(module)
                    setter: Callable[[str], None] = module.setproctitle
                    return setter
                except (ImportError, AttributeError):
                    return None
    return None


def _parents() -> dict[int, int]:
    parents: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses
        fields = stat[stat.rfind(")") + 2 :].split()
        parents[int(entry.name)] = int(fields[1])
    return parents


def descendants(root: int) -> list[int]:
    parents = _parents()
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    out: list[int] = []
    stack = list(children.get(root, []))
    while stack:
        pid = stack.pop()
        out.append(pid)
        stack.extend(children.get(pid, []))
    return out


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is dead for our purposes
        state = Path(f"/proc/{pid}/stat").read_text()
        return state[state.rfind(")") + 2] != "Z"
    except OSError:
        return False


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot: with the pid, a unique identity."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rfind(")") + 2 :].split()[19])


def signal_tree(pgid: int | None, pids: list[int], sig: signal.Signals) -> None:
    if pgid is not None:
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            pass
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def wait_gone(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    left = [p for p in pids if alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = [p for p in left if alive(p)]
    return left


def leftovers(script_pid: int) -> list[int]:
    """What a run's script left behind (daemons, double forks): the supervisor, a subreaper,
    has them among its descendants; everything there but the script itself."""
    return [p for p in descendants(os.getpid()) if p != script_pid]


def stop_leftovers(script_pid: int, grace: float) -> None:
    """SIGTERM to the leftovers, SIGKILL to those still there after ``grace``."""
    pids = leftovers(script_pid)
    signal_tree(script_pid, pids, signal.SIGTERM)
    left = wait_gone(pids, grace)
    if left:
        signal_tree(script_pid, left, signal.SIGKILL)
        wait_gone(left, 2.0)
