"""A local run's script is started by its supervisor-to-be the moment the run arrives, without
waiting for asyncio (backends/localstart.py; a plain run's supervisor, syncsupervisor.py, never
loads it); a cancel right after the start still stops the whole tree.

Made deterministic by a gate on the CLI's PYTHONPATH (a ``sitecustomize``): in a process forked
from the CLI (the supervisor-to-be), importing asyncio fails while the run has not arrived (its
preloading skips it) and, once it has, waits until a file exists (at most 30 s, then notes that
it gave up). Without the early start the script would only start after that import.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from backends import procutil
from tests.conftest import REPO, Project

GATE = """
import os, sys, time
_gate = os.environ.get("LABDECK_TEST_ASYNCIO_GATE")
_cli = os.getpid()


class _Gate:
    def find_spec(self, name, path=None, target=None):
        if name != "asyncio" or os.getpid() == _cli:
            return None
        try:
            arrived = os.readlink("/proc/self/fd/1").endswith("supervisor.log")
        except OSError:
            arrived = False
        if not arrived:
            raise ImportError("asyncio: held by the test's gate until the run arrives")
        deadline = time.monotonic() + 30
        while not os.path.exists(_gate) and time.monotonic() < deadline:
            time.sleep(0.01)
        if not os.path.exists(_gate):
            open(_gate + ".gave-up", "w").close()
        sys.meta_path.remove(self)
        return None


if _gate:
    sys.meta_path.insert(0, _Gate())
"""


def gated_env(tmp_path: Path) -> tuple[dict[str, str], Path]:
    folder = tmp_path / "gate"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(GATE)
    gate = tmp_path / "gate-open"
    env = {"PYTHONPATH": f"{folder}{os.pathsep}{REPO}", "LABDECK_TEST_ASYNCIO_GATE": str(gate)}
    return env, gate


def status(project: Project, run_id: str) -> dict[str, object]:
    shown = project.cli("runs", "show", run_id, "-o", "json", check=True).stdout
    result: dict[str, object] = json.loads(shown)
    return result


def wait_terminal(project: Project, run_id: str) -> dict[str, object]:
    deadline = time.monotonic() + 60
    while True:
        shown = status(project, run_id)
        if shown["status"] not in {"queued", "preparing", "running"}:
            return shown
        assert time.monotonic() < deadline, shown
        time.sleep(0.1)


def test_script_starts_before_the_supervisor_loads_asyncio(project: Project,
                                                           tmp_path: Path) -> None:
    env, gate = gated_env(tmp_path)
    project.write("opens.py", f"""
        open({str(gate)!r}, "w").close()  # lets the supervisor's asyncio import go on
        print("started early")
    """)
    result = project.cli("submit", "opens.py", env=env, timeout=90)
    assert result.returncode == 0, result.stderr
    assert "started early" in result.stdout
    assert not Path(str(gate) + ".gave-up").exists()  # the script started while it waited


def test_cancel_while_the_supervisor_loads_stops_the_early_tree(project: Project,
                                                               tmp_path: Path) -> None:
    env, gate = gated_env(tmp_path)
    project.write("spawner.py", """
        import os, subprocess, sys, time
        kid = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        if os.fork() == 0:  # a double-forked daemon in its own session
            os.setsid()
            if os.fork() == 0:
                time.sleep(600)
            os._exit(0)
        with open("../pids.txt", "w") as fh:
            fh.write(f"{os.getppid()} {os.getpid()} {kid.pid}")
        time.sleep(600)
    """)
    result = project.cli("submit", "-a", "spawner.py", env=env, check=True)
    run_id = result.stdout.split()[0]
    run_dir = project.root / ".labdeck" / "runs" / run_id
    deadline = time.monotonic() + 60
    while not (run_dir / "pids.txt").exists():
        assert time.monotonic() < deadline, "the script did not start while the gate was shut"
        time.sleep(0.05)
    time.sleep(0.3)  # the daemon has forked by now
    supervisor, script, kid = (int(p) for p in (run_dir / "pids.txt").read_text().split())
    tree = [script, kid, *procutil.descendants(supervisor)]
    assert len(set(tree)) >= 3, tree  # script, its child, the daemon (re-parented to us)
    project.cli("runs", "cancel", "--no-wait", run_id, check=True)
    gate.touch()
    shown = wait_terminal(project, run_id)
    assert shown["status"] == "canceled", shown
    deadline = time.monotonic() + 10
    while any(procutil.alive(p) for p in tree):
        assert time.monotonic() < deadline, [p for p in tree if procutil.alive(p)]
        time.sleep(0.05)
    for pid in tree:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert not Path(str(gate) + ".gave-up").exists()
