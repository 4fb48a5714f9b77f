"""Framework PySpark on a remotedocker target (the remote Docker rig, scripts/start-rigs.sh): the
environment image gets Java and pyspark, built by the rig's own daemon over SSH, and iris runs
with spark-submit in its container, as the SSH user's uid (which the image does not know:
backends/spark/container.py names it). Heavy: a first build on a new rig takes ~5 min at load
10 (apt's JRE, the 457 MB pyspark wheel in the context); later runs reuse the image (~2 min)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO
from tests.remote.conftest import RemoteProject, Rig
from tests.remote.conftest import client as client  # the fixtures, shared
from tests.remote.conftest import rig as rig
from tests.remote.conftest import rproject as rproject

pytestmark = pytest.mark.slow

SAMPLE = REPO / "sample_project"


@pytest.mark.timeout(1000)  # a first build on a new rig: ~5 min at load 10
def test_iris_on_a_remotedocker_pyspark_runconfig(rproject: RemoteProject, rig: Rig) -> None:
    shutil.copy(SAMPLE / "iris_spark.py", rproject.root / "iris_spark.py")
    for name in ("conda_dependencies_spark.yml", "spark_dependencies_standalone.yml"):
        shutil.copy(SAMPLE / "aml_config" / name, rproject.root / "aml_config" / name)
    rproject.write("aml_config/rigspark.runconfig", """
        ArgumentVector: ["$file"]
        Target: rig
        Framework: PySpark
        CondaDependenciesFile: aml_config/conda_dependencies_spark.yml
        SparkDependenciesFile: aml_config/spark_dependencies_standalone.yml
        PrepareEnvironment: true
    """)
    # The client's HOME is private: pyspark's wheel comes from the machine's cache.
    cache = os.environ.get("LABDECK_WHEEL_CACHE") or str(Path.home() / ".cache/labdeck/wheels")
    res = rproject.cli("submit", "-c", "rigspark", "iris_spark.py", "0.1", timeout=900,
                       env={"LABDECK_WHEEL_CACHE": cache})
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    run_id = res.stdout.splitlines()[0].strip()
    record: dict[str, Any] = json.loads(
        rproject.cli("runs", "show", run_id, "-o", "json", check=True).stdout)
    assert record["metrics"]["Regularization Rate"] == 0.1
    assert record["metrics"]["Accuracy"] > 0.8
    log = (rproject.root / ".labdeck" / "runs" / run_id / "log").read_text()
    assert " INFO SparkContext: " in log  # spark-submit ran it, not python
    compared = rproject.cli("runs", "compare", run_id, run_id, check=True).stdout
    assert "Regularization Rate" in compared and "Accuracy" in compared
