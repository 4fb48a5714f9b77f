from __future__ import annotations

import json
from pathlib import Path

import pytest

from backends import metrics
from backends.config import GpuRequest
from backends.errors import UsageError
from backends.project import Project as EngineProject
from backends.store import RunStore
from tests.conftest import SAMPLE


def test_sample_project_targets_all_load() -> None:
    project = EngineProject(SAMPLE)
    names = project.compute_names()
    assert {"local", "docker", "docker-gpu", "myvm", "myhdi"} <= set(names)
    for name in names + project.runconfig_names():
        target = project.resolve(name)
        assert target.compute.type in {"local", "docker", "remotedocker", "cluster"}
    gpu = project.resolve("docker-gpu").compute
    assert gpu.gpus == GpuRequest(count=-1)
    vm = project.resolve("myvm")
    assert vm.compute.address and vm.compute.address.endswith(".invalid")
    assert any("key-store reference" in str(w) for w in vm.warnings)
    hdi = project.resolve("myhdi")
    assert hdi.runconfig.framework == "PySpark" and hdi.spark is not None
    assert hdi.spark.configuration["spark.app.name"]
    churn = project.resolve("local")
    assert churn.conda is not None and "scikit-learn" in " ".join(churn.conda.pip_packages)


def test_runconfig_name_or_compute_name(tmp_path: Path) -> None:
    (tmp_path / "aml_config").mkdir()
    (tmp_path / "aml_config" / "box.compute").write_text('type: "docker"\n')
    (tmp_path / "aml_config" / "train.runconfig").write_text(
        'Target: "box"\nArgumentVector: ["train.py", "--lr", "0.1"]\nFramework: Python\n'
    )
    project = EngineProject(tmp_path)
    by_rc = project.resolve("train")
    assert by_rc.compute.name == "box" and by_rc.runconfig.name == "train"
    assert by_rc.runconfig.argv_for(None, ["--x"]) == ["train.py", "--lr", "0.1", "--x"]
    by_compute = project.resolve("box")
    assert by_compute.runconfig.argv_for("s.py", []) == ["s.py"]
    assert project.resolve("local").compute.type == "local"  # built in, no file needed
    with pytest.raises(UsageError):
        project.resolve("nothing")


def test_old_json_runconfig_form(tmp_path: Path) -> None:
    (tmp_path / "aml_config").mkdir()
    (tmp_path / "aml_config" / "conda.yml").write_text("dependencies:\n  - pip:\n    - six\n")
    (tmp_path / "aml_config" / "old.runconfig").write_text(
        json.dumps(
            {
                "Target": "local",
                "Framework": "Python",
                "CondaFile": "aml_config/conda.yml",
                "ManagedEnvironment": False,
                "EnvironmentVariables": {"A": 1},
            },
            indent=2,
        )
    )
    target = EngineProject(tmp_path).resolve("old")
    assert target.runconfig.environment_variables == {"A": "1"}
    assert target.conda is not None and target.conda.pip_packages == ("six",)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("all", GpuRequest(count=-1)),
        (2, GpuRequest(count=2)),
        ("3", GpuRequest(count=3)),
        ("0,1", GpuRequest(count=0, device_ids=("0", "1"))),
        ("device=GPU-abc", GpuRequest(count=0, device_ids=("GPU-abc",))),
        ([0, 2], GpuRequest(count=0, device_ids=("0", "2"))),
    ],
)
def test_gpus_key(tmp_path: Path, value: object, expected: GpuRequest) -> None:
    (tmp_path / "aml_config").mkdir()
    (tmp_path / "aml_config" / "g.compute").write_text(
        f'type: "docker"\ngpus: {json.dumps(value)}\n'
    )
    assert EngineProject(tmp_path).resolve("g").compute.gpus == expected


def test_metric_channel_round_trip_and_shim_agree() -> None:
    line = metrics.encode("acc", [1, 2.5])
    assert metrics.parse(line) == ("acc", [1, 2.5])
    assert metrics.parse("acc: 1") is None
    assert metrics.parse(metrics.MARKER + "{not json") is None
    shim = (metrics.SHIM_DIR / "labdeck_metrics.py").read_text()
    assert repr(metrics.MARKER).strip("'") in shim.replace('"', "'")


def test_series_and_scalars_fold(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "db")
    rec = store.create("p", "local", "local", runconfig=None, script="x", args=[], env={})
    store.add_metric(rec.id, "acc", 0.5)
    store.add_metric(rec.id, "loss", 1.0)
    store.add_metric(rec.id, "loss", 0.5)
    store.add_metric(rec.id, "curve", [3])
    store.add_metric(rec.id, "name", "tree")
    assert store.get(rec.id).metrics == {
        "acc": 0.5,
        "curve": [3],
        "loss": [1.0, 0.5],
        "name": "tree",
    }
    assert store.list_runs()[0].metrics == store.get(rec.id).metrics
    # What a table of runs shows: the last value of each, and which are series.
    assert store.last_metrics() == {rec.id: {
        "acc": (0.5, False), "curve": (3, True), "loss": (0.5, True), "name": ("tree", False)}}
    assert store.list_runs(with_metrics=False)[0].metrics == {}
    store.close()


def test_run_ids_unique_within_a_millisecond(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "db")
    ids = {
        store.create("p", "local", "local", runconfig=None, script="x", args=[], env={}).id
        for _ in range(20)
    }
    assert len(ids) == 20 and all(i.startswith("p_") for i in ids)
    store.close()


def test_backends_never_import_textual() -> None:
    import ast

    root = Path(__file__).resolve().parents[2] / "backends"
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not any(n == "textual" or n.startswith(("textual.", "tui")) for n in names), (
                f"{path} imports {names}"
            )
