"""A recover racing a just-submitted run never claims it: the supervisor (forked by the zygote for
a threaded client) can mark the run running before the submitting client has written the
supervisor's pid; a forced read in between (the dashboard's runs panel recovers on every tick)
saw 'no supervisor, started' and failed the run ("supervisor (pid None) died; run lost")."""

from __future__ import annotations

import time
from pathlib import Path

from backends.engine import Engine
from backends.project import Project
from backends.status import RunStatus
from backends.store import RunStore


def test_a_run_marked_running_before_its_pid_is_written_is_not_lost(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    (root / "aml_config").mkdir(parents=True)
    (root / "aml_config" / "local.compute").write_text('type: "local"\n')
    project = Project(root)
    project.ensure_state()
    run_id = f"{project.name}_1"
    store = RunStore(project.db_path)
    store._db.execute(
        "INSERT INTO runs (id, project, target, target_type, runconfig, script, args, env,"
        " status, created, outputs, trigger) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        (run_id, project.name, "local", "local", "local", "x.py", "[]", "{}",
         RunStatus.QUEUED.value, time.time(), "[]", "[]"),
    )
    # The supervisor's first writes; the client's `supervisor_pid=` update has not come yet.
    store.set_status(run_id, RunStatus.PREPARING)
    store.set_status(run_id, RunStatus.RUNNING)
    engine = Engine(project)
    try:
        assert engine.recover() == []
        after = engine.store.get(run_id, with_metrics=False)
        assert after.status is RunStatus.RUNNING, after.error
    finally:
        engine.close()
        store.close()
