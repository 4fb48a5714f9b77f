"""``labdeck init`` (issue 12, item 7): a new project's files, read back by labdeck's own
parsers without a warning, a script run on the local target, and nothing ever overwritten."""

from __future__ import annotations

import json
from pathlib import Path

from backends.config import Warning_, load_compute, load_conda_deps, load_runconfig
from tests.conftest import run_cli

WRITTEN = ["aml_config/local.compute", "aml_config/local.runconfig",
           "aml_config/docker.compute", "aml_config/docker.runconfig",
           "aml_config/conda_dependencies.yml", ".labdeckignore"]


def test_init_writes_targets_that_parse_cleanly_and_run_a_script(tmp_path: Path) -> None:
    root = tmp_path / "fresh"
    root.mkdir()
    (root / "hello.py").write_text("import os\nprint('hello from', os.environ['LABDECK_RUN_ID'])\n")
    res = run_cli("init", cwd=root)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [f"wrote {rel}" for rel in WRITTEN]
    assert "labdeck submit -c local hello.py" in res.stderr  # what next, naming its script
    warnings: list[Warning_] = []
    for name in ("local", "docker"):
        compute = load_compute(root / f"aml_config/{name}.compute", warnings)
        runconfig = load_runconfig(root / f"aml_config/{name}.runconfig", warnings)
        assert compute.type == name and runconfig.target == name
        assert runconfig.framework == "Python"
    load_conda_deps(root / "aml_config/conda_dependencies.yml", warnings)
    assert warnings == []
    targets = json.loads(run_cli("target", "list", "-o", "json", cwd=root, check=True).stdout)
    assert {(t["name"], t["type"], t["error"], tuple(t["warnings"])) for t in targets} == {
        ("local", "local", None, ()), ("docker", "docker", None, ())}
    explained = run_cli("submit", "--explain", "-c", "docker", "hello.py", cwd=root, check=True)
    assert "warning" not in explained.stderr
    (root / "__pycache__").mkdir()
    (root / "__pycache__" / "junk.pyc").write_bytes(b"\0" * 10)
    ran = run_cli("submit", "-c", "local", "hello.py", cwd=root, timeout=120)
    assert ran.returncode == 0, ran.stderr
    run_id = ran.stdout.splitlines()[0]
    assert f"hello from {run_id}" in ran.stdout
    shown = json.loads(run_cli("runs", "show", run_id, "-o", "json", cwd=root, check=True).stdout)
    assert shown["status"] == "completed" and shown["target"] == "local"
    # The .labdeckignore written keeps caches out of the run's snapshot.
    manifest = json.loads((root / ".labdeck" / "runs" / run_id / "snapshot.json").read_text())
    copied = json.dumps(manifest)
    assert "hello.py" in copied and "junk.pyc" not in copied and "__pycache__" not in copied


def test_init_refuses_a_project_and_force_never_overwrites(tmp_path: Path) -> None:
    root = tmp_path / "old"
    (root / "aml_config").mkdir(parents=True)
    mine = 'type: "local"\n# my own\n'
    (root / "aml_config" / "local.compute").write_text(mine)
    refused = run_cli("init", cwd=root)
    assert refused.returncode == 2 and refused.stdout == ""
    assert len(refused.stderr.strip().splitlines()) == 1
    assert "aml_config exists" in refused.stderr and "--force" in refused.stderr
    assert sorted(p.name for p in (root / "aml_config").iterdir()) == ["local.compute"]
    forced = run_cli("init", "--force", cwd=root)
    assert forced.returncode == 0, forced.stderr
    assert "kept  aml_config/local.compute (exists; not overwritten)" in forced.stdout
    assert "wrote aml_config/docker.compute" in forced.stdout
    assert (root / "aml_config" / "local.compute").read_text() == mine
    assert all((root / rel).is_file() for rel in WRITTEN)


def test_init_into_a_new_folder_named(tmp_path: Path) -> None:
    res = run_cli("init", "sub/proj", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert all((tmp_path / "sub/proj" / rel).is_file() for rel in WRITTEN)
    assert "cd sub/proj" in res.stderr
    (tmp_path / "afile").write_text("x")
    bad = run_cli("init", "afile", cwd=tmp_path)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
