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


def test_finding_another_pythons_pyspark_never_reads_our_stdin(tmp_path: Path) -> None:
    """The probe of a target's Python (locate.pyspark_home) gets /dev/null as stdin, not the
    caller's (a supervisor's, a terminal): here fd 0 is a pipe, and the stand-in python names
    what its stdin is."""
    import os

    from backends.spark.locate import pyspark_home

    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\nreadlink /proc/self/fd/0\n")
    fake.chmod(0o755)
    read_end, write_end = os.pipe()
    saved = os.dup(0)
    os.dup2(read_end, 0)
    try:
        found = pyspark_home(str(fake))
    finally:
        os.dup2(saved, 0)
        for fd in (saved, read_end, write_end):
            os.close(fd)
    assert found == Path("/dev/null")


def test_a_ui_bound_to_every_interface_is_named_by_a_reachable_host(tmp_path: Path) -> None:
    """Without SPARK_LOCAL_IP, Spark's UI binds 0.0.0.0: a browser will not open that URL
    (Chrome blocks 0.0.0.0): the driver's machine is named instead (here, or a head node)."""
    bound = ["26/12/02 02:40:01 INFO JettyUtils: Start Jetty 0.0.0.0:4040 for SparkUI",
             "26/12/02 02:40:01 INFO Utils: Successfully started service 'SparkUI' on port 4041."]
    assert SparkFacts(tmp_path).scan(bound) == ["spark UI http://localhost:4041"]
    on_head = SparkFacts(None, ui_host="headnode.example")
    assert on_head.scan(bound) == ["spark UI http://headnode.example:4041"]
