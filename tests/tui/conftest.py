"""A project with a fixed run store (ids, times, metrics, logs) so screens are deterministic."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest

from backends.engine import Engine
from backends.logfile import format_ts
from backends.project import Project
from backends.status import RunStatus
from backends.store import RunStore

T0 = 1_767_225_600.0  # 2026-01-01 00:00:00 UTC

HELLO = """\
from azureml.logging import get_azureml_logger
log = get_azureml_logger()
print("hello from the test")
log.log("accuracy", 0.75)
"""

RUNS = [
    # id suffix, script, status, created offset, duration, args, metrics, log lines
    ("1001", "train.py", RunStatus.COMPLETED, 0, 12.5, ["--alpha", "0.1"],
     {"accuracy": 0.8123, "loss": [0.9, 0.6, 0.4, 0.3, 0.25]},
     [("out", "loading data"), ("err", "warning: old sklearn"), ("met", "accuracy = 0.8123"),
      ("out", "done")]),
    ("1002", "train.py", RunStatus.FAILED, 60, 3.0, ["--alpha", "0.5"],
     {"accuracy": 0.5},
     [("out", "loading data"), ("err", "Traceback (most recent call last):"),
      ("err", "ValueError: alpha too big"), ("sys", "run failed; exit code 1")]),
    ("1003", "hello.py", RunStatus.COMPLETED, 120, 0.4, [],
     {"accuracy": 0.9, "loss": [0.5, 0.2]},
     [("out", "hello from the fixture"), ("met", "accuracy = 0.9"),
      ("sys", "run completed; exit code 0; 1 output file(s)")]),
]


def make_store(root: Path) -> Project:
    project = Project(root)
    project.ensure_state()
    store = RunStore(project.db_path)
    for suffix, script, status, offset, dur, args, metrics, lines in RUNS:
        run_id = f"{project.name}_{suffix}"
        created = T0 + offset
        store._db.execute(
            "INSERT INTO runs (id, project, target, target_type, runconfig, script, args, env,"
            " status, created, started, ended, exit_code, outputs, trigger)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (run_id, project.name, "local", "local", "local", script, json.dumps(args),
             json.dumps({"LABDECK_RUN_ID": run_id}), status.value, created, created + 1,
             created + 1 + dur, 0 if status is RunStatus.COMPLETED else 1,
             json.dumps(["result.txt"] if suffix == "1003" else []), "[]"),
        )
        for name, value in cast("dict[str, object]", metrics).items():
            store.add_metric(run_id, name, value, ts=created + 1)
        run_dir = project.run_dir(run_id)
        run_dir.mkdir(parents=True, exist_ok=True)
        with open(run_dir / "log", "w") as fh:
            for i, (stream, text) in enumerate(lines):
                fh.write(f"{format_ts(created + 1 + i * 0.25)} {stream} {text}\n")
        if suffix == "1003":
            (run_dir / "outputs").mkdir()
            (run_dir / "outputs" / "result.txt").write_text("42\n")
    store.close()
    return project


@pytest.fixture(autouse=True)
def fixed_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    monkeypatch.setenv("LABDECK_KEYMAP", "/nonexistent/labdeck/keymap.toml")
    monkeypatch.setenv("TEXTUAL_ANIMATIONS", "none")
    # The Targets panel shows this machine's GPUs: a stand-in nvidia-smi that lists none keeps
    # the screens the same on a machine with GPUs (or without the driver).
    no_gpus = tmp_path / "nvidia-smi-no-gpus"
    no_gpus.write_text("#!/bin/sh\nexit 0\n")
    no_gpus.chmod(0o755)
    monkeypatch.setenv("LABDECK_NVIDIA_SMI", str(no_gpus))
    time.tzset()
    yield
    os.environ.pop("TZ", None)
    time.tzset()


@pytest.fixture
def deck_project(tmp_path: Path) -> Project:
    root = tmp_path / "proj"
    (root / "aml_config").mkdir(parents=True)
    (root / "aml_config" / "local.compute").write_text('type: "local"\n')
    (root / "hello.py").write_text(HELLO)
    (root / "train.py").write_text("print('train')\n")
    (root / ".gitignore").write_text("data/\n")
    return make_store(root)


@pytest.fixture
def engine(deck_project: Project) -> Iterator[Engine]:
    eng = Engine(deck_project)
    yield eng
    eng.close()
