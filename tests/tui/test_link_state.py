"""Issue 11 item 12: a remote run's SSH link (connected / reconnecting / lost) and sync progress,
shown read-only from the sys lines its supervisor writes (the texts of
backends/docker/remote_link.py and backends/ssh/sync.py's sync_progress_line): in the runs list,
the Targets panel and the log's status line, live."""

from __future__ import annotations

import json
import os
from pathlib import Path

from backends.engine import Engine
from backends.logfile import format_ts
from backends.procutil import start_ticks
from backends.project import Project
from backends.ssh.sync import sync_progress_line
from backends.store import RunStore
from tui.app import LabdeckApp
from tui.widgets.link_state import LinkWatch
from tui.widgets.log_panel import LogPanel
from tui.widgets.targets import TargetsPanel

from .helpers import settle, until

HOST = "gpu-box.example:22"
LOST = f"the SSH link to {HOST} was lost; reconnecting (the run goes on there)"
BACK = f"the SSH link to {HOST} is back after 2.1 s (3 attempts)"
GONE = f"the SSH link to {HOST} is lost: connection refused"


def sys_line(text: str, at: float = 1_767_225_600.0) -> str:
    return f"{format_ts(at)} sys {text}\n"


def test_link_watch_reads_only_what_the_log_gained(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.write_text(sys_line(sync_progress_line(1, 4, 1 << 20, 10 << 20))
                   + f"{format_ts(1)} out the SSH link to nowhere was lost; reconnecting\n")
    watch = LinkWatch(log)
    facts = watch.update()
    assert facts.state is None  # an out line says nothing of the link
    assert facts.sync == "sync 1/4 files, 1.0/10.0 MB"
    with open(log, "a") as fh:
        fh.write(sys_line(sync_progress_line(4, 4, 10 << 20, 10 << 20)) + sys_line(LOST))
        fh.write(f"{format_ts(2)} out half a li")
    facts = watch.update()
    assert (facts.state, facts.where, facts.sync) == ("reconnecting", HOST, None)
    offset = watch.offset
    assert offset < log.stat().st_size  # the partial line waits
    with open(log, "a") as fh:
        fh.write("ne\n" + sys_line(BACK))
    assert watch.update().state == "connected" and watch.offset > offset
    with open(log, "a") as fh:
        fh.write(sys_line(GONE))
    assert watch.update().state == "lost"


def remote_project(root: Path) -> tuple[Project, str]:
    (root / "aml_config").mkdir(parents=True)
    (root / "aml_config" / "local.compute").write_text('type: "local"\n')
    (root / "aml_config" / "rig.compute").write_text(
        'type: remotedocker\naddress: "127.0.0.1:1"\nusername: "nobody"\n'
        'baseDockerImage: "labdeck/python-base:bookworm"\n')
    project = Project(root)
    project.ensure_state()
    store = RunStore(project.db_path)
    run_id = f"{project.name}_2001"
    t = 1_767_225_600.0
    # In flight, its supervisor alive (this process stands in for it: recover leaves it be).
    store._db.execute(
        "INSERT INTO runs (id, project, target, target_type, runconfig, script, args, env,"
        " status, created, started, supervisor_pid, supervisor_start)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (run_id, project.name, "rig", "remotedocker", "rig", "train.py", json.dumps([]), "{}",
         "running", t, t + 1, os.getpid(), start_ticks(os.getpid())))
    store.close()
    run_dir = project.run_dir(run_id)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "log").write_text(sys_line(sync_progress_line(2, 5, 4 << 20, 10 << 20)))
    return project, run_id


async def test_the_dashboard_shows_a_remote_runs_link_live(tmp_path: Path) -> None:
    project, run_id = remote_project(tmp_path / "proj")
    log = project.run_dir(run_id) / "log"
    engine = Engine(project)
    app = LabdeckApp(engine, target="rig")  # polling: the logs are looked at every tick
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            panel = app.runs_panel
            targets = app.query_one(TargetsPanel)
            status = app.query_one("#log-status")

            def cell() -> str:
                return str(panel.table.get_cell(run_id, "status")) if panel._shown else ""

            await until(pilot, lambda: cell() == "running · sync 40%", "the sync progress")
            await until(pilot, lambda: "sync 2/5 files, 4.0/10.0 MB" in
                        str(status.render()), "the sync in the log status")
            with open(log, "a") as fh:
                fh.write(sys_line(sync_progress_line(5, 5, 10 << 20, 10 << 20)) +
                         sys_line(LOST))
            await until(pilot, lambda: cell() == "running · link reconnecting",
                        "reconnecting in the runs list")
            await until(pilot, lambda: targets.links.get("rig") == "reconnecting"
                        and "◌ link…" in str(targets.get_row("rig")[2]),
                        "reconnecting in the Targets panel")
            await until(pilot, lambda: f"link reconnecting ({HOST})" in
                        str(app.query_one(LogPanel).query_one("#log-status").render()),
                        "reconnecting in the log status")
            with open(log, "a") as fh:
                fh.write(sys_line(BACK))
            await until(pilot, lambda: cell() == "running", "connected again")
            await until(pilot, lambda: "◌ link…" not in str(targets.get_row("rig")[2]),
                        "the target's own state again")
            with open(log, "a") as fh:
                fh.write(sys_line(GONE))
            await until(pilot, lambda: cell() == "running · link lost", "lost")
            await until(pilot, lambda: "✗ link" in str(targets.get_row("rig")[2]),
                        "lost in the Targets panel")
            await settle(pilot)
    finally:
        engine.close()
