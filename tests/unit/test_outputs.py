"""A run's outputs: only what the run wrote (sharedVolumes), never outside the run's folder,
symlinks never followed, sparse files kept sparse; local runs through the real CLI."""

from __future__ import annotations

import io
import json
import os
import tarfile
import time
from pathlib import Path

from backends import snapshot
from backends.outputs import Baseline, collect_outputs_dir, extract_tar, take_baseline
from tests.conftest import Project

MB = 1 << 20


def _write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    path.write_bytes(data)
    return path


def _sparse(path: Path, size: int, tail: bytes = b"end") -> Path:
    """``size`` bytes that are a hole but for ``tail`` at the very end."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.truncate(size)
        fh.seek(size - len(tail))
        fh.write(tail)
    return path


def _past_tick(path: Path, than: Path) -> None:
    """Rewrite ``path`` until its mtime is past ``than``'s ctime (the file system's clock
    moves in coarse ticks): a condition polled with a deadline, not a sleep."""
    deadline = time.monotonic() + 5
    while os.stat(path).st_mtime_ns <= os.stat(than).st_ctime_ns:
        assert time.monotonic() < deadline
        path.write_bytes(path.read_bytes())


# ---------------------------------------------------------------- which files are the run's

def test_shared_outputs_only_what_the_run_created_or_changed(tmp_path: Path) -> None:
    src = tmp_path / "project" / "outputs"
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    _write(src / "old.txt", "earlier run")
    _write(src / "deep" / "old.bin", b"\0" * 10)
    _write(src / "rewritten.txt", "aaaa")
    take_baseline(src, run_dir / "outputs")
    # The run: a new file, one rewritten with the same size (only ctime/content tell).
    _write(src / "new.txt", "mine")
    with open(src / "rewritten.txt", "r+b") as fh:
        fh.write(b"bbbb")
    copied = collect_outputs_dir(src, run_dir / "outputs", move=False)
    assert copied == ["new.txt", "rewritten.txt"]
    assert (run_dir / "outputs" / "rewritten.txt").read_text() == "bbbb"
    assert not (run_dir / "outputs" / "old.txt").exists()
    assert not (run_dir / "outputs" / "deep").exists()
    assert (src / "old.txt").read_text() == "earlier run"  # copied, never moved


def test_racily_clean_file_is_decided_by_its_content(tmp_path: Path) -> None:
    path = _write(tmp_path / "f.txt", "bbbb")
    st = os.stat(path)
    stamps: list[object] = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
    # Taken in the tick the file was last written: the stamps alone cannot show a change.
    racy_then = Baseline({"f.txt": [*stamps, "0" * 64]}, 0)
    assert racy_then.is_runs(path, "f.txt", st)
    same = Baseline({"f.txt": [*stamps, snapshot.file_sha256(path)]}, 0)
    assert not same.is_runs(path, "f.txt", st)
    assert not Baseline({"f.txt": stamps}, 0).is_runs(path, "f.txt", st)


def test_without_a_baseline_what_changed_since_the_run_was_recorded(tmp_path: Path) -> None:
    src = tmp_path / "project" / "outputs"
    run_dir = tmp_path / "run"
    old = _write(src / "old.txt", "earlier run")
    spec = _write(run_dir / "run.json", "{}")
    _past_tick(spec, old)
    _write(src / "new.txt", "mine")
    _past_tick(src / "new.txt", spec)
    assert collect_outputs_dir(src, run_dir / "outputs", move=False) == ["new.txt"]


def test_a_half_written_baseline_falls_back_to_the_run_record(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    _write(run_dir / "outputs-before.json", '{"files": {"a": [1, ')
    _write(run_dir / "run.json", "{}")
    baseline = Baseline.load(run_dir / "outputs")
    assert baseline.files is None and baseline.since_ns == os.stat(run_dir / "run.json").st_mtime_ns


# ---------------------------------------------------------------- symlinks, modes, sparse files

def test_symlinks_in_outputs_are_never_followed(tmp_path: Path) -> None:
    secret = _write(tmp_path / "secret" / "key.txt", "not the run's")
    for move in (True, False):
        src = tmp_path / f"outputs-{move}"
        _write(src / "model.txt", "m")
        (src / "key-link").symlink_to(secret)
        (src / "dir-link").symlink_to(secret.parent, target_is_directory=True)
        dest = tmp_path / f"dest-{move}"
        assert collect_outputs_dir(src, dest, move=move) == ["model.txt"]
        assert sorted(p.name for p in dest.iterdir()) == ["model.txt"]
    assert secret.read_text() == "not the run's"


def test_copy_keeps_mode_times_and_holes(tmp_path: Path) -> None:
    src = tmp_path / "outputs"
    big = _sparse(src / "ckpt.bin", 256 * MB)
    big.chmod(0o750)
    dest = tmp_path / "run" / "outputs"
    (tmp_path / "run").mkdir()
    assert collect_outputs_dir(src, dest, move=False) == ["ckpt.bin"]
    copy = dest / "ckpt.bin"
    st, orig = os.stat(copy), os.stat(big)
    assert st.st_size == 256 * MB and copy.open("rb").read(1) == b"\0"
    with open(copy, "rb") as fh:
        fh.seek(-3, os.SEEK_END)
        assert fh.read() == b"end"
    assert st.st_blocks * 512 < 4 * MB  # a plain copy writes the 256 MB hole out in full
    assert st.st_mode & 0o777 == 0o750 and st.st_mtime_ns == orig.st_mtime_ns


def _tar(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    buf.seek(0)
    return buf


def _member(name: str, kind: bytes = tarfile.REGTYPE, mode: int = 0o644,
            link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.linkname, info.mtime = kind, mode, link, 1_700_000_000
    return info


def test_extract_never_writes_outside_dest_nor_through_a_symlink(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "run" / "outputs"
    stream = _tar([
        (_member("outputs", tarfile.DIRTYPE, 0o755), None),
        (_member("outputs/ok.sh", mode=0o755), b"#!/bin/sh\n"),
        (_member("outputs/../escape.txt"), b"x"),
        (_member("/abs.txt"), b"x"),
        (_member("outputs/sub/../../escape2.txt"), b"x"),
        (_member("outputs/ln", tarfile.SYMTYPE, link=str(outside)), None),
        (_member("outputs/ln/through.txt"), b"lands in dest/ln, a real folder"),
        (_member("outputs/hard", tarfile.LNKTYPE, link="outputs/ok.sh"), None),
    ])
    assert extract_tar(stream, dest) == ["ln/through.txt", "ok.sh"]
    assert list(outside.iterdir()) == []
    assert not (tmp_path / "run" / "escape.txt").exists()
    assert not (dest / "ln").is_symlink() and (dest / "ln" / "through.txt").is_file()
    assert (dest / "ok.sh").stat().st_mode & 0o777 == 0o755
    assert (dest / "ok.sh").stat().st_mtime == 1_700_000_000


def test_extract_keeps_zeros_as_holes(tmp_path: Path) -> None:
    data = bytes(32 * MB) + b"tail"
    dest = tmp_path / "outputs"
    assert extract_tar(_tar([(_member("outputs/z.bin"), data)]), dest) == ["z.bin"]
    st = os.stat(dest / "z.bin")
    assert st.st_size == len(data) and st.st_blocks * 512 < MB
    assert (dest / "z.bin").read_bytes() == data


# ---------------------------------------------------------------- real local runs

WRITER = """
    import os, sys
    os.makedirs("outputs", exist_ok=True)
    open(f"outputs/{sys.argv[1]}.txt", "w").write(sys.argv[1])
    if len(sys.argv) > 2:
        open(f"outputs/{sys.argv[2]}", "a").write("+more")
