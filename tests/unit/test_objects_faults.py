"""The object store under faults (issue 12, item 1): names that are not UTF-8, stale or damaged
stamps, damaged objects and manifests, a full disk while storing, files that vanish mid-snapshot.
Real files on the real filesystem; each case is a defect the first version had."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import signal
import stat
import time
from pathlib import Path

import pytest

from backends import objects, snapshot, usage
from backends.errors import StorageError
from backends.snapshot import list_files


def make(tmp_path: Path, files: dict[str, bytes]) -> tuple[Path, Path]:
    root = tmp_path / "proj"
    root.mkdir()
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root, root / ".labdeck"


def settle(root: Path) -> None:
    """Wait until every file's last change is older than the stamp cache's settle window."""
    last = max(p.stat().st_ctime_ns for p in root.rglob("*") if ".labdeck" not in p.parts)
    while time.time_ns() - last <= objects.STAMP_SETTLE_NS + 50_000_000:
        time.sleep(0.05)


def test_a_name_that_is_not_utf8_travels_and_hashes_as_its_bytes(tmp_path: Path) -> None:
    name = os.fsdecode(b"caf\xe9.txt")  # latin-1 bytes: a lone surrogate in the str
    root, state = make(tmp_path, {"train.py": b"print(1)\n", name: b"x"})
    files = list_files(root)
    manifest = objects.snapshot(root, files, state)  # was: UnicodeEncodeError
    assert manifest.digest == snapshot.content_hash(root, files)
    run = state / "runs" / "r1"
    run.mkdir(parents=True)
    manifest.save(run)
    again = objects.Manifest.load(run)
    assert again.digest == manifest.digest
    objects.materialise(again, state, tmp_path / "out")
    assert (tmp_path / "out").joinpath(name).read_bytes() == b"x"
    assert b"caf\xe9.txt" in os.listdir(os.fsencode(tmp_path / "out"))
    # Valid UTF-8 names hash as before (the store's recorded hashes stay valid).
    plain = objects.Manifest([objects.ManifestEntry("é.txt", "0" * 64, 1, 0o644, 0)])
    outer = hashlib.sha256(f"é.txt\0{0}\0{'0' * 64}\n".encode())
    assert plain.digest == outer.hexdigest()


def test_a_fresh_ctime_is_not_stamped(tmp_path: Path) -> None:
    """A file whose mtime was put back (tar -x, cp -p, rsync -t) but changed a moment ago is
    not settled: a same-size rewrite in the same ctime tick would otherwise reuse the stamp."""
    root, state = make(tmp_path, {"a.txt": b"one\n"})
    old = time.time() - 60
    os.utime(root / "a.txt", (old, old))
    objects.snapshot(root, list_files(root), state)
    stamps = json.loads((state / objects.STAMPS).read_text()) if (
        state / objects.STAMPS).exists() else {}
    assert "a.txt" not in stamps
    settle(root)
    objects.snapshot(root, list_files(root), state)
    assert "a.txt" in json.loads((state / objects.STAMPS).read_text())


def test_damaged_stamps_are_a_cache_miss(tmp_path: Path) -> None:
    root, state = make(tmp_path, {"a.txt": b"one\n", "b.txt": b"two\n"})
    settle(root)
    first = objects.snapshot(root, list_files(root), state)
    (state / objects.STAMPS).write_text(json.dumps(
        {"a.txt": 5, "b.txt": [1, 2, 3, "x", "deadbeef"]}))
    again = objects.snapshot(root, list_files(root), state)  # was: TypeError
    assert again.digest == first.digest
    (state / objects.STAMPS).write_text('{"a.txt": [4, ')  # half a file
    assert objects.snapshot(root, list_files(root), state).digest == first.digest


def test_a_truncated_object_is_stored_again_and_never_materialised(tmp_path: Path) -> None:
    root, state = make(tmp_path, {"a.txt": b"hello world\n"})
    settle(root)
    manifest = objects.snapshot(root, list_files(root), state)
    store = objects.ObjectStore(state)
    path = store.path(manifest.files[0].sha256)
    os.chmod(path, 0o644)
    path.write_bytes(b"")  # a crash after the rename, before the data reached the disk
    with pytest.raises(objects.ObjectDamaged, match="has 0 bytes, not 12"):
        objects.materialise(manifest, state, tmp_path / "out")  # was: an empty a.txt
    assert not (tmp_path / "out" / "a.txt").exists()  # nothing written before the check
    # The next snapshot (stamp still valid) notices the size and stores the content again.
    objects.snapshot(root, list_files(root), state)
    assert path.read_bytes() == b"hello world\n"
    objects.materialise(manifest, state, tmp_path / "out2")
    assert (tmp_path / "out2" / "a.txt").read_bytes() == b"hello world\n"


def test_same_size_damage_is_found_by_verify(tmp_path: Path) -> None:
    root, state = make(tmp_path, {"a.txt": b"hello world\n"})
    manifest = objects.snapshot(root, list_files(root), state)
    store = objects.ObjectStore(state)
    path = store.path(manifest.files[0].sha256)
    os.chmod(path, 0o644)
    path.write_bytes(b"\0" * 12)  # same size, other bytes
    with pytest.raises(objects.ObjectDamaged, match="does not hash to its name"):
        objects.materialise(manifest, state, tmp_path / "out", verify=True)
    with pytest.raises(objects.ObjectDamaged):
        store.read_bytes(manifest.files[0].sha256)
    assert store.verify() == [manifest.files[0].sha256] and path.exists()
    assert store.verify(remove=True) == [manifest.files[0].sha256] and not path.exists()
    assert store.verify() == []


def test_a_full_disk_while_storing_leaves_nothing(tmp_path: Path) -> None:
    root, state = make(tmp_path, {"big.bin": os.urandom(3 << 20)})
    store = objects.ObjectStore(state)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, hard))  # writes past 1 MiB: EFBIG
    try:
        with pytest.raises(OSError):
            store.put(root / "big.bin")
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old_handler)
    assert os.listdir(store.root) == []  # was: a 1 MiB tmp-* left until the next gc


def test_a_file_that_vanishes_mid_snapshot_does_not_travel(tmp_path: Path) -> None:
    root, state = make(tmp_path, {"train.py": b"print(1)\n", "4913": b""})  # vim's probe
    files = list_files(root)
    (root / "4913").unlink()
    manifest = objects.snapshot(root, files, state)  # was: FileNotFoundError
    assert [e.path for e in manifest.files] == ["train.py"]


def test_an_unreadable_manifest_stops_collection(tmp_path: Path) -> None:
    root, state = make(tmp_path, {"a.txt": b"only a\n", "b.txt": b"only b\n"})
    runs = state / "runs"
    (runs / "r1").mkdir(parents=True)
    (runs / "r2").mkdir()
    objects.snapshot(root, list_files(root), state).save(runs / "r1")
    (root / "b.txt").write_text("b again\n")
    objects.snapshot(root, list_files(root), state).save(runs / "r2")
    store = objects.ObjectStore(state)
    count = len(store.all_objects())
    text = (runs / "r1" / objects.MANIFEST).read_text()
    (runs / "r1" / objects.MANIFEST).write_text(text[: len(text) // 2])  # half-written
    with pytest.raises(objects.ManifestUnreadable, match=r"r1.*nothing collected"):
        objects.collect(state, runs)  # was: r1's objects removed as unreferenced
    assert len(store.all_objects()) == count
    with pytest.raises(StorageError):
        objects.unreferenced_by_others(runs, ["r2"], store.all_objects())
    # Deleting the damaged run itself is still possible (its manifest is skipped).
    assert objects.unreferenced_by_others(runs, ["r1"], store.all_objects())["r1"] == {}
    (runs / "r1" / objects.MANIFEST).write_text(json.dumps({"version": 99, "files": []}))
    with pytest.raises(objects.ManifestUnreadable, match="version 99"):
        objects.collect(state, runs)


def test_a_manifest_cannot_write_outside_its_folder(tmp_path: Path) -> None:
    root, state = make(tmp_path, {"a.txt": b"a"})
    manifest = objects.snapshot(root, list_files(root), state)
    data = manifest.to_json()
    for bad in ("../escaped", "/etc/x", "", "a//b", "a/../../b"):
        data["files"] = [[bad, manifest.files[0].sha256, 1, 0o644, 0]]  # type: ignore
        with pytest.raises(ValueError):
            objects.Manifest.from_json(data)


def test_materialise_never_writes_through_a_link(tmp_path: Path) -> None:
    root, state = make(tmp_path, {"a.txt": b"new"})
    manifest = objects.snapshot(root, list_files(root), state)
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "a.txt").symlink_to(victim)
    with pytest.raises(OSError):
        objects.materialise(manifest, state, dest)
    assert victim.read_text() == "keep me"  # was: "new" written through the link


def test_materialise_drops_setuid_bits(tmp_path: Path) -> None:
    root, state = make(tmp_path, {"run.sh": b"#!/bin/sh\n"})
    os.chmod(root / "run.sh", 0o4755)
    manifest = objects.snapshot(root, list_files(root), state)
    objects.materialise(manifest, state, tmp_path / "out")
    assert stat.S_IMODE((tmp_path / "out" / "run.sh").stat().st_mode) == 0o755


def test_sizes_are_read_while_another_client_drops_a_copy(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``labdeck store`` / ``runs du`` list a run folder while a submit in another process drops
    its ended run's copy (or ``runs delete`` removes it): what went is not counted, no error."""
    root, state = make(tmp_path, {"a.txt": b"a" * 10_000})
    run = state / "runs" / "r1"
    run.mkdir(parents=True)
    manifest = objects.snapshot(root, list_files(root), state)
    manifest.save(run)
    objects.materialise(manifest, state, run / objects.SNAPSHOT_DIR)
    (run / "log").write_text("x\n")
    real = os.scandir

    def listed_then_dropped(path: object) -> object:
        items = list(real(path))  # type: ignore[call-overload]
        if Path(str(path)) == run:
            objects.remove_tree(run / objects.SNAPSHOT_DIR)  # the other client's drop
            os.unlink(run / "log")
        return iter(items)

    monkeypatch.setattr(os, "scandir", listed_then_dropped)
    result = usage.usage(state, state / "runs")  # was: FileNotFoundError
    assert result.runs[0].materialised == 0 and result.runs[0].log == 0
