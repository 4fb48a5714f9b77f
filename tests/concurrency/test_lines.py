"""Long and carriage-return lines through real runs (local, and docker where a daemon is): the
one line splitter (backends/linesplit.py) behind every target, seen from the log file."""

from __future__ import annotations

import pytest

from backends.linesplit import MAX_LINE
from backends.logfile import LogEntry, last_lines
from tests.conftest import Project
from tests.docker.conftest import docker_ready, dproject  # noqa: F401 -- fixtures

BIG = 8 * 1024 * 1024

# 8 MiB of printable bytes in no particular rhythm, no newline, then one short line; the bytes
# are a known function of their position, so the test can rebuild them.
LONG = f"""
    import sys
    alphabet = bytes(range(33, 127))
    data = (alphabet * ({BIG} // len(alphabet) + 1))[:{BIG}]
    out = sys.stdout.buffer
    for start in range(0, len(data), 100_003):
        out.write(data[start:start + 100_003])
    out.write(b"\\nafter\\n")
    out.flush()
"""

# a tqdm-like bar on stderr: 300 redraws, \\r before each, a newline at its end
BAR = """
    import sys, time
    print("before", flush=True)
    for i in range(301):
        sys.stderr.write("\\r%3d%%|%-30s| %d/300" % (i // 3, "#" * (i // 10), i))
        sys.stderr.flush()
        time.sleep(0.002)
    sys.stderr.write("\\n")
    print("after", flush=True)
"""


def log_of(project: Project, run_id: str) -> list[str]:
    return (project.root / ".labdeck" / "runs" / run_id / "log").read_text().splitlines()


def entries(project: Project, run_id: str) -> list[LogEntry]:
    return [LogEntry.parse(raw) for raw in log_of(project, run_id)]


def submit(project: Project, target: str, script: str, text: str) -> str:
    project.write(script, text)
    res = project.cli("submit", "-a", "-c", target, script, check=True)
    run_id = res.stdout.strip().splitlines()[0]
    res = project.cli("runs", "logs", run_id, "-f", timeout=240)
    assert res.returncode == 0, res.stderr
    return run_id


def check_long(project: Project, run_id: str) -> None:
    alphabet = bytes(range(33, 127))
    expected = (alphabet * (BIG // len(alphabet) + 1))[:BIG].decode()
    outs = [e.text for e in entries(project, run_id) if e.stream == "out"]
    assert outs[-1] == "after"
    pieces = outs[:-1]
    assert [len(p) for p in pieces] == [MAX_LINE] * (BIG // MAX_LINE)  # cut at the cap
    assert "".join(pieces) == expected  # nothing lost, byte-exact


def check_bar(project: Project, run_id: str) -> None:
    final = "100%|" + "#" * 30 + "| 300/300"
    lines = [e for e in entries(project, run_id) if not e.progress]
    assert [e.text for e in lines if e.stream == "out"] == ["before", "after"]
    assert [e.text for e in lines if e.stream == "err"] == [final]  # not 301 states glued
    progress = [e for e in entries(project, run_id) if e.progress]
    assert len(progress) < 100  # throttled, not one per redraw
    assert all("\r" not in e.text and e.text.endswith("/300") for e in progress)
    # what a reader of the log's tail shows: the bar's last state, once
    tail = [LogEntry.parse(raw).text for raw in last_lines(
        project.root / ".labdeck" / "runs" / run_id / "log", 50)[0]]
    assert [t for t in tail if "/300" in t] == [final]


def test_local_eight_megabytes_without_newline(project: Project) -> None:
    check_long(project, submit(project, "local", "long.py", LONG))


def test_local_carriage_return_progress_keeps_the_last_state(project: Project) -> None:
    check_bar(project, submit(project, "local", "bar.py", BAR))


@pytest.mark.usefixtures("docker_ready")
def test_docker_eight_megabytes_without_newline(dproject: Project) -> None:  # noqa: F811
    check_long(dproject, submit(dproject, "docker", "long.py", LONG))


@pytest.mark.usefixtures("docker_ready")
def test_docker_carriage_return_progress_keeps_the_last_state(
        dproject: Project) -> None:  # noqa: F811
    check_bar(dproject, submit(dproject, "docker", "bar.py", BAR))