"""


def _outputs_of(project: Project, run_id: str) -> list[str]:
    res = project.cli("runs", "show", run_id, "-o", "json", check=True)
    data = json.loads(res.stdout)
    assert data["status"] == "completed", data
    found: list[str] = data["outputs"]
    return found


def test_shared_volume_local_runs_record_only_their_own_outputs(project: Project) -> None:
    project.write("aml_config/shared.compute", "type: local\nsharedVolumes: true\n")
    project.write("w.py", WRITER)
    first = project.cli("submit", "-c", "shared", "w.py", "first", check=True)
    first_id = first.stdout.strip().splitlines()[0]
    second = project.cli("submit", "-c", "shared", "w.py", "second", "first.txt", check=True)
    second_id = second.stdout.strip().splitlines()[0]
    third = project.cli("submit", "-c", "shared", "w.py", "third", check=True)
    third_id = third.stdout.strip().splitlines()[0]
    assert _outputs_of(project, first_id) == ["first.txt"]
    # The second appended to the first's file: that one is its own too, as it left it.
    assert _outputs_of(project, second_id) == ["first.txt", "second.txt"]
    assert _outputs_of(project, third_id) == ["third.txt"]
    runs = project.root / ".labdeck" / "runs"
    assert sorted(p.name for p in (runs / third_id / "outputs").iterdir()) == ["third.txt"]
    assert (runs / second_id / "outputs" / "first.txt").read_text() == "first+more"
    assert sorted(p.name for p in (project.root / "outputs").iterdir()) == [
        "first.txt", "second.txt", "third.txt"]
