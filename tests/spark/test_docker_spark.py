"""Framework PySpark in a docker runconfig: the environment image gets a Java runtime (apt, in the
build) and pyspark (the wheel cache's, sent in the build context: containers reach no index
here), and the container runs spark-submit, never python. Real daemon, real build, real JVM:
the image is built once (minutes), then cached by its inputs' hash."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from backends.docker.env import spec_for
from backends.docker.image import SPARK_STEPS, dockerfile
from tests.conftest import Project, need
from tests.docker.conftest import daemon_ok

from .conftest import SPARK_ENV, last_run_dir

RUNCONFIG = """\
ArgumentVector:
  - "$file"
Target: "docker"
Framework: "PySpark"
CondaDependenciesFile: "aml_config/conda_dependencies_spark.yml"
SparkDependenciesFile: "aml_config/spark_dependencies_standalone.yml"
PrepareEnvironment: true
"""


def test_a_pyspark_environment_is_its_own_image_python_ones_keep_their_tags() -> None:
    python = spec_for("/p", "p", "base:1", None)
    spark = spec_for("/p", "p", "base:1", None, spark=True)
    assert python.env_tag("sha256:b") is None  # nothing to install: the base image itself
    tag = spark.env_tag("sha256:b")
    assert tag is not None and tag.startswith("labdeck-env/shared:")
    text = dockerfile(spark, "sha256:b", None)
    assert all(step in text for step in SPARK_STEPS)
    assert "openjdk-17-jre-headless" in text and "--find-links /labdeck/spark" in text
    assert "openjdk" not in dockerfile(python, "sha256:b", None)


@pytest.mark.slow
@pytest.mark.timeout(1600)  # a first build (apt's JRE, the 457 MB wheel) passed 300 s at load 15
def test_iris_in_a_docker_pyspark_runconfig(sample_copy: Project) -> None:
    need(daemon_ok(), "the Docker daemon is not reachable (docker version failed)")
    sample_copy.write("aml_config/docker-spark.runconfig", RUNCONFIG)
    explained = sample_copy.cli("submit", "--explain", "-c", "docker-spark", "iris_spark.py",
                                "0.1", check=True).stdout
    last = explained.splitlines()[-1]
    assert last.startswith("docker run ") and " spark-submit --master 'local[*]' " in last
    assert "-e PYSPARK_PYTHON=python3" in last and last.endswith("iris_spark.py 0.1")
    res = sample_copy.cli("submit", "-c", "docker-spark", "iris_spark.py", "0.1",
                          env=SPARK_ENV, timeout=1500)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    run_id = res.stdout.splitlines()[0].strip()
    record: dict[str, Any] = json.loads(sample_copy.cli("runs", "show", run_id, "-o", "json",
                                                        check=True).stdout)
    assert record["metrics"]["Regularization Rate"] == 0.1
    assert record["metrics"]["Accuracy"] > 0.8
    log = (last_run_dir(sample_copy) / "log").read_text()
    assert " INFO SparkContext: Running Spark version " in log  # spark-submit ran, not python
    assert Path(last_run_dir(sample_copy) / "log").stat().st_size > 0
