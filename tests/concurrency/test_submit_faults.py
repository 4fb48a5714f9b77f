"""A run is recorded only once it can run: a full disk, a permission error or Ctrl-C during the
submit leaves no record and no half-made run folder, and the error is one line naming the path."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from backends import objects
from backends.engine import Engine
from backends.project import Project as EngineProject
from tests.conftest import Project, need


def _mount_tmpfs(where: Path, size: str) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                         capture_output=True)
    return res.returncode == 0


@pytest.fixture
def full_disk(project: Project) -> Iterator[Project]:
    """The project's run folders on a 64 KiB filesystem: a real ENOSPC during the snapshot."""
    runs = project.root / ".labdeck" / "runs"
    need(_mount_tmpfs(runs, "64k"), "mounting a small tmpfs needs root (CAP_SYS_ADMIN)")
    try:
        yield project
    finally:
        subprocess.run(["umount", "-l", str(runs)], check=False)


def test_disk_full_during_snapshot_records_nothing(full_disk: Project) -> None:
    full_disk.write("train.py", "print('trained')\n")
    (full_disk.root / "data.bin").write_bytes(b"\x01" * 300_000)  # more than the disk holds
    for args in (["submit", "-c", "local", "train.py"], ["submit", "-a", "-c", "local",
                                                          "train.py"]):
        res = full_disk.cli(*args)
        assert res.returncode == 1, res.stderr
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
        assert "No space left on device" in lines[0] and str(full_disk.root) in lines[0]
    assert list((full_disk.root / ".labdeck" / "runs").iterdir()) == []  # no half-made folder
    listing = full_disk.cli("runs", "list", "-o", "json", check=True)
    assert listing.stdout.strip() == "[]"
    subprocess.run(["umount", "-l", str(full_disk.root / ".labdeck" / "runs")], check=True)
    (full_disk.root / "data.bin").unlink()
    ok = full_disk.cli("submit", "-c", "local", "train.py")
    assert ok.returncode == 0 and "trained" in ok.stdout, ok.stderr


def test_ctrl_c_during_snapshot_records_nothing(project: Project,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    project.write("train.py", "print('trained')\n")
    engine = Engine(EngineProject(project.root))

    def interrupted(manifest: objects.Manifest, state_dir: Path, dest: Path) -> None:
        dest.mkdir(parents=True)
        (dest / "partial").write_text("half")
        raise KeyboardInterrupt

    monkeypatch.setattr(objects, "materialise", interrupted)
    try:
        with pytest.raises(KeyboardInterrupt):
            engine.submit("local", "train.py", [])
        assert engine.runs() == []
        assert list(engine.project.runs_dir.iterdir()) == []
    finally:
        engine.close()
