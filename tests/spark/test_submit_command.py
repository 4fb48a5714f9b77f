"""spark-submit lines and REST bodies, without a JVM (backends/spark/submit.py, facts.py)."""

from __future__ import annotations

from pathlib import Path

from backends.config import SparkDeps, SparkPackage
from backends.spark.facts import SparkFacts, load_facts
from backends.spark.rest import parse_log_page
from backends.spark.submit import (
    PYTHON_RUNNER,
    is_master_url,
    rest_create_body,
    spark_conf,
    submit_command,
)

DEPS = SparkDeps(
    Path("aml_config/spark_dependencies.yml"),
    {"spark.executor.instances": "2", "spark.yarn.maxAppAttempts": "1"},
    ("https://repo1.maven.org/maven2/", "https://example.invalid/m2"),
    (SparkPackage("org.apache.spark", "spark-avro_2.13", "4.0.0"),
     SparkPackage("com.example", "lib", "1.2")),
)


def test_plain_local_line_names_the_run_as_the_app() -> None:
    assert submit_command("/s/spark-submit", "local[*]", "proj_1", ["train.py", "0.1"]) == [
        "/s/spark-submit", "--master", "local[*]", "--conf", "spark.app.name=proj_1",
        "train.py", "0.1"]


def test_dependencies_become_conf_repositories_packages_in_order() -> None:
    cmd = submit_command("spark-submit", "spark://h:7077", "run_2", ["a.py", "--x", "y"], DEPS,
                         deploy_mode="client", py_files=("lib.zip", "b.py"))
    assert cmd == [
        "spark-submit", "--master", "spark://h:7077", "--deploy-mode", "client",
        "--conf", "spark.app.name=run_2",
        "--conf", "spark.executor.instances=2", "--conf", "spark.yarn.maxAppAttempts=1",
        "--repositories", "https://repo1.maven.org/maven2/,https://example.invalid/m2",
        "--packages", "org.apache.spark:spark-avro_2.13:4.0.0,com.example:lib:1.2",
        "--py-files", "lib.zip,b.py",
        "a.py", "--x", "y"]


def test_the_files_app_name_wins_over_the_run_id() -> None:
    deps = SparkDeps(Path("s.yml"), {"spark.app.name": "Iris"}, (), ())
    assert spark_conf(deps, "run_3") == {"spark.app.name": "Iris"}
    assert "--repositories" not in submit_command("s", "local[*]", "r", ["a.py"], deps)


def test_rest_body_runs_python_through_pythonrunner() -> None:
    body = rest_create_body("spark://h:7077", "file:/jars/core.jar", "/snap/a.py", ["0.1"],
                            "run_4", {"PYSPARK_PYTHON": "/venv/python"}, DEPS)
    assert body["mainClass"] == PYTHON_RUNNER
    assert body["appArgs"] == ["/snap/a.py", "", "0.1"]  # script, py-files, script's args
    props = body["sparkProperties"]
    assert isinstance(props, dict)
    assert props["spark.master"] == "spark://h:7077"
    assert props["spark.submit.deployMode"] == "cluster"
    assert props["spark.app.name"] == "run_4"
    assert props["spark.jars.packages"].startswith("org.apache.spark:spark-avro_2.13:4.0.0")
    assert body["environmentVariables"] == {"SPARK_ENV_LOADED": "1",
                                            "PYSPARK_PYTHON": "/venv/python"}


def test_master_urls() -> None:
    assert is_master_url("spark://127.0.0.1:7077")
    assert is_master_url("spark://a:7077,b:7077")
    for bad in ("http://127.0.0.1:7077", "spark://127.0.0.1", "127.0.0.1:7077", "spark://:x"):
        assert not is_master_url(bad), bad


def test_facts_from_client_mode_stderr_once_each(tmp_path: Path) -> None:
    facts = SparkFacts(tmp_path, {"master": "spark://h:7077"})
    lines = [
        "26/12/01 21:02:20 INFO JettyUtils: Start Jetty 127.0.0.1:4041 for SparkUI",
        "26/12/01 21:02:20 INFO Utils: Successfully started service 'SparkUI' on port 4041.",
        "26/12/01 21:02:21 INFO StandaloneSchedulerBackend: Connected to Spark cluster with "
        "app ID app-20261201210644-0001",
        "26/12/01 21:02:21 INFO Executor: something else",
    ]
    assert facts.scan(lines) == ["spark UI http://127.0.0.1:4041",
                                 "spark application app-20261201210644-0001"]
    assert facts.scan(lines) == []  # said once
    assert load_facts(tmp_path) == {"master": "spark://h:7077",
                                    "ui_url": "http://127.0.0.1:4041",
                                    "app_id": "app-20261201210644-0001"}


def test_worker_log_page_header() -> None:
    page = b"==== Bytes 10-20 of 700 of /w/driver-1/stdout ====\nhello\nwor"
    assert parse_log_page(page) == (b"hello\nwor", 20, 700, "/w/driver-1/stdout")
    assert parse_log_page(b"<html>") is None
