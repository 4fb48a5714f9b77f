"""A run's Python output: block-buffered (fast), yet live, complete and in order (issue 13).

Real runs through the CLI, local and (where a daemon is) docker. The CLI runs without an
inherited PYTHONUNBUFFERED (a shell's setting would make the script unbuffered and prove
nothing). Scripts synchronise through files in their working folder (the run's snapshot, which
the test can reach at runs/<id>/snapshot), never through sleeps.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from backends.logfile import LogEntry
from tests.conftest import Project, cli_argv, cli_env
from tests.docker.conftest import docker_ready, dproject  # noqa: F401 -- fixtures

GUARD_S = 60.0

# Waits (polling, with a deadline) for a file named by argv in its working folder.
WAIT = """
import os, time
def wait_for(name):
    deadline = time.monotonic() + 60
    while not os.path.exists(name) and time.monotonic() < deadline:
        time.sleep(0.005)
"""


def cli(project: Project, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = cli_env()
    env.pop("PYTHONUNBUFFERED", None)
    return subprocess.run(cli_argv(*args), cwd=project.root, env=env, capture_output=True,
                          text=True, timeout=timeout)


def submit(project: Project, target: str, script: str, text: str) -> str:
    project.write(script, text)
    res = cli(project, "submit", "-a", "-c", target, script)
    assert res.returncode == 0, res.stderr
    return res.stdout.strip().splitlines()[0]


def run_dir(project: Project, run_id: str) -> Path:
    return project.root / ".labdeck" / "runs" / run_id


def entries(project: Project, run_id: str) -> list[LogEntry]:
    path = run_dir(project, run_id) / "log"
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8", errors="replace")
    return [LogEntry.parse(raw) for raw in text.split("\n")[:-1]]


def script_lines(project: Project, run_id: str) -> list[tuple[str, str]]:
    return [(e.stream, e.text) for e in entries(project, run_id)
            if e.stream in ("out", "err") and not e.progress]


def until(what: str, check: Callable[[], bool], guard: float = GUARD_S) -> None:
    deadline = time.monotonic() + guard
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.01)


def release(project: Project, run_id: str, name: str = "release") -> None:
    (run_dir(project, run_id) / "snapshot" / name).write_text("")


def finish(project: Project, run_id: str) -> dict[str, object]:
    res = cli(project, "runs", "logs", run_id, "-f")
    assert res.returncode == 0, res.stderr
    shown = cli(project, "runs", "show", run_id, "-o", "json")
    data: dict[str, object] = json.loads(shown.stdout)
    return data


TARGETS = ["local", "docker"]


@pytest.fixture(params=TARGETS)
def target(request: pytest.FixtureRequest, project: Project) -> str:
    if request.param == "docker":
        request.getfixturevalue("dproject")  # the daemon, or a skip (a failure in CI)
    return str(request.param)


def test_stdout_is_block_buffered_in_a_run(project: Project, target: str) -> None:
    """The new behaviour itself: no forced unbuffered output (old code: write_through, a
    system call per print)."""
    run_id = submit(project, target, "mode.py", """
        import os, sys
        print("unbuffered" if sys.stdout.write_through else "buffered")
        print("env", os.environ.get("PYTHONUNBUFFERED", "-"))
    """)
    assert finish(project, run_id)["status"] == "completed"
    assert script_lines(project, run_id) == [("out", "buffered"), ("out", "env ")]


def test_a_printed_line_reaches_the_log_while_the_script_waits(project: Project,
                                                                target: str) -> None:
    run_id = submit(project, target, "live.py", WAIT + """
print("first line, not flushed")
wait_for("release")
print("after release")
""")
    until("the line in the log while the script waits",
          lambda: ("out", "first line, not flushed") in script_lines(project, run_id))
    release(project, run_id)
    assert finish(project, run_id)["status"] == "completed"
    assert script_lines(project, run_id)[-1] == ("out", "after release")


@pytest.mark.parametrize("how", ["reconfigure", "flush", "write_through"])
def test_a_script_setting_its_own_buffering_keeps_it(project: Project, target: str,
                                                     how: str) -> None:
    setup = {"reconfigure": "sys.stdout.reconfigure(line_buffering=True)",
             "flush": "", "write_through": "sys.stdout.reconfigure(write_through=True)"}[how]
    end = ", flush=True" if how == "flush" else ""
    run_id = submit(project, target, "own.py", WAIT + f"""
import sys
{setup}
for i in range(3):
    print("own", i{end})
