"""Workbench projects as they really are (issue 10): small projects written like the real ones
(templates' placeholders, tabs after keys, broken leftovers, keys of the time), run through the
real CLI. Each case failed on the code before it."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from backends.config import DEFAULT_PREPARE_ENVIRONMENT, Warning_, load_runconfig
from backends.project import Project as EngineProject
from tests.conftest import Project

HERE = Path(__file__).resolve().parent / "projects"


@pytest.fixture
def realistic(tmp_path: Path) -> Project:
    root = tmp_path / "Realistic Project"
    shutil.copytree(HERE / "realistic", root)
    local = root / "aml_config" / "local.compute"
    local.write_text(local.read_text().replace("SHARE_BASE", str(tmp_path / "share")))
    return Project(root)


def test_target_list_shows_every_target_with_its_error_or_warnings(realistic: Project) -> None:
    res = realistic.cli("target", "list", check=True)
    rows = {line.split()[0]: line for line in res.stdout.splitlines()[1:]}
    assert set(rows) == {"broken", "cleartext", "docker", "local", "myvm"}
    assert "error: broken.compute:2: invalid YAML" in rows["broken"]
    assert "clear-text password" in rows["cleartext"]
    assert "myvm.compute:3: address is empty" in rows["myvm"]
    assert "docker.runconfig:4: runs on target 'docker-old'" in rows["docker"]
    listed = {t["name"]: t for t in json.loads(realistic.cli("target", "list", "-o", "json",
                                                              check=True).stdout)}
    assert "broken.compute:2: invalid YAML: " in listed["broken"]["error"]
    assert listed["broken"]["type"] is None
    assert listed["docker"]["error"] is None


def test_target_list_json_has_only_the_fields_of_each_type(realistic: Project) -> None:
    listed = {t["name"]: t for t in json.loads(realistic.cli("target", "list", "-o", "json",
                                                              check=True).stdout)}
    docker, local, vm = listed["docker"], listed["local"], listed["myvm"]
    assert docker["baseDockerImage"] == "labdeck/python-base:bookworm"  # trimmed
    assert docker["gpus"] is None and docker["description"] == "Docker on this machine"
    assert "address" not in docker and "yarnDeployMode" not in docker
    assert "baseDockerImage" not in local and "address" not in local
    assert vm["type"] == "remotedocker"  # "virtualmachine", its mid-2017 name
    assert vm["address"] is None and vm["username"] == "azureuser"
    assert "yarnDeployMode" not in vm


def test_target_show_survives_a_runconfig_naming_another_target(realistic: Project) -> None:
    res = realistic.cli("target", "show", "docker", check=True)
    assert "type:         docker" in res.stdout
    assert "description:  Docker on this machine" in res.stdout
    assert "docker.runconfig:4: runs on target 'docker-old'" in res.stderr
    # Used, the runconfig's fault is an error naming its file and its Target: line.
    used = realistic.cli("submit", "--explain", "-c", "docker", "train.py")
    assert used.returncode == 2
    assert used.stderr.strip().endswith("docker.runconfig:4: Target 'docker-old' has no "
                                        "docker-old.compute in aml_config/")


def test_target_show_survives_a_broken_runconfig(realistic: Project) -> None:
    realistic.write("aml_config/docker.runconfig", "Target: [\n")
    res = realistic.cli("target", "show", "docker", check=True)
    assert "base image:   labdeck/python-base:bookworm" in res.stdout
    assert "docker.runconfig:2: invalid YAML" in res.stderr


def test_placeholders_are_errors_only_when_the_target_is_used(realistic: Project) -> None:
    shown = realistic.cli("target", "show", "myvm", check=True)
    assert "type:         remotedocker" in shown.stdout
    used = realistic.cli("submit", "--explain", "-c", "myvm", "train.py")
    assert used.returncode == 2 and "Traceback" not in used.stderr
    assert used.stderr.strip().splitlines()[-1].endswith(
        "myvm.compute:3: address is empty or a template's placeholder; set the host of target "
        "'myvm'")
    realistic.write("aml_config/myvm.compute", 'type: virtualmachine\naddress: "vm.invalid"\n'
                    'password: "[AzureML Secret here]"\n')
    used = realistic.cli("prepare", "-c", "myvm")
    assert used.returncode == 2 and "myvm.compute:3: password is a template's placeholder" in \
        used.stderr


def test_keys_of_the_time_are_known_and_prepare_environment_defaults_to_true(
        realistic: Project) -> None:
    warnings: list[Warning_] = []
    rc = load_runconfig(realistic.root / "aml_config" / "local.runconfig", warnings)
    assert warnings == []  # ManagedEnvironment, UseSampling, userManagedEnvironment...
    assert rc.prepare_environment is False  # PrepareEnvironment wins over ManagedEnvironment
    realistic.write("aml_config/bare.runconfig", 'Target: "local"\n')
    bare = load_runconfig(realistic.root / "aml_config" / "bare.runconfig", warnings)
    assert DEFAULT_PREPARE_ENVIRONMENT is True and bare.prepare_environment is True


def test_tab_after_key_reads_as_libyaml_reads_it(realistic: Project) -> None:
    assert "\t" in (realistic.root / "aml_config" / "docker.compute").read_text()
    compute = EngineProject(realistic.root).view("docker").compute
    assert compute is not None and compute.type == "docker"


def test_spark_dependencies_read_only_for_spark_runs(realistic: Project) -> None:
    target = EngineProject(realistic.root).resolve("local")
    assert target.spark is None and target.conda is not None
    realistic.write("aml_config/local.runconfig",
                    (realistic.root / "aml_config" / "local.runconfig").read_text()
                    .replace('Framework: "Python"', 'Framework: "PySpark"'))
    res = realistic.cli("submit", "--explain", "-c", "local", "train.py")
    assert res.returncode == 2 and "spark_dependencies.yml:3: invalid YAML" in res.stderr


def test_a_real_script_runs_locally_unchanged(realistic: Project, tmp_path: Path) -> None:
    res = realistic.cli("submit", "-c", "local", "train.py", timeout=180)
    assert res.returncode == 0, res.stdout + res.stderr
    share = tmp_path / "share" / "Realistic-Project"
    # Per project, and ending with the separator (share + "seen.txt" lands inside it).
    assert (share / "seen.txt").read_text() == "hello from lib"  # runconfig PYTHONPATH kept
    run_id = res.stdout.splitlines()[0]
    record = json.loads(realistic.cli("runs", "show", run_id, "-o", "json", check=True).stdout)
    assert record["outputs"] == ["model.pkl"]  # outputs/ existed before the script ran
    assert record["metrics"]["Accuracy"] == 0.91


def test_other_azureml_packages_still_import(realistic: Project, tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "azureml" / "dataprep").mkdir(parents=True)
    (site / "azureml" / "__init__.py").write_text(
        "__path__ = __import__('pkgutil').extend_path(__path__, __name__)\n")
    (site / "azureml" / "dataprep" / "__init__.py").write_text("NAME = 'dataprep'\n")
    (site / "azureml" / "api").mkdir()  # a namespace portion, as today's azureml-* ship
    (site / "azureml" / "api" / "schema.py").write_text("NAME = 'api'\n")
    realistic.write("uses_both.py", """\
        from azureml.logging import get_azureml_logger
        import azureml.dataprep
        from azureml.api import schema
        get_azureml_logger().log("n", 1)
        print(azureml.dataprep.NAME, schema.NAME)
        """)
    res = realistic.cli("submit", "-c", "local", "uses_both.py", timeout=180,
                        env={"PYTHONPATH": str(site) + os.pathsep + os.environ.get("PYTHONPATH",
                                                                                   "")})
    assert res.returncode == 0, res.stdout + res.stderr
    assert "dataprep api" in res.stdout


def test_shim_alone_still_gives_azureml_logging() -> None:
    import subprocess

    from backends.metrics import SHIM_DIR

    out = subprocess.run([sys.executable, "-c", "from azureml.logging import get_azureml_logger;"
                          "get_azureml_logger().log('x', 2)"], env={"PYTHONPATH": str(SHIM_DIR)},
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "x: 2"
