from __future__ import annotations

import os
from pathlib import Path

import pytest

from backends import snapshot
from tests.conftest import Project


def _tree(root: Path, files: dict[str, str | bytes]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)


def test_ignore_rules_git_labdeck_nested_and_always(tmp_path: Path) -> None:
    _tree(
        tmp_path,
        {
            "train.py": "x",
            "data/big.csv": "1",
            "data/keep.txt": "k",
            ".gitignore": "*.log\n/data/*.csv\n",
            ".labdeckignore": "scratch/\n",
            "scratch/tmp.py": "s",
            "run.log": "l",
            "sub/.gitignore": "secret.txt\n",
            "sub/secret.txt": "s",
            "sub/code.py": "c",
            ".git/HEAD": "ref",
            "outputs/m.pkl": "m",
            ".labdeck/runs.db": "d",
            "deep/.git/config": "c",
            "deep/ok.py": "o",
        },
    )
    rels = [e.rel for e in snapshot.list_files(tmp_path)]
    assert rels == [
        ".gitignore",
        ".labdeckignore",
        "data/keep.txt",
        "deep/ok.py",
        "sub/.gitignore",
        "sub/code.py",
        "train.py",
    ]


def test_content_hash_follows_content_not_mtime(tmp_path: Path) -> None:
    _tree(tmp_path, {"a.py": "print(1)\n", "b/c.py": "x\n"})
    files = snapshot.list_files(tmp_path)
    first = snapshot.content_hash(tmp_path, files)
    (tmp_path / "a.py").write_text("print(1)\n")  # same bytes, new mtime
    assert snapshot.content_hash(tmp_path, snapshot.list_files(tmp_path)) == first
    (tmp_path / "a.py").write_text("print(2)\n")
    assert snapshot.content_hash(tmp_path, snapshot.list_files(tmp_path)) != first
    (tmp_path / "a.py").write_text("print(1)\n")
    (tmp_path / "a.py").chmod(0o755)  # the exec bit travels, so it counts
    assert snapshot.content_hash(tmp_path, snapshot.list_files(tmp_path)) != first


def test_size_limit_previews_largest_files_and_ignore_lines(tmp_path: Path) -> None:
    _tree(
        tmp_path,
        {"data/a.bin": b"0" * 3_000_000, "models/m.bin": b"0" * 1_500_000, "train.py": "x"},
    )
    files = snapshot.list_files(tmp_path)
    with pytest.raises(snapshot.SnapshotTooLarge) as err:
        snapshot.check_size(files, limit=2_000_000)
    assert "over the 1.9 MB limit" in str(err.value)
    details = "\n".join(err.value.details)
    assert "data/a.bin" in details.splitlines()[1]
    assert "/data/" in details and "saves 2.9 MB" in details
    snapshot.check_size(files, limit=10_000_000)


def test_big_project_is_refused_with_preview_and_nothing_recorded(project: Project) -> None:
    project.write("train.py", "print('x')\n")
    (project.root / "blob.bin").write_bytes(b"\0" * (2 * 1024 * 1024))
    res = project.cli("submit", "-c", "local", "train.py", env={"LABDECK_SNAPSHOT_LIMIT_MB": "1"})
    assert res.returncode == 2
    assert res.stderr.splitlines()[0].startswith("labdeck: error: project snapshot is 2.0 MB")
    assert "blob.bin" in res.stderr and "/blob.bin" in res.stderr
    assert project.cli("runs", "list", "-o", "json").stdout.strip() in ("", "[]")
    (project.root / ".labdeckignore").write_text("blob.bin\n")
    ok = project.cli("submit", "-c", "local", "train.py", env={"LABDECK_SNAPSHOT_LIMIT_MB": "1"})
    assert ok.returncode == 0, ok.stderr


def test_snapshot_is_isolated_from_later_edits(project: Project) -> None:
    project.write("job.py", "import time\ntime.sleep(1)\nprint(open('job.py').read().strip())\n")
    run_id = project.cli("submit", "-a", "-c", "local", "job.py", check=True).stdout.strip()
    # submit returns once the snapshot is taken: an edit now must not reach the run
    project.write("job.py", "print('edited')\n")
    out = project.cli("runs", "logs", run_id, "-f", check=True).stdout
    assert "time.sleep(1)" in out
    assert "edited" not in out


def test_git_commit_is_recorded(project: Project) -> None:
    import subprocess

    project.write("job.py", "print(1)\n")
    subprocess.run(["git", "init", "-q"], cwd=project.root, check=True)
    subprocess.run(
        [
            "git",
            "-c",
            "user.email=t@t.invalid",
            "-c",
            "user.name=t",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "x",
        ],
        cwd=project.root,
        check=True,
    )
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=project.root, text=True, capture_output=True, check=True
    ).stdout.strip()
    assert snapshot.git_commit(project.root) == head
    import json

    project.cli("submit", "-c", "local", "job.py", check=True)
    assert json.loads(project.cli("runs", "last", "-o", "json").stdout)["commit"] == head


def test_labdeckignore_can_bring_back_what_gitignore_hides(tmp_path: Path) -> None:
    _tree(tmp_path, {".gitignore": "data/\n", ".labdeckignore": "!data/\n", "data/x.csv": "1",
                     "a.py": "x"})
    assert "data/x.csv" in [e.rel for e in snapshot.list_files(tmp_path)]


def test_copy_file_keeps_bytes_mode_and_times_and_refuses_itself(tmp_path: Path) -> None:
    from backends.snapshot import copy_file

    src = tmp_path / "run.sh"
    src.write_bytes(b"#!/bin/sh\necho hi\n" * 10_000)
    src.chmod(0o751)
    os.utime(src, ns=(1_600_000_000_123_456_789, 1_600_000_000_987_654_321))
    dst = tmp_path / "copy.sh"
    copy_file(src, dst)
    assert dst.read_bytes() == src.read_bytes()
    assert (dst.stat().st_mode & 0o777) == 0o751
    assert dst.stat().st_mtime_ns == 1_600_000_000_987_654_321
    with pytest.raises(OSError, match="same file"):
        copy_file(src, src)
    assert src.read_bytes() == dst.read_bytes()  # not emptied


def test_docs_are_not_counted_and_amlignore_is_honoured(tmp_path: Path) -> None:
    # Workbench's cap left out docs/ (they travel; .git and outputs/ do not travel at all).
    big = b"\0" * (2 * 1024 * 1024)
    _tree(tmp_path, {"train.py": "print(1)\n", "docs/manual.pdf": big,
                     "data/raw.bin": big, ".amlignore": "data/\n"})
    files = snapshot.list_files(tmp_path)
    assert [e.rel for e in files] == [".amlignore", "docs/manual.pdf", "train.py"]
    snapshot.check_size(files, 1024 * 1024)  # docs/ alone over the limit: not counted
    (tmp_path / ".amlignore").unlink()
    with pytest.raises(snapshot.SnapshotTooLarge):
        snapshot.check_size(snapshot.list_files(tmp_path), 1024 * 1024)
