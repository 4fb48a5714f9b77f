"""Spark runs end to end on the rig: local Spark, the standalone cluster in client mode and in
cluster mode (REST), cancel seen on the master, bad inputs one line each. The real CLI, real
JVMs: each run here is one Spark job (15-25 s on this machine); keep their number small."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.conftest import Project

from .conftest import SPARK_ENV, last_run_dir, master_state

pytestmark = pytest.mark.slow

LONG_APP = """\
import time
from pyspark.sql import SparkSession
spark = SparkSession.builder.getOrCreate()  # named by labdeck: the run id
print("app", spark.sparkContext.applicationId, flush=True)
while True:
    time.sleep(0.2)
"""


def run_json(project: Project, *args: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(project.cli(*args, "-o", "json", check=True).stdout)
    return data


def submit_iris(project: Project, target: str) -> tuple[str, dict[str, Any]]:
    res = project.cli("submit", "-c", target, "iris_spark.py", "0.1", env=SPARK_ENV, timeout=240)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    run_id = res.stdout.splitlines()[0].strip()
    record = run_json(project, "runs", "show", run_id)
    assert record["metrics"]["Regularization Rate"] == 0.1
    assert record["metrics"]["Accuracy"] > 0.8
    spark = json.loads((last_run_dir(project) / "spark.json").read_text())
    return run_id, spark


def test_iris_on_local_spark(spark_project: Project) -> None:
    explained = spark_project.cli("submit", "--explain", "-c", "spark-local", "iris_spark.py",
                                  "0.1", check=True).stdout
    assert "/bin/spark-submit --master 'local[*]' --conf 'spark.app.name=<run-id>'" in explained
    assert "iris_spark.py 0.1" in explained.splitlines()[-1]
    run_id, spark = submit_iris(spark_project, "spark-local")
    log = (last_run_dir(spark_project) / "log").read_text()
    assert " out Accuracy is " in log  # the script's prints: first-class output
    assert " err " in log and " INFO SparkContext: " in log  # Spark's log kept, marked err
    assert spark["master"] == "local[*]" and spark["ui_url"].startswith("http://")
    assert " sys spark UI http://" in log
    compared = spark_project.cli("runs", "compare", run_id, run_id, check=True).stdout
    assert "Regularization Rate" in compared and "Accuracy" in compared


@pytest.mark.parametrize("target", ["spark-standalone", "spark-standalone-rest"])
def test_iris_on_the_standalone_cluster(spark_project: Project, spark_rig: dict[str, Any],
                                        target: str) -> None:
    run_id, spark = submit_iris(spark_project, target)
    compared = spark_project.cli("runs", "compare", run_id, run_id, check=True).stdout
    assert "Regularization Rate" in compared and "Accuracy" in compared
    assert spark["master"] == spark_rig["master_url"]
    assert spark["app_id"].startswith("app-")  # registered with the master
    finished = {a["id"] for a in master_state(spark_rig)["completedapps"]}
    assert spark["app_id"] in finished
    if target == "spark-standalone-rest":
        assert spark["submission_id"].startswith("driver-")
        drivers = {d["id"]: d["state"] for d in master_state(spark_rig)["completeddrivers"]}
        assert drivers[spark["submission_id"]] == "FINISHED"


def _wait(condition: Any, what: str, guard: float = 120.0) -> Any:
    deadline = time.monotonic() + guard
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.5)


@pytest.mark.parametrize("target", ["spark-standalone", "spark-standalone-rest"])
def test_cancel_kills_the_application_on_the_master(spark_project: Project,
                                                    spark_rig: dict[str, Any],
                                                    target: str) -> None:
    spark_project.write("long_app.py", LONG_APP)
    run_id = spark_project.cli("submit", "-a", "-c", target, "long_app.py", env=SPARK_ENV,
                               check=True).stdout.strip()

    def running_app() -> str | None:
        apps = master_state(spark_rig)["activeapps"]
        return next((a["id"] for a in apps if a["name"] == run_id and a["state"] == "RUNNING"),
                    None)

    app_id = _wait(running_app, f"app {run_id} RUNNING on the master")
    res = spark_project.cli("runs", "cancel", run_id, check=True)
    assert "cancel" in res.stdout
    _wait(lambda: run_json(spark_project, "runs", "show", run_id)["status"] == "canceled",
          "the run canceled", 60)
    state = master_state(spark_rig)
    assert app_id not in {a["id"] for a in state["activeapps"]}, state["activeapps"]
    assert app_id in {a["id"] for a in state["completedapps"]}
    if target == "spark-standalone-rest":
        sid = json.loads((last_run_dir(spark_project) / "spark.json").read_text())[
            "submission_id"]
        assert sid not in {d["id"] for d in state["activedrivers"]}


def _one_line_error(res: Any, *needles: str) -> None:
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.returncode != 0 and len(lines) == 1, res.stdout + res.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_wrong_master_url_is_one_line_with_file_and_line(sample_copy: Project) -> None:
    sample_copy.write("aml_config/bad.compute",
                      'type: "cluster"\nsparkMaster: "http://127.0.0.1:7077"\n')
    res = sample_copy.cli("submit", "--explain", "-c", "bad", "iris_spark.py")
    _one_line_error(res, "bad.compute:2:", "sparkMaster must look like spark://host:port")
    assert res.returncode == 2


def test_workbench_head_node_explains_then_asks_to_reenter_its_password(
        sample_copy: Project) -> None:
    """Workbench's myhdi.compute (an HDInsight head node over SSH, its password in Workbench's
    key store): --explain shows the ssh and spark-submit lines without connecting; a run fails
    in one line saying how to re-enter the password."""
    explained = sample_copy.cli("submit", "--explain", "-c", "myhdi", "iris_spark.py", "0.1",
                                check=True).stdout
    assert "ssh sshuser@myhdi-ssh.invalid 'cd " in explained
    assert "spark-submit --master yarn --deploy-mode cluster" in explained
    res = sample_copy.cli("submit", "-c", "myhdi", "iris_spark.py")
    assert res.returncode != 0
    record = run_json(sample_copy, "runs", "last")
    assert record["status"] == "failed" and "Workbench key-store reference" in record["error"]


def test_no_spark_where_spark_submit_location_points(sample_copy: Project) -> None:
    sample_copy.write("aml_config/nospark.compute",
                      'type: "local"\nsparkSubmitLocation: "/nonexistent/bin/spark-submit"\n')
    sample_copy.write("aml_config/nospark.runconfig",
                      'Target: "nospark"\nFramework: "PySpark"\n')
    res = sample_copy.cli("submit", "--explain", "-c", "nospark", "iris_spark.py")
    _one_line_error(res, "sparkSubmitLocation '/nonexistent/bin/spark-submit' not found")
    run = sample_copy.cli("submit", "-c", "nospark", "iris_spark.py")
    assert run.returncode != 0
    record = run_json(sample_copy, "runs", "last")
    assert record["status"] == "failed" and "pip install pyspark" in record["error"]


def test_unreachable_master_fails_the_run_in_one_line(sample_copy: Project) -> None:
    sample_copy.write("aml_config/gone.compute",
                      'type: "cluster"\nsparkMaster: "spark://127.0.0.1:9"\n')
    res = sample_copy.cli("submit", "-c", "gone", "iris_spark.py", env=SPARK_ENV)
    assert res.returncode != 0
    record = run_json(sample_copy, "runs", "last")
    assert record["status"] == "failed"
    assert "the Spark master spark://127.0.0.1:9 does not answer" in record["error"]


def test_cluster_mode_without_a_rest_server_fails_in_one_line(
        sample_copy: Project, spark_rig: dict[str, Any]) -> None:
    sample_copy.write("aml_config/norest.compute",
                      f'type: "cluster"\nsparkMaster: "{spark_rig["master_url"]}"\n'
                      'deployMode: "cluster"\nsparkRestUrl: "http://127.0.0.1:9"\n')
    res = sample_copy.cli("submit", "-c", "norest", "iris_spark.py", env=SPARK_ENV)
    assert res.returncode != 0
    error = run_json(sample_copy, "runs", "last")["error"]
    assert "REST server http://127.0.0.1:9 does not answer" in error
    assert "spark.master.rest.enabled" in error


def test_no_java_fails_the_run_in_one_line(spark_project: Project, tmp_path: Any) -> None:
    bare = tmp_path / "bin"  # a PATH with no java on it, and no JAVA_HOME
    bare.mkdir()
    res = spark_project.cli("submit", "-c", "spark-local", "iris_spark.py",
                            env={**SPARK_ENV, "PATH": str(bare), "JAVA_HOME": ""})
    assert res.returncode != 0
    record = run_json(spark_project, "runs", "last")
    assert record["status"] == "failed"
    assert record["error"].startswith("Spark needs Java 17+: no java on PATH"), record


# Failures the driver's output names: the run's one-line reason says it (the traceback of a
# PySpark driver comes on spark-submit's stdout, where the log's usual err-line reason misses it).
FAILING = {
    # It writes outputs/ first: a failed driver's files come back as on every target.
    "app_raises": ("import os\nos.makedirs('outputs', exist_ok=True)\n"
                   "open('outputs/partial.txt', 'w').write('so far')\n"
                   "raise ValueError('bad regularization rate')\n",
                   "the script failed: ValueError: bad regularization rate"),
    # Spark 4.3 starts in 32 MB and runs out of heap (older ones refused: "System memory ...
    # must be at least", the other reason failure_hint knows; test_head_lines checks it).
    "tiny_driver_memory": ("from pyspark.sql import SparkSession\n"
                           "SparkSession.builder.getOrCreate()\n",
                           "the driver ran out of memory (java.lang.OutOfMemoryError"),
    "driver_oom": ("from pyspark.sql import SparkSession\n"
                   "spark = SparkSession.builder.getOrCreate()\n"
                   "jvm = spark.sparkContext._jvm\n"
                   "jvm.java.lang.reflect.Array.newInstance(jvm.java.lang.Long.TYPE, 1 << 30)\n",
                   "the driver ran out of memory (java.lang.OutOfMemoryError: Java heap space)"),
}


@pytest.mark.parametrize("case", sorted(FAILING))
def test_a_failing_driver_says_why_in_one_line(spark_project: Project, case: str) -> None:
    script, reason = FAILING[case]
    spark_project.write("fails.py", script)
    memory = "32m" if case == "tiny_driver_memory" else "512m"
    deps = spark_project.root / "aml_config" / "spark_dependencies_standalone.yml"
    deps.write_text(deps.read_text().replace('"spark.driver.memory": "512m"',
                                             f'"spark.driver.memory": "{memory}"'))
    res = spark_project.cli("submit", "-c", "spark-local", "fails.py", env=SPARK_ENV,
                            timeout=240)
    assert res.returncode != 0
    record = run_json(spark_project, "runs", "last")
    assert record["status"] == "failed"
    assert record["error"].startswith(reason), record["error"]
    assert "exit code" in record["error"]
    if case != "app_raises":
        assert "raise spark.driver.memory in spark_dependencies.yml" in record["error"]
    else:
        partial = spark_project.root / ".labdeck" / "runs" / record["id"] / "outputs"
        assert (partial / "partial.txt").read_text() == "so far"
        assert record["outputs"] == ["partial.txt"]  # recorded: runs show, runs download
    assert reason in res.stderr.strip().splitlines()[-1]  # what submit printed last


def test_a_canceled_driver_that_printed_an_exception_is_canceled(spark_project: Project) -> None:
    spark_project.write("noisy.py", "import time\nprint('RuntimeError: only a word', flush=True)\n"
                                    "time.sleep(600)\n")
    run_id = spark_project.cli("submit", "-a", "-c", "spark-local", "noisy.py", env=SPARK_ENV,
                               check=True).stdout.strip()
    log = spark_project.root / ".labdeck" / "runs" / run_id / "log"
    _wait(lambda: log.is_file() and "RuntimeError: only a word" in log.read_text(),
          "the driver's line")
    spark_project.cli("runs", "cancel", run_id, check=True)
    _wait(lambda: run_json(spark_project, "runs", "show", run_id)["status"] in
          {"canceled", "failed"}, "the run's end", 60)
    record = run_json(spark_project, "runs", "show", run_id)
    assert record["status"] == "canceled", record
