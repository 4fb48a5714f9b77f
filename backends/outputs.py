"""A run's ``outputs/``: what is the run's own, and how it reaches the run's folder safely.

Which files are the run's. A snapshot run starts with an empty ``outputs/`` (it never travels in
a snapshot), so all it holds at the end is the run's. A sharedVolumes run works in the project
itself, whose ``outputs/`` keeps every earlier run's files: there the run's own are those it
created or changed, found by comparing with a *baseline* taken just before the run starts
(``take_baseline``): each file's size, mtime, ctime and inode. ctime cannot be set from user
space and moves on every write, rename or chmod, so a file whose stamps are all unchanged was not
touched; a file written in the clock tick the baseline was taken in is "racily clean" (a later
write in that tick leaves the stamps as they were), so its content hash is kept too and decides.
A separate mount over ``outputs/`` would be exact as well, but only for docker, and it would hide
the earlier runs' files that sharedVolumes exists to share (a checkpoint to resume from). What
neither can tell apart: two runs writing into the same shared folder at the same time.
A run without a baseline (recorded before it was taken, or whose backend began it early) counts
what changed since its ``run.json`` was written at submit.

How files arrive. Regular files only: a symlink is never followed nor recreated (one pointing
out of ``outputs/`` would copy, or later expose, what is not the run's); nothing is written
outside ``dest`` (each folder is opened with O_NOFOLLOW under the one before, names with ``..``
are refused). Files keep their modes (owner-writable) and times; holes in sparse files stay
holes; everything streams in blocks, so a multi-GB checkpoint costs no memory.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from .snapshot import file_sha256

BLOCK = 1 << 16  # a hole is found at this granularity when a stream carries zeros
_ZEROS = bytes(BLOCK)
BASELINE_NAME = "outputs-before.json"  # beside the run's outputs folder
SPEC_NAME = "run.json"  # runspec.py's file, written at submit: the fallback baseline's time

Stamps = tuple[int, int, int, int]  # size, mtime_ns, ctime_ns, inode


def _stamps(st: os.stat_result) -> Stamps:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def regular_files(src: Path) -> Iterator[tuple[str, os.stat_result]]:
    """``(relative posix path, lstat)`` of each regular file under ``src``; symlinks (to files
    or folders) are neither followed nor listed."""
    stack = [("", src)]
    while stack:
        rel_dir, folder = stack.pop()
        try:
            items = list(os.scandir(folder))
        except OSError:
            continue
        for item in items:
            rel = f"{rel_dir}/{item.name}" if rel_dir else item.name
            if item.is_dir(follow_symlinks=False):
                stack.append((rel, Path(item.path)))
            elif item.is_file(follow_symlinks=False):
                yield rel, item.stat(follow_symlinks=False)


# ---------------------------------------------------------------------------- baseline

def baseline_path(dest: Path) -> Path:
    return dest.with_name(BASELINE_NAME)


def take_baseline(src: Path, dest: Path) -> None:
    """Record what ``src`` (the project's outputs/) holds before a sharedVolumes run starts,
    beside ``dest`` (the run's outputs folder), where every later supervisor of the run finds
    it. Call it before anything of the run can write."""
    path = baseline_path(dest)
    with open(path, "w", encoding="utf-8") as fh:
        # The file system's own clock, now: what was changed at or after it is racily clean.
        now_ns = os.fstat(fh.fileno()).st_mtime_ns
        files: dict[str, list[object]] = {}
        for rel, st in regular_files(src):
            entry: list[object] = list(_stamps(st))
            if st.st_ctime_ns >= now_ns:
                try:
                    entry.append(file_sha256(src / rel))
                except OSError:
                    continue  # gone meanwhile: whatever is there at the end is new
            files[rel] = entry
        json.dump({"files": files}, fh)


class Baseline:
    """Decides whether a file under the shared outputs/ is the run's (see the module doc)."""

    def __init__(self, files: dict[str, list[object]] | None, since_ns: int):
        self.files = files  # None: no baseline was taken, only ``since_ns`` decides
        self.since_ns = since_ns

    @classmethod
    def load(cls, dest: Path) -> Baseline:
        try:
            data = json.loads(baseline_path(dest).read_text(encoding="utf-8"))
            files = data["files"]
            if isinstance(files, dict):
                return cls(files, 0)
        except (OSError, ValueError, KeyError, TypeError):
            pass  # none, or half-written by a supervisor that died: the fallback decides
        try:
            since = os.stat(dest.with_name(SPEC_NAME)).st_mtime_ns
        except OSError:
            since = 0
        return cls(None, since)

    def is_runs(self, path: Path, rel: str, st: os.stat_result) -> bool:
        if self.files is None:
            return st.st_ctime_ns >= self.since_ns
        entry = self.files.get(rel)
        if entry is None or tuple(entry[:4]) != _stamps(st):
            return True
        if len(entry) > 4:  # racily clean when taken: the content decides
            try:
                return file_sha256(path) != entry[4]
            except OSError:
                return False
        return False


# ---------------------------------------------------------------------------- into dest

def _safe_parts(rel: str) -> list[str] | None:
    parts = PurePosixPath(rel).parts
    if not parts or parts[0] == "/" or any(p in ("..", ".") for p in parts):
        return None
    return list(parts)


def _open_folder(dest: Path, names: list[str]) -> int:
    """A descriptor of ``dest/names...``, made where missing; a symlink on the way is an
    error (ELOOP), never followed, so nothing lands outside ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for name in names:
            try:
                os.mkdir(name, 0o755, dir_fd=fd)
            except FileExistsError:
                pass
            inner = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = inner
    except BaseException:
        os.close(fd)
        raise
    return fd


def _create(dest: Path, parts: list[str]) -> int:
    """A new file at ``dest/parts`` for writing (an existing one is truncated, a symlink
    there refused)."""
    folder = _open_folder(dest, parts[:-1])
    try:
        return os.open(parts[-1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600,
                       dir_fd=folder)
    finally:
        os.close(folder)


def write_sparse(read: Callable[[int], bytes], fd: int) -> int:
    """Copy a stream to ``fd``, seeking over blocks of zeros so they stay holes (a tar stream
    carries a sparse file's holes as zeros); the bytes written."""
    size = 0
    while block := read(BLOCK):
        n = len(block)
        if block == _ZEROS if n == BLOCK else not any(block):
            os.lseek(fd, n, os.SEEK_CUR)
        else:
            view = memoryview(block)
            while view:
                view = view[os.write(fd, view):]
        size += n
    os.ftruncate(fd, size)  # a trailing hole
    return size


def copy_sparse(fin: int, fout: int, size: int) -> None:
    """The data ranges of ``fin`` (SEEK_DATA/SEEK_HOLE) into ``fout``: holes stay holes (a
    plain copy, as shutil.copy2 does, writes a sparse checkpoint's holes out in full)."""
    offset = 0
    while offset < size:
        try:
            start = os.lseek(fin, offset, os.SEEK_DATA)
        except OSError as err:
            if err.errno == errno.ENXIO:  # nothing but a hole from here
                break
            raise
        end = min(os.lseek(fin, start, os.SEEK_HOLE), size)
        os.lseek(fout, start, os.SEEK_SET)
        _copy_range(fin, fout, start, end)
        offset = end
    os.ftruncate(fout, size)


def _copy_range(fin: int, fout: int, start: int, end: int) -> None:
    offset = start
    try:
        while offset < end and (sent := os.sendfile(fout, fin, offset, end - offset)):
            offset += sent
    except OSError:  # no sendfile between these files: reads and writes
        while offset < end and (block := os.pread(fin, min(BLOCK, end - offset), offset)):
            os.write(fout, block)
            offset += len(block)


def _finish(fd: int, mode: int, mtime_ns: int) -> None:
    os.fchmod(fd, mode & 0o777 | 0o600)  # the run's own bits, and always ours to read and remove
    os.utime(fd, ns=(mtime_ns, mtime_ns))


# ---------------------------------------------------------------------------- collectors

def collect_outputs_dir(src: Path, dest: Path, move: bool) -> list[str]:
    """The run's files of ``src`` into ``dest``: all of them moved (a snapshot's outputs/, the
    run's alone), or, from a sharedVolumes project's outputs/, those the run created or changed
    (``Baseline``) copied. The relative paths, sorted."""
    if not src.is_dir():
        return []
    baseline = None if move else Baseline.load(dest)
    copied: list[str] = []
    for rel, st in regular_files(src):
        path = src / rel
        parts = rel.split("/")
        if baseline is not None and not baseline.is_runs(path, rel, st):
            continue
        if move:
            folder = _open_folder(dest, parts[:-1])
            try:
                os.replace(path, parts[-1], dst_dir_fd=folder)
            finally:
                os.close(folder)
        else:
            _copy_file(path, dest, parts)
        copied.append(rel)
    return sorted(copied)


def _copy_file(path: Path, dest: Path, parts: list[str]) -> None:
    try:
        fin = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as err:
        if err.errno == errno.ELOOP:  # turned into a symlink since it was listed
            return
        raise
    try:
        st = os.fstat(fin)
        fout = _create(dest, parts)
        try:
            copy_sparse(fin, fout, st.st_size)
            _finish(fout, st.st_mode, st.st_mtime_ns)
        finally:
            os.close(fout)
    finally:
        os.close(fin)


def extract_tar(stream: BinaryIO, dest: Path) -> list[str]:
    """The regular files of an ``outputs/`` tar stream (``GET /containers/{id}/archive``) into
    ``dest``, read once front to back; the relative paths, sorted."""
    import tarfile  # only runs whose outputs come out of a container need it

    copied: list[str] = []
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            parts = _safe_parts(PurePosixPath(member.name).as_posix())
            if not member.isfile() or parts is None or len(parts) < 2:
                continue
            parts = parts[1:]  # drop the leading "outputs"
            source = tar.extractfile(member)
            if source is None:
                continue
            fd = _create(dest, parts)
            try:
                write_sparse(source.read, fd)
                _finish(fd, member.mode, int(member.mtime) * 1_000_000_000)
            finally:
                os.close(fd)
            copied.append("/".join(parts))
    return sorted(copied)
