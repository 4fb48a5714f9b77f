"""``target attach cluster`` (Workbench: ``computetarget attach cluster``): an HDInsight-style
Spark head node over SSH, checked before anything is written.

Every input is checked first (one UsageError line for the first bad one); then the head node is
reached exactly as a run reaches it (head.py's link: SSH as OpenSSH would, the login
environment probed) and must offer spark-submit and Java; only then are the password (kept
outside the project, ssh/secrets.py), the .compute and the .runconfig (Framework PySpark)
written."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from ..attach import (
    _quote,
    _write_atomic,
    accept_hint,
    login_lines,
    runconfig_text,
    write_dependencies_if_missing,
)
from ..base import TargetInfo
from ..docker.remote_attach import _validated, check_inputs, split_login
from ..errors import TargetError, UsageError
from ..project import Project
from ..ssh import secrets

DEPLOY_MODES = ("cluster", "client")
SPARK_DEPENDENCIES = "spark_dependencies.yml"
MINIMAL_SPARK_DEPENDENCIES = """\
# spark-submit's options for the runconfigs naming this file (Framework PySpark), as
# Workbench's project template had them. For example:
#   configuration:
#     "spark.executor.memory": "2g"      (each one: --conf KEY=VALUE)
#   repositories:
#     - "https://repo1.maven.org/maven2/"
#   packages:
#     - group: "org.apache.spark"
#       artifact: "spark-avro_2.13"
#       version: "4.0.0"
# Empty: spark-submit with the cluster's defaults (spark.app.name is the run id).
configuration: {}
"""


@dataclass
class ClusterAttach:
    written: list[Path]
    password_kept_in: str | None
    info: TargetInfo


def compute_text(address: str, username: str | None, identity_file: str | None,
                 password_ref: str | None, yarn_deploy_mode: str) -> str:
    lines = ['type: "cluster"', f"address: {_quote(address)}",
             f"yarnDeployMode: {_quote(yarn_deploy_mode)}"]
    lines += login_lines(username, identity_file, password_ref)
    return "\n".join(sorted(lines)) + "\n"  # the attach command sorted its keys


async def attach_cluster(project: Project, name: str, *, address: str | None,
                         username: str | None = None, identity_file: str | None = None,
                         password: str | None = None, accept_new_host_key: bool = False,
                         yarn_deploy_mode: str = "cluster", force: bool = False
                         ) -> ClusterAttach:
    from .head import HeadNodeBackend

    if not address:
        raise UsageError("a cluster target needs --address HOST[:PORT] (its head node's SSH "
                         "endpoint)")
    if yarn_deploy_mode not in DEPLOY_MODES:
        raise UsageError(f"--yarn-deploy-mode must be cluster or client, got "
                         f"{yarn_deploy_mode!r}")
    address, username = split_login(address, username)  # [ssh://][USER@]HOST[:PORT]
    check_inputs(project, name, address, username, identity_file, password, None, force)
    sid = secrets.secret_id(project.root, name)
    ref = secrets.reference(sid) if password is not None else None
    text = compute_text(address, username, identity_file, ref, yarn_deploy_mode)
    compute = _validated(name, text)

    hint = accept_hint("cluster", name, address, username, identity_file, password is not None,
                       force)
    backend = HeadNodeBackend(compute)
    backend.link.endpoint = replace(backend.link.endpoint, password=password,
                                    accept_new_host_key=accept_new_host_key, accept_hint=hint)
    info = await backend.describe()  # probes the login environment; closes the link
    if not info.reachable:
        raise TargetError(info.detail)
    facts = backend.facts
    assert facts is not None
    if not facts.spark_submit:
        raise TargetError(f"no spark-submit on the head node {backend.link.where} (not on the "
                          "PATH of its login environment): nothing written")
    if not facts.java:
        raise TargetError(f"Spark needs Java 17+: no java on the head node "
                          f"{backend.link.where}: nothing written")

    kept = secrets.store(sid, password) if password is not None else None
    compute_path = project.config_dir / f"{name}.compute"
    runconfig_path = project.config_dir / f"{name}.runconfig"
    project.config_dir.mkdir(exist_ok=True)
    _write_atomic(compute_path, text)
    written = [compute_path]
    if force or not runconfig_path.exists():
        _write_atomic(runconfig_path, runconfig_text(name, "cluster", "PySpark"))
        written.append(runconfig_path)
    written += write_dependencies_if_missing(project)
    spark_deps = project.config_dir / SPARK_DEPENDENCIES
    if not spark_deps.exists():  # the runconfig names it: a Spark run reads it
        _write_atomic(spark_deps, MINIMAL_SPARK_DEPENDENCIES)
        written.append(spark_deps)
    return ClusterAttach(written, kept, info)
