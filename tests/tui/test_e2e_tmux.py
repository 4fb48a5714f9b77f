"""End to end: the real ``labdeck`` in a pseudo-terminal (tmux), driven with keys only.

Submits hello.py on the local target from the submit dialog and reads the finished status and
a metric from the screen; then quits and checks the run outlived nothing it needed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, Project, cli_env, need

GUARD_S = 180.0  # a hang guard, not a speed bound: generous for a loaded machine


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

    def alive(self) -> bool:
        return subprocess.run(["tmux", "has-session", "-t", self.name], check=False,
                              capture_output=True).returncode == 0

    def wait_gone(self, what: str) -> None:
        """Until the session's command has exited (the session closes with it)."""
        deadline = time.monotonic() + GUARD_S
        while self.alive():
            if time.monotonic() > deadline:
                raise AssertionError(f"never exited: {what}\n--- screen ---\n{self.screen()}")
            time.sleep(0.1)


def sort_label(screen: str) -> str | None:
    """The runs panel's sort, as its title shows it ("sort: acc, best first")."""
    match = re.search(r"sort: ([^·\n─━┐╮]*)", screen)
    return match.group(1).strip() if match else None


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


# sample_project's other scripts: on screen only while the dialog's script list is open
OTHER_SCRIPTS = ("gpu_train.py", "iris_sklearn.py", "generate_churn_data.py")


def test_submit_hello_with_keys_and_read_the_result(tmux: Tmux, sample_copy: Project) -> None:
    tmux.wait_for(lambda s: "Targets" in s and "Runs" in s and "local" in s, "the dashboard")
    tmux.keys("s")
    tmux.wait_for(lambda s: "Submit a run" in s, "the submit dialog")
    # script select is focused after the args input with shift+tab; pick hello.py by typing
    tmux.keys("BTab", "BTab", "Enter")
    tmux.wait_for(lambda s: all(f in s for f in OTHER_SCRIPTS) and "hello.py" in s,
                  "the script list")
    # Type-to-search in the open list, then choose: the keys reach the app in this order, so
    # the list has moved to hello.py when Enter arrives; no sleep between them.
    tmux.keys("h", "Enter")
    screen = tmux.wait_for(lambda s: "Submit a run" in s and "hello.py" in s
                           and not any(f in s for f in OTHER_SCRIPTS),
                           "hello chosen and the list closed")
    assert "hello.py" in screen
    tmux.keys("Tab", "Tab", "Enter")  # to the arguments input, then submit
    screen = tmux.wait_for(lambda s: "completed" in s and "answer = 42" in s
                           and "answer" in s.split("hello.py")[0],
                           "the run completed with its metric, a column of the runs")
    assert "Hello from labdeck!" in screen  # the log streamed into the Log panel
    tmux.keys("q")
    tmux.wait_gone("the dashboard, after q")
    runs = subprocess.run([sys.executable, "-m", "tui.entry", "runs", "last"],
                          cwd=sample_copy.root, capture_output=True, text=True,
                          env=cli_env(), check=True).stdout
    assert "status:    completed" in runs
    assert "script:    hello.py" in runs
    assert str(REPO) != str(sample_copy.root)
    assert Path(sample_copy.root / ".labdeck").is_dir()


RUN_SCRIPT = """
    import sys
    from azureml.logging import get_azureml_logger
    n, acc = int(sys.argv[1]), float(sys.argv[2])
    out = sys.stdout
    for i in range(n):
        out.write(f"line {i}\\n")
    get_azureml_logger().log("acc", acc)
    print(f"END OF RUN acc={acc}")
"""


