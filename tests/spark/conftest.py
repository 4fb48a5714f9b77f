"""The Spark rig (scripts/start-spark.sh): a standalone master and worker on 127.0.0.1, pyspark
in the venv. One rig for the whole session; tests needing it FAIL in CI when it cannot start
and skip elsewhere. Spark jobs cost 15-25 s each here: the suite runs only a handful."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, Project, need

FACTS = REPO / ".labdeck-rigs" / "spark.json"
SPARK_ENV = {"SPARK_LOCAL_IP": "127.0.0.1"}


@pytest.fixture(scope="session")
def spark_rig() -> dict[str, Any]:
    need(shutil.which("java") is not None or bool(os.environ.get("JAVA_HOME")),
         "Java 17+ for Spark")
    proc = subprocess.run(["bash", str(REPO / "scripts" / "start-spark.sh")], capture_output=True,
                          text=True, timeout=900)
    need(proc.returncode == 0 and FACTS.is_file(),
         f"the Spark rig (scripts/start-spark.sh): {proc.stderr.strip()[-300:]}")
    facts: dict[str, Any] = json.loads(FACTS.read_text())
    return facts


def master_state(rig: dict[str, Any]) -> dict[str, Any]:
    with urllib.request.urlopen(f"{rig['ui_url']}/json/", timeout=10) as resp:
        state: dict[str, Any] = json.load(resp)
    return state


@pytest.fixture
def spark_project(sample_copy: Project, spark_rig: dict[str, Any]) -> Project:
    """The sample project, its Spark computes pointed at the rig."""
    del spark_rig  # the rig's addresses are the sample's (127.0.0.1, default ports)
    return sample_copy


def last_run_dir(project: Project) -> Path:
    runs = sorted((project.root / ".labdeck" / "runs").iterdir(), key=lambda p: p.name)
    return runs[-1]
