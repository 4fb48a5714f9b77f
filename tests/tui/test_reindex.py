"""A damaged or deleted runs.db: one line naming the file and the fix (CLI and dashboard), and
`labdeck runs reindex` rebuilds the store from the run folders with nothing lost."""

from __future__ import annotations

import json

from tests.conftest import Project

TRAIN = """
    import sys
    from azureml.logging import get_azureml_logger
    log = get_azureml_logger()
    log.log("accuracy", 0.75)
    log.log("loss", [0.5, 0.25])
    print("result: 42")
    if sys.argv[1:] == ["--boom"]:
        raise ValueError("alpha too big")
"""


def runs_json(project: Project) -> dict[str, dict[str, object]]:
    out = project.cli("runs", "list", "-o", "json", check=True).stdout
    return {r["id"]: r for r in json.loads(out)}


def test_a_damaged_store_is_one_line_and_reindex_recovers_every_run(project: Project) -> None:
    project.write("train.py", TRAIN)
    project.cli("submit", "train.py", check=True)
    project.cli("submit", "train.py", "--boom")
    before = runs_json(project)
    assert len(before) == 2
    db = project.root / ".labdeck" / "runs.db"
    for extra in ("-wal", "-shm"):
        db.with_name(db.name + extra).unlink(missing_ok=True)
    db.write_bytes(b"this is not a database, it is a damaged file " * 10)

    for args in (("runs", "list"), ("ui",)):
        result = project.cli(*args, timeout=60)
        assert result.returncode != 0, args
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, result.stderr
        assert str(db) in lines[0] and "labdeck runs reindex" in lines[0]
        assert "Traceback" not in result.stderr + result.stdout

    rebuilt = project.cli("runs", "reindex", check=True)
    assert "2 run(s) added" in rebuilt.stdout
    assert list(db.parent.glob("runs.db.damaged-*")), "the damaged file is kept"
    after = runs_json(project)
    assert set(after) == set(before)
    for run_id, old in before.items():
        new = after[run_id]
        for key in ("status", "script", "args", "target", "exit_code"):
            assert new[key] == old[key], (key, new[key], old[key])
        assert new["metrics"] == old["metrics"], (new["metrics"], old["metrics"])


def test_a_deleted_store_is_rebuilt_and_a_second_reindex_adds_nothing(project: Project) -> None:
    project.write("train.py", TRAIN)
    project.cli("submit", "train.py", check=True)
    db = project.root / ".labdeck" / "runs.db"
    for extra in ("", "-wal", "-shm"):
        db.with_name(db.name + extra).unlink(missing_ok=True)
    assert runs_json(project) == {}
    assert "1 run(s) added" in project.cli("runs", "reindex", check=True).stdout
    assert "0 run(s) added" in project.cli("runs", "reindex", check=True).stdout
    (run,) = runs_json(project).values()
    assert run["status"] == "completed"