wait_for("release")
""")
    until("its lines while it waits",
          lambda: script_lines(project, run_id) == [("out", f"own {i}") for i in range(3)])
    release(project, run_id)
    assert finish(project, run_id)["status"] == "completed"


def test_stdout_and_stderr_keep_their_order(project: Project) -> None:
    """Each stderr line after the stdout line printed before it, as when both were
    unbuffered (stderr flushes stdout first); the script waits for each pair to be logged
    (local: it can read its run's log), so the supervisor never holds both streams at once."""
    run_id = submit(project, "local", "order.py", """
import os, sys, time
log = os.path.join("..", "log")
for i in range(20):
    print(f"out {i}")
    print(f"err {i}", file=sys.stderr)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and f" err err {i}" not in open(log).read():
        time.sleep(0.002)
""")
    assert finish(project, run_id)["status"] == "completed"
    expected = [pair for i in range(20) for pair in (("out", f"out {i}"), ("err", f"err {i}"))]
    assert script_lines(project, run_id) == expected


def test_crash_flushes_stdout_before_its_traceback(project: Project, target: str) -> None:
    run_id = submit(project, target, "crash.py", """
for i in range(1000):
    print("line", i)
raise RuntimeError("boom")
""")
    assert finish(project, run_id)["status"] == "failed"
    lines = script_lines(project, run_id)
    assert [t for s, t in lines if s == "out"] == [f"line {i}" for i in range(1000)]
    errs = [t for s, t in lines if s == "err"]
    assert errs[0] == "Traceback (most recent call last):" and errs[-1] == "RuntimeError: boom"
    if target == "docker":
        # The daemon copies a container's stdout and stderr in goroutines of their own (to
        # its log file and to an attach stream alike): the order across the two streams is
        # its best effort (922 stdout lines before the traceback was seen, with both).
        return
    first_err = next(n for n, (s, _) in enumerate(lines) if s == "err")
    assert first_err == 1000  # after every stdout line
    assert lines[-1] == ("err", "RuntimeError: boom")


def test_os_exit_and_fork_lose_and_repeat_nothing(project: Project, target: str) -> None:
    """os._exit skips the interpreter's flush; a forked child inherits unwritten output (it
    would be written twice). Both are flushed for: each line once, in order."""
    run_id = submit(project, target, "fork.py", """
import os
print("parent before fork")
pid = os.fork()
if pid == 0:
    print("child")
    os._exit(0)
os.waitpid(pid, 0)
print("parent after child")
os._exit(0)
""")
    assert finish(project, run_id)["status"] == "completed"
    assert script_lines(project, run_id) == [
        ("out", "parent before fork"), ("out", "child"), ("out", "parent after child")]


def test_a_child_program_writing_to_the_same_pipe_keeps_the_order(project: Project,
                                                                   target: str) -> None:
    """A shell (not Python: untouched by labdeck) and a Python child, both writing to the
    run's stdout directly, come where they were started."""
    run_id = submit(project, target, "child.py", """
import os, subprocess, sys
print("before sh")
subprocess.run(["sh", "-c", "echo from sh; echo sh err >&2"], check=True)
print("before python")
subprocess.run([sys.executable, "-c", "print('from python')"], check=True)
print("before system")
os.system("echo from system")
print("end")
""")
    assert finish(project, run_id)["status"] == "completed"
    lines = script_lines(project, run_id)
    assert [t for s, t in lines if s == "out"] == [
        "before sh", "from sh", "before python", "from python", "before system",
        "from system", "end"]
    assert ("err", "sh err") in lines


def test_cancel_flushes_what_the_script_had_not_written(project: Project, target: str) -> None:
    """SIGTERM's default action would drop stdout's buffer: the hook flushes first, then the
    script dies of the signal as before. The script turns the periodic flush off (re-exec with
    a long interval) so that only the SIGTERM flush can deliver its last lines."""
    run_id = submit(project, target, "term.py", WAIT + """
import os, sys
if os.environ.get("LABDECK_FLUSH_S") != "3600":
    os.environ["LABDECK_FLUSH_S"] = "3600"
    os.execv(sys.executable, [sys.executable, *sys.argv])
for i in range(100):
    print("pending", i)
open("ready", "w").close()
wait_for("never")
""")
    until("the script ready", lambda: (run_dir(project, run_id) / "snapshot" / "ready").exists())
    assert not any(t.startswith("pending") for _, t in script_lines(project, run_id))
    res = cli(project, "runs", "cancel", "--no-wait", run_id)
    assert res.returncode == 0, res.stderr
    assert finish(project, run_id)["status"] == "canceled"
    assert [t for s, t in script_lines(project, run_id) if s == "out"] == [
        f"pending {i}" for i in range(100)]


N_LINES = 1_000_000


def test_a_million_lines_nothing_lost_or_reordered(project: Project, target: str) -> None:
    run_id = submit(project, target, "flood.py", f"""
import sys
for i in range({N_LINES}):
    print(i)
for i in range(1000):
    print("e", i, file=sys.stderr)
""")
    assert finish(project, run_id)["status"] == "completed"
    lines = script_lines(project, run_id)
    outs = [t for s, t in lines if s == "out"]
    assert len(outs) == N_LINES
    assert outs == [str(i) for i in range(N_LINES)]
    assert [t for s, t in lines if s == "err"] == [f"e {i}" for i in range(1000)]


def test_a_daemon_the_script_left_holding_its_pipes_is_stopped(project: Project) -> None:
    """A double-forked daemon (its own session, the run's stdout still open) outlives the
    script: the run ends all the same, with the script's lines, and the daemon is stopped (the
    supervisor, a subreaper, finds it among its own children)."""
    pid_file = project.root.parent / "daemon.pid"  # outside the run's copy, which goes at its end
    run_id = submit(project, "local", "daemon.py", f"""
import os, sys, time
PID = {str(pid_file)!r}
print("before", flush=True)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        with open(PID + ".tmp", "w") as fh:
            fh.write(str(os.getpid()))
        os.rename(PID + ".tmp", PID)
        time.sleep(600)
    os._exit(0)
os.wait()
while not os.path.exists(PID):
    time.sleep(0.005)
print("after")
""")
    assert finish(project, run_id)["status"] == "completed"
    assert [t for s, t in script_lines(project, run_id) if s == "out"] == ["before", "after"]
    pid = int(pid_file.read_text())

    def gone() -> bool:
        try:
            state = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return True
        return state[state.rfind(")") + 2] == "Z"

    until("the daemon is stopped", gone)
