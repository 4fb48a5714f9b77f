"""End to end: the real ``labdeck`` in a pseudo-terminal (tmux), driven with keys only.

Submits hello.py on the local target from the submit dialog and reads the finished status and
a metric from the screen; then quits and checks the run outlived nothing it needed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, Project, cli_env, need

GUARD_S = 60.0


class Tmux:
    def __init__(self, name: str):
        self.name = name

    def keys(self, *keys: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, *keys], check=True)

    def screen(self) -> str:
        out = subprocess.run(["tmux", "capture-pane", "-p", "-t", self.name],
                             capture_output=True, text=True, check=False)
        return out.stdout

    def wait_for(self, check: Callable[[str], bool], what: str) -> str:
        deadline = time.monotonic() + GUARD_S
        while True:
            text = self.screen()
            if check(text):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"never on screen: {what}\n--- screen ---\n{text}")
            time.sleep(0.1)


@pytest.fixture
def tmux(sample_copy: Project) -> Iterator[Tmux]:
    need(shutil.which("tmux") is not None, "tmux is not installed")
    name = f"labdeck-e2e-{uuid.uuid4().hex[:8]}"
    env = cli_env({"LABDECK_KEYMAP": "/nonexistent/keymap.toml", "TERM": "xterm-256color"})
    exports = " ".join(f"{k}={_q(v)}" for k, v in env.items()
                       if k in ("PYTHONPATH", "LABDECK_KEYMAP", "TERM", "PATH", "HOME"))
    command = f"env {exports} {_q(sys.executable)} -m tui.entry"
    subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", "120", "-y", "40",
                    "-c", str(sample_copy.root), command], check=True)
    subprocess.run(["tmux", "resize-window", "-t", name, "-x", "120", "-y", "40"], check=False)
    try:
        yield Tmux(name)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], check=False,
                       capture_output=True)


def _q(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def test_submit_hello_with_keys_and_read_the_result(tmux: Tmux, sample_copy: Project) -> None:
    tmux.wait_for(lambda s: "Targets" in s and "Runs" in s and "local" in s, "the dashboard")
    tmux.keys("s")
    tmux.wait_for(lambda s: "Submit a run" in s, "the submit dialog")
    # script select is focused after the args input with shift+tab; pick hello.py by typing
    tmux.keys("BTab", "BTab", "Enter")
    tmux.wait_for(lambda s: "hello.py" in s, "the script list")
    tmux.keys("h")  # type-to-search in the open list
    time.sleep(0.3)
    tmux.keys("Enter")
    screen = tmux.wait_for(lambda s: "hello.py" in s and "Submit a run" in s, "hello chosen")
    assert "hello.py" in screen
    tmux.keys("Tab", "Tab", "Enter")  # to the arguments input, then submit
    screen = tmux.wait_for(lambda s: "completed" in s and "answer = 42" in s
                           and "answer" in s.split("hello.py")[0],
                           "the run completed with its metric, a column of the runs")
    assert "Hello from labdeck!" in screen  # the log streamed into the Log panel
    tmux.keys("q")
    time.sleep(0.5)
    runs = subprocess.run([sys.executable, "-m", "tui.entry", "runs", "last"],
                          cwd=sample_copy.root, capture_output=True, text=True,
                          env=cli_env(), check=True).stdout
    assert "status:    completed" in runs
    assert "script:    hello.py" in runs
    assert str(REPO) != str(sample_copy.root)
    assert Path(sample_copy.root / ".labdeck").is_dir()