def test_the_dashboard_in_daily_use_at_80x24(tmp_path: Path) -> None:
    """Issue 11's done-when: a damaged runs.db recovered with nothing lost; five runs browsed,
    each log seen at its end; a metric column visible and sortable; Enter opens the full log
    and Home reaches line 1 of a 1,000,000-line log; a fixed config file appears live."""
    need(shutil.which("tmux") is not None, "tmux is not installed")
    root = tmp_path / "daily"
    (root / "aml_config").mkdir(parents=True)
    (root / "aml_config" / "local.compute").write_text('type: "local"\n')
    project = Project(root)
    project.write("run.py", RUN_SCRIPT)
    accs = ["0.3", "0.9", "0.5", "0.7", "0.1"]  # the 1,000,000-line run is the last (0.1)
    for acc in accs[:-1]:
        project.cli("submit", "run.py", "300", acc, check=True)
    project.cli("submit", "run.py", "1000000", accs[-1], check=True, timeout=300)
    before = project.cli("runs", "list", "-o", "json", check=True).stdout

    db = root / ".labdeck" / "runs.db"
    for extra in ("-wal", "-shm"):
        db.with_name(db.name + extra).unlink(missing_ok=True)
    db.write_bytes(b"damaged " * 100)
    refused = project.cli("runs", "list")
    assert refused.returncode != 0 and "labdeck runs reindex" in refused.stderr
    # A hang guard: the reindex parses the 1,000,000-line log (~10 s of CPU), and with two
    # busy loops and other tests on 2 cores it once took over 120 s.
    project.cli("runs", "reindex", check=True, timeout=600)
    after = project.cli("runs", "list", "-o", "json", check=True).stdout
    assert _facts(after) == _facts(before), "nothing lost"

    broken = root / "aml_config" / "later.compute"
    broken.write_text("type: [unclosed\n")
    name = f"labdeck-daily-{uuid.uuid4().hex[:8]}"
    env = cli_env({"LABDECK_KEYMAP": "/nonexistent/keymap.toml", "TERM": "xterm-256color"})
    exports = " ".join(f"{k}={_q(v)}" for k, v in env.items()
                       if k in ("PYTHONPATH", "LABDECK_KEYMAP", "TERM", "PATH", "HOME"))
    subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", "80", "-y", "24",
                    "-c", str(root), f"env {exports} {_q(sys.executable)} -m tui.entry"],
                   check=True)
    tmux = Tmux(name)
    try:
        tmux.wait_for(lambda s: "Runs · 5 runs" in s and "later ✗ config" in s,
                      "the dashboard with the broken target")
        # Browse: newest first; each log shows its end.
        for i, acc in enumerate(reversed(accs)):
            if i:
                tmux.keys("Down")
            end = f"END OF RUN acc={acc}"
            tmux.wait_for(lambda s: end in s, f"run acc={acc}'s end")  # noqa: B023
        # The metric is a column; sorted by it, best first.
        screen = tmux.wait_for(lambda s: " acc" in s.split("\n")[2], "the acc column")
        seen: list[str | None] = [sort_label(screen)]
        while seen[-1] != "acc, best first":
            assert len(seen) <= 8, f"o never sorted by acc: {seen}"
            tmux.keys("o")  # the next sort: wait for it on screen before pressing o again
            screen = tmux.wait_for(lambda s: sort_label(s) not in (None, seen[-1]),
                                   f"the sort after {seen[-1]!r}")
            seen.append(sort_label(screen))
        screen = tmux.wait_for(lambda s: "sort: acc, best first" in s, "sorted by acc")
        rows = [line for line in screen.splitlines() if "run.py" in line]
        assert "0.9" in rows[0] and "0.1" in rows[-1], rows
        # The 1,000,000-line run (acc 0.1, last row): Enter, then Home.
        tmux.keys("G")
        tmux.wait_for(lambda s: "END OF RUN acc=0.1" in s, "the long run selected")
        # The file's line count: 1,000,003 (its lines, the metric's, the end's) and what the
        # supervisor added under load (a sampler's sys line once made it 1,000,004).
        total = max(_line_count(log) for log in (root / ".labdeck" / "runs").glob("*/log"))
        assert total >= 1_000_003
        tmux.keys("Enter")
        tmux.wait_for(lambda s: f"{total:,} lines · following" in s and "q Back" in s
                      and "END OF RUN acc=0.1" in s, "the full log at its end")
        tmux.keys("Home")
        tmux.wait_for(lambda s: f"line 1 of {total:,}" in s and "\n  line 0\n" in s,
                      "line 1 of the log")
        tmux.keys("q")  # back to the dashboard
        # A fixed config file appears without a restart.
        broken.write_text('type: "local"\n')
        tmux.wait_for(lambda s: "later ● ready" in s, "the fixed target")
        tmux.keys("q")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], check=False, capture_output=True)


def _line_count(path: Path) -> int:
    with open(path, "rb") as fh:
        return sum(block.count(b"\n") for block in iter(lambda: fh.read(1 << 20), b""))


def _facts(listing: str) -> list[tuple[object, ...]]:
    import json

    return sorted((r["id"], r["status"], r["exit_code"], json.dumps(r["metrics"]))
                  for r in json.loads(listing))
