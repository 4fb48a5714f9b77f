"""What a Spark run executes, without I/O: the spark-submit line, its environment, and the body
of a REST create request (Python cluster mode on a standalone master). Every target builds its
command here, so ``--explain`` prints exactly what runs."""

from __future__ import annotations

import re

from ..config import SparkDeps

LOCAL_MASTER = "local[*]"
PYTHON_RUNNER = "org.apache.spark.deploy.PythonRunner"
_MASTER = re.compile(r"spark://[A-Za-z0-9.\-\[\]:]+:\d{1,5}(,[A-Za-z0-9.\-\[\]:]+:\d{1,5})*")


def is_master_url(text: str) -> bool:
    """A standalone master's URL: ``spark://host:port`` (HA lists ``host1:port1,host2:port2``)."""
    return _MASTER.fullmatch(text) is not None


def spark_conf(deps: SparkDeps | None, app_name: str) -> dict[str, str]:
    """``--conf`` pairs: spark_dependencies.yml's ``configuration``, ``spark.app.name`` defaulting
    to the run id (the file's own value wins, as Workbench let it)."""
    conf = {"spark.app.name": app_name}
    if deps is not None:
        conf.update({str(k): str(v) for k, v in deps.configuration.items()})
    return conf


def submit_command(
    spark_submit: str,
    master: str,
    app_name: str,
    argv: list[str],
    deps: SparkDeps | None = None,
    deploy_mode: str | None = None,
    py_files: tuple[str, ...] = (),
) -> list[str]:
    """``spark-submit --master M [--deploy-mode D] [--conf k=v]... [--repositories R]
    [--packages g:a:v,...] [--py-files F,...] script args...``"""
    cmd = [spark_submit, "--master", master]
    if deploy_mode is not None:
        cmd += ["--deploy-mode", deploy_mode]
    for key, value in spark_conf(deps, app_name).items():
        cmd += ["--conf", f"{key}={value}"]
    if deps is not None and deps.repositories:
        cmd += ["--repositories", ",".join(deps.repositories)]
    if deps is not None and deps.packages:
        cmd += ["--packages", ",".join(p.coordinate for p in deps.packages)]
    if py_files:
        cmd += ["--py-files", ",".join(py_files)]
    return [*cmd, *argv]


def spark_env(python: str) -> dict[str, str]:
    """The driver and its Python workers run the target's interpreter (spark-submit would take
    ``python3`` from PATH). spark-submit's PythonRunner keeps the PYTHONPATH it is given behind
    Spark's own entries, so labdeck's shim (metrics) reaches the driver."""
    return {"PYSPARK_PYTHON": python, "PYSPARK_DRIVER_PYTHON": python}


def rest_create_body(
    master: str,
    app_resource: str,
    script: str,
    args: list[str],
    app_name: str,
    env: dict[str, str],
    deps: SparkDeps | None = None,
    spark_version: str = "4.3.0",
    py_files: tuple[str, ...] = (),
) -> dict[str, object]:
    """POST /v1/submissions/create for a Python driver in cluster mode: spark-submit refuses
    Python cluster mode on a standalone master, but its REST server runs PythonRunner as the main
    class (its arguments: the script, the py-files list, then the script's own). ``appResource``
    must be a jar that exists on the workers (PythonRunner itself ignores it)."""
    props = {
        **spark_conf(deps, app_name),
        "spark.master": master,
        "spark.submit.deployMode": "cluster",
        "spark.driver.supervise": "false",
    }
    if deps is not None and deps.repositories:
        props["spark.jars.repositories"] = ",".join(deps.repositories)
    if deps is not None and deps.packages:
        props["spark.jars.packages"] = ",".join(p.coordinate for p in deps.packages)
    if py_files:
        props["spark.submit.pyFiles"] = ",".join(py_files)
    return {
        "action": "CreateSubmissionRequest",
        "appResource": app_resource,
        "mainClass": PYTHON_RUNNER,
        "appArgs": [script, ",".join(py_files), *args],
        "clientSparkVersion": spark_version,
        "environmentVariables": {"SPARK_ENV_LOADED": "1", **env},
        "sparkProperties": props,
    }
