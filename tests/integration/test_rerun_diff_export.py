"""``runs rerun``, ``runs diff`` and ``runs export`` (issue 12, item 6) through the real CLI and
real local runs."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
from pathlib import Path

from tests.conftest import Project

TRAIN = """
    import os, sys
    from labdeck_metrics import log_metric, log_param
    rate = float(sys.argv[sys.argv.index("--rate") + 1]) if "--rate" in sys.argv else 0.5
    log_param("rate", rate)
    log_metric("acc", round(1 - abs(rate - 0.1), 4))
    print("version", open("VERSION").read().strip(), "args", " ".join(sys.argv[1:]))
    os.makedirs("outputs", exist_ok=True)
    open("outputs/model.bin", "wb").write(b"\\x00model" * 100)
"""


def submit(project: Project, *args: str) -> str:
    return project.cli("submit", *args, check=True).stdout.splitlines()[0].strip()


def show(project: Project, run_id: str) -> dict:
    return json.loads(project.cli("runs", "show", run_id, "-o", "json", check=True).stdout)


def runs_dir(project: Project) -> Path:
    return project.root / ".labdeck" / "runs"


def test_rerun_uses_the_snapshot_or_the_current_files(project: Project) -> None:
    project.write("train.py", TRAIN)
    project.write("VERSION", "one\n")
    project.write("helper.txt", "kept\n")
    first = submit(project, "--name", "base", "train.py", "--rate", "0.3")
    project.write("VERSION", "two\n")
    (project.root / "helper.txt").unlink()
    again = project.cli("runs", "rerun", "base", check=True)
    assert "version one args --rate 0.3" in again.stdout  # the files as they were
    rid = again.stdout.splitlines()[0].strip()
    rec, orig = show(project, rid), show(project, first)
    assert rec["snapshot"] == orig["snapshot"] and rec["args"] == ["--rate", "0.3"]
    assert rec["target"] == orig["target"] and rec["tags"]["rerun_of"] == first
    assert json.loads((runs_dir(project) / rid / "run.json").read_text())["argv"] == [
        "train.py", "--rate", "0.3"]
    current = project.cli("runs", "rerun", first, "--current", "--", "--rate", "0.1",
                          check=True)
    assert "version two args --rate 0.1" in current.stdout
    cur = show(project, current.stdout.splitlines()[0].strip())
    assert cur["params"] == {"rate": 0.1} and cur["snapshot"] != orig["snapshot"]
    bare = project.cli("runs", "rerun", first, "--no-args", "-a", check=True)
    assert json.loads((runs_dir(project) / bare.stdout.strip() / "run.json").read_text())[
        "argv"] == ["train.py"]
    # A run from before manifests (a full copy, no snapshot.json) reruns from its copy.
    old_dir = runs_dir(project) / first
    (old_dir / "snapshot.json").unlink()
    shutil.rmtree(old_dir / "snapshot", ignore_errors=True)
    (old_dir / "snapshot").mkdir()
    (old_dir / "snapshot" / "VERSION").write_text("old copy\n")
    shutil.copy2(project.root / "train.py", old_dir / "snapshot" / "train.py")
    assert "version old copy" in project.cli("runs", "rerun", first, check=True).stdout
    # A sharedVolumes target runs the project in place: no snapshot to run there.
    project.write("aml_config/shared.compute", 'type: "local"\nsharedVolumes: true\n')
    refused = project.cli("runs", "rerun", first, "-c", "shared")
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert "--current" in refused.stderr


def test_diff_files_params_and_metrics(project: Project) -> None:
    project.write("train.py", TRAIN)
    project.write("VERSION", "one\n")
    project.write("gone.txt", "bye\n")
    (project.root / "blob.bin").write_bytes(b"\x00\x01" * 10)
    a = submit(project, "train.py", "--rate", "0.3")
    project.write("VERSION", "two\n")
    (project.root / "gone.txt").unlink()
    project.write("new.txt", "hello\n")
    (project.root / "blob.bin").write_bytes(b"\x00\x02" * 10)
    os.chmod(project.root / "train.py", 0o755)
    b = submit(project, "train.py", "--rate", "0.2")
    text = project.cli("runs", "diff", a, b, check=True).stdout
    lines = text.splitlines()
    assert lines[0] == f"files: 5 changed between {a} and {b}"
    assert lines[1:6] == ["M VERSION", "M blob.bin  (binary or over 1 MB: not shown)",
                          "D gone.txt", "A new.txt", "m train.py  (mode 644 -> 755)"]
    assert f"--- a/VERSION ({a})" in lines and f"+++ b/VERSION ({b})" in lines
    assert "-one" in lines and "+two" in lines and "+hello" in lines and "-bye" in lines
    metric = next(line for line in lines if line.startswith("metric"))
    assert metric.split()[1:] == ["acc", "0.8", "0.9", "*"]
    data = json.loads(project.cli("runs", "diff", a, b, "-o", "json", check=True).stdout)
    rows = {(r["kind"], r["name"]): (r["a"], r["b"]) for r in data["side_by_side"]}
    assert rows[("param", "rate")] == (0.3, 0.2) and rows[("metric", "acc")] == (0.8, 0.9)
    assert [f["change"] for f in data["files"]] == ["modified", "modified", "removed", "added",
                                                    "mode"]
    assert project.cli("runs", "diff", a, a, check=True).stdout.startswith("files: 0 changed")


def test_export_is_one_archive_that_rebuilds_the_run(project: Project, tmp_path: Path) -> None:
    project.write("train.py", TRAIN)
    project.write("VERSION", "one\n")
    rid = submit(project, "--tag", "team=x", "train.py", "--rate", "0.3")
    res = project.cli("runs", "export", rid, check=True)
    plain = project.root / f"{rid}.tar.gz"
    assert res.stdout.strip() == f"{rid}.tar.gz" and plain.is_file()
    with tarfile.open(plain) as tar:
        names = sorted(tar.getnames())
    assert names == sorted(f"{rid}/{n}" for n in (
        "run.json", "log", "record.json", "metrics.json", "snapshot.json",
        "outputs/model.bin"))
    out = tmp_path / "exported"
    out.mkdir()
    project.cli("runs", "export", rid, "-o", str(out), "--with-objects", check=True)
    with tarfile.open(out / f"{rid}.tar.gz") as tar:
        tar.extractall(tmp_path / "x", filter="data")
    top = tmp_path / "x" / rid
    record = json.loads((top / "record.json").read_text())
    assert record["params"] == {"rate": 0.3} and record["tags"] == {"team": "x"}
    assert json.loads((top / "metrics.json").read_text()) == {"acc": 0.8}
    assert "version one" in (top / "log").read_text()
    assert (top / "outputs" / "model.bin").read_bytes() == b"\x00model" * 100
    manifest = json.loads((top / "snapshot.json").read_text())
    for path, digest, size, _mode, _mtime in manifest["files"]:
        data = (top / "objects" / digest[:2] / digest[2:]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == digest and len(data) == size
        assert data == (project.root / path).read_bytes()
    assert {row[0] for row in manifest["files"]} == {"train.py", "VERSION",
                                                     "aml_config/local.compute"}
    # The files again, from the store, exactly as submitted.
    project.write("VERSION", "changed since\n")
    dest = tmp_path / "files"
    assert project.cli("runs", "checkout", rid, str(dest), check=True).stdout.strip() == str(dest)
    assert (dest / "VERSION").read_text() == "one\n"
    assert (dest / "train.py").read_bytes() == (project.root / "train.py").read_bytes()
    assert project.cli("runs", "checkout", rid, str(dest)).returncode == 2  # not empty
