"""The object store's stamp cache and collection (issue 12, item 1), on real files."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from backends import objects
from backends.snapshot import list_files


def project(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "proj"
    (root / "data").mkdir(parents=True)
    for i in range(5):
        (root / "data" / f"f{i}.txt").write_text(f"content {i}\n" * 1000)
    old = time.time() - 60
    for path in (root / "data").iterdir():
        os.utime(path, (old, old))
    settle(root / "data")
    return root, root / ".labdeck"


def settle(folder: Path) -> None:
    """Wait until the files' last change (ctime too: utime sets it) is older than the stamp
    cache's settle window, as files not touched for a while are."""
    last = max(p.stat().st_ctime_ns for p in folder.rglob("*"))
    while time.time_ns() - last <= objects.STAMP_SETTLE_NS + 50_000_000:
        time.sleep(0.05)


def test_unchanged_files_are_not_read_again(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    root, state = project(tmp_path)
    first = objects.snapshot(root, list_files(root), state)
    read: list[Path] = []
    real = objects.file_digest

    def counting(path: Path) -> str:
        read.append(path)
        return real(path)

    monkeypatch.setattr(objects, "file_digest", counting)
    again = objects.snapshot(root, list_files(root), state)
    assert read == [] and again.digest == first.digest
    changed = root / "data" / "f2.txt"
    st = changed.stat()
    changed.write_text(changed.read_text().replace("2", "9"))  # same size
    os.utime(changed, ns=(st.st_atime_ns, st.st_mtime_ns))  # mtime put back: ctime tells
    third = objects.snapshot(root, list_files(root), state)
    assert read == [changed]
    assert third.by_path()["data/f2.txt"].sha256 != first.by_path()["data/f2.txt"].sha256
    store = objects.ObjectStore(state)
    assert store.read_bytes(third.by_path()["data/f2.txt"].sha256) == changed.read_bytes()


def test_collect_keeps_what_a_manifest_names(tmp_path: Path) -> None:
    root, state = project(tmp_path)
    runs = state / "runs"
    (runs / "a").mkdir(parents=True)
    manifest = objects.snapshot(root, list_files(root), state)
    manifest.save(runs / "a")
    (root / "data" / "f0.txt").write_text("only in b\n")
    (runs / "b").mkdir()
    objects.snapshot(root, list_files(root), state).save(runs / "b")
    store = objects.ObjectStore(state)
    assert len(store.all_objects()) == 6
    (runs / "b" / objects.MANIFEST).unlink()  # b is gone: its own object is unreferenced
    assert objects.collect(state, runs, dry_run=True)[0] == 1
    assert len(store.all_objects()) == 6
    count, freed = objects.collect(state, runs)
    assert count == 1 and freed > 0
    assert set(store.all_objects()) == {e.sha256 for e in manifest.files}
