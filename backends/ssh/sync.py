"""A run's files to a remote host, incrementally: content hashes decide, never mtimes.

One exec channel per sync runs a small Python program on the host (python3 is all it needs;
never rsync), started while the client still hashes. The client hashes each file (sha256; a
stamp cache of path, size, mtime_ns, ctime_ns and inode skips re-reading a file not touched
since, and still the hash decides) and sends the tree (path -> sha256 and exec bit, link or
folder); once it has recorded the tree it last synced for the project on this host, it sends
only the difference. The host answers with the blobs it lacks; only those travel, in ONE
stream of frames on the same channel: raw for data zlib cannot shrink (probed on its first
bytes), else through one zlib stream (level 1: the link, not the CPU, is rarely the limit),
read, hashed, compressed and sent in a thread while the loop writes. The host checks each blob's
hash and writes it straight into the run folder: a small one (up to 1 MB) held whole, checked,
then written by one of a few writer threads (each file is a few round trips to the file system,
and on FUSE to its daemon: kept queued, they are not waited on one at a time), a larger one as
it arrives.

The run folder: the project's last one (a finished run's folder becomes ``<project>/.tree``)
when no run holds it, each file kept when its stamp says it was not touched since it was written
there, the rest rewritten or removed; else a new folder. Files come from the blobs just received,
or by copies (reflinks where the filesystem has them; never hard links: a run may rewrite its
files, as a local snapshot allows) from the host's content-addressed cache
(``~/.labdeck/cache/<sha256>[x]``), which gets the blobs received: the first 8 MB as they
arrive, the rest after the answer, while the run starts. So a second run of an unchanged
project sends a few hundred bytes, and a file deleted from the project is not in the next
run's folder.

Cached blobs are read-only with a sentinel mtime: one changed behind labdeck's back (as root)
changes its mtime, and the next sync sees the entry as missing and sends it again.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import posixpath
import re
import shlex
import stat
import struct
import time
import zlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from ..errors import TargetError

if TYPE_CHECKING:
    import asyncssh

REMOTE_BASE = "~/.labdeck"
ZLEVEL = 1  # zlib level of the blob stream (measured: bench/bench_remote_rig.py)
CHUNK = 1 << 20  # bytes read (and framed) at a time
PROBE = 2048  # a blob whose first PROBE bytes do not shrink by 10% travels as it is
PROGRESS_EVERY = 0.5  # seconds between two progress lines

# Runs on the remote host as ``python3 -c``. Each message is its length on a line, then zlib'd
# JSON. The client sends the tree (``entries``: rel -> "d", "l:<target>" or "f:<key>") or, when
# it recorded the host's last tree of the project (``have``), only the difference; the host
# answers the blobs its cache lacks (or asks for the whole tree when its last one is another),
# reads them as frames, makes the run folder and says so.
_REMOTE = r'''
import fcntl, hashlib, json, os, queue, shutil, struct, sys, threading, time, zlib
began = time.time()
marks = {}
def mark(name):
    marks[name] = round(time.time() - began, 4)
SENTINEL = 946684800
INLINE = 8 << 20
SMALL = 1 << 20
WRITERS = 4
STAMPS = ".labdeck-tree.json"
inp, out = sys.stdin.buffer, sys.stdout
def say(obj):
    out.write(json.dumps(obj) + "\n")
    out.flush()
def exact(n):
    b = inp.read(n)
    if len(b) != n:
        raise SystemExit("the sync stream ended early")
    return b
def message():
    return json.loads(zlib.decompress(exact(int(inp.readline()))))
def ident(entries):
    text = json.dumps(entries, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()
# File descriptors rather than file objects and paths: on a FUSE file system (the test rig's)
# each path lookup and attribute call is a round trip to its daemon.
UMASK = os.umask(0o022)
os.umask(UMASK)
def create(path, mode):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    if mode & UMASK:
        os.fchmod(fd, mode)
    return fd
def write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
clone = [True]
def copy_fd(s, d):
    """A reflink where the file system has them (btrfs, XFS: no data copied, as cp
    --reflink=auto), else an in-kernel copy, else reads and writes."""
    if clone[0]:
        try:
            fcntl.ioctl(d, 0x40049409, s)  # FICLONE
            return
        except OSError:
            clone[0] = False  # not this file system: do not ask again
    size, offset = os.fstat(s).st_size, 0
    try:
        while offset < size:
            done = os.sendfile(d, s, offset, size - offset)
            if not done:
                break
            offset += done
    except OSError:  # no sendfile for these files: plain reads
        os.lseek(s, offset, os.SEEK_SET)
        while True:
            block = os.read(s, 1 << 20)
            if not block:
                break
            write_all(d, block)
def mode_of(key):
    return 0o755 if key.endswith("x") else 0o644
# Writer threads: each file made is a few round trips to the file system (on FUSE, to its
# daemon: create, write, flush); one thread waiting on each in turn leaves the daemon idle
# while this program reads, inflates and hashes, and every wake-up waits for a CPU on a loaded
# host. WRITERS threads keep requests queued (measured on the rig: 1,000 files in ~4.5 s with
# 4 threads, ~6.3 s with one). The queue bounds the bytes held (SMALL bytes a job at most).
jobs = queue.Queue(64)
failed = []
writers = []
def worker():
    while True:
        job = jobs.get()
        if job is None:
            return
        if not failed:
            try:
                job()
            except BaseException as err:
                failed.append(err)
def check_writers():
    if failed:
        raise SystemExit("cannot write the run folder: %s" % (failed[0],))
def submit(job):
    check_writers()
    if not writers:
        for _ in range(WRITERS):
            t = threading.Thread(target=worker)
            t.daemon = True
            t.start()
            writers.append(t)
    jobs.put(job)
def drain():
    """Every job done (and the threads gone: the cache fill below forks)."""
    for _ in writers:
        jobs.put(None)
    for t in writers:
        t.join()
    del writers[:]
    check_writers()
req = message()
base = os.path.expanduser(req["base"])
cache = os.path.join(base, "cache")
root = os.path.join(base, req["run"])
proj = os.path.dirname(root)
tree = os.path.join(proj, ".tree")
kept = os.path.join(proj, ".manifest.json")
os.makedirs(cache, exist_ok=True)
os.makedirs(proj, exist_ok=True)
# The last tree synced for this project: the client sends what changed since the one it
# recorded, or everything when the host has another (or none).
entries = None
if req.get("have"):
    try:
        with open(kept) as f:
            old = json.load(f)
        if old.get("id") == req["have"]:
            entries = old["entries"]
            for rel, value in req["diff"].items():
                if value is None:
                    entries.pop(rel, None)
                else:
                    entries[rel] = value
    except (OSError, ValueError, KeyError, AttributeError):
        entries = None
if entries is None and "entries" in req:
    entries = req["entries"]
if entries is None or ident(entries) != req["id"]:
    say({"full": True})
    entries = message()["entries"]
    if ident(entries) != req["id"]:
        raise SystemExit("the manifest does not match its id")
listed = set(os.listdir(cache))  # one read of the folder, not a lookup per key
def good(key):
    if key not in listed:
        return False
    try:
        return int(os.stat(os.path.join(cache, key)).st_mtime) == SENTINEL
    except OSError:
        return False
def stamp(st):
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
# The run folder: the project's last tree when no run holds it (its files whose stamps say
# they were not touched since they were written stay; the rest is removed), else a new one.
stamps = {}
if not os.path.lexists(root):
    try:
        os.rename(tree, root)
        with open(os.path.join(root, STAMPS)) as f:
            stamps = json.load(f)
        os.unlink(os.path.join(root, STAMPS))
    except (OSError, ValueError):
        stamps = {}
if os.path.lexists(root) and not stamps:
    shutil.rmtree(root)
same = set()
def sweep(top, rel_top):
    for entry in os.scandir(top):
        rel = rel_top + entry.name
        want = entries.get(rel)
        if entry.is_symlink():
            ok = want == "l:" + os.readlink(entry.path)
        elif entry.is_dir():
            ok = want == "d"
            if ok:
                sweep(entry.path, rel + "/")
        else:
            old = stamps.get(rel)
            ok = (want is not None and old is not None and want[2:] == old[0]
                  and entry.is_file() and stamp(entry.stat(follow_symlinks=False)) == old[1:])
        if ok:
            same.add(rel)
        elif entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry.path)
        else:
            os.unlink(entry.path)
if stamps:
    try:
        sweep(root, "")
    except OSError:  # what a run left there cannot be removed (another user's): set it aside
        aside = os.path.join(proj, ".old-%d-%d" % (os.getpid(), int(time.time())))
        os.rename(root, aside)
        shutil.rmtree(aside, ignore_errors=True)
        same.clear()
        stamps = {}
        os.makedirs(root)
else:
    os.makedirs(root)
mark("walk")
todo = []
for rel in sorted(entries):
    value = entries[rel]
    if rel in same:
        continue
    path = os.path.join(root, rel)
    if value == "d":
        os.makedirs(path, exist_ok=True)
    elif value.startswith("l:"):
        os.symlink(value[2:], path)
    else:
        todo.append((rel, value[2:]))
first = {}
for rel, key in todo:
    first.setdefault(key, rel)
need = [k for k in first if not good(k)]
answer = {"root": root, "home": os.path.expanduser("~"), "uid": os.getuid(), "gid": os.getgid()}
if len(need) == len(set(v for v in entries.values() if v.startswith("f:"))):
    answer["all"] = True  # a first sync: not 5,000 keys back
else:
    answer["missing"] = need
say(answer)
mark("missing")
# Frames: a kind byte, a 4-byte length, the payload. F: a blob begins (its key, 8-byte size);
# R: its bytes as they are; Z: its bytes through the one zlib stream (sync-flushed at each
# blob's end); E: the end. Each blob is written where the run folder first wants it.
# The first INLINE bytes are cached as they arrive; the rest after the answer (below).
wanted = set(need)
later = []
inline = [INLINE]
def cache_file(key):
    """A temporary file for a blob of the cache, read-only from the start (its fd writes)."""
    tmp = os.path.join(cache, ".tmp-%d-%s" % (os.getpid(), key))
    return tmp, create(tmp, 0o555 if key.endswith("x") else 0o444)
def into_cache(tmp, fd, key):
    os.utime(fd, (SENTINEL, SENTINEL))
    os.close(fd)
    os.replace(tmp, os.path.join(cache, key))
stamped = {}
def put_small(rel, key, parts, cached):
    """A writer's job: a blob held whole (its hash checked) written into the run folder and,
    while the first INLINE bytes last, into the cache."""
    fd = create(os.path.join(root, rel), mode_of(key))
    try:
        for b in parts:
            write_all(fd, b)
        stamped[rel] = stamp(os.fstat(fd))
    finally:
        os.close(fd)
    if cached:
        tmp, c = cache_file(key)
        try:
            for b in parts:
                write_all(c, b)
        except BaseException:
            os.close(c)
            os.unlink(tmp)
            raise
        into_cache(tmp, c, key)
class Small(object):
    """A blob of at most SMALL bytes: held until its end, checked, then left to a writer."""
    def __init__(self, key, size):
        self.key, self.size, self.got, self.parts = key, size, 0, []
        self.h = hashlib.sha256()
    def write(self, b):
        self.h.update(b)
        self.parts.append(b)
        self.got += len(b)
    def finish(self):
        if self.got != self.size or self.h.hexdigest() != self.key[:64]:
            raise SystemExit("hash mismatch for " + self.key)
        cached = self.size <= inline[0]
        if cached:
            inline[0] -= self.size
        else:
            later.append(self.key)
        submit(lambda: put_small(first[self.key], self.key, self.parts, cached))
def blob_for(key, size):
    if key not in wanted:
        raise SystemExit("unexpected blob " + key)
    wanted.discard(key)
    return Small(key, size) if size <= SMALL else Blob(key, size)
class Blob(object):
    """A larger blob: written as it arrives (few round trips a byte), by this thread."""
    def __init__(self, key, size):
        self.key, self.size, self.got = key, size, 0
        self.path = os.path.join(root, first[key])
        self.fd = create(self.path, mode_of(key))
        self.h = hashlib.sha256()
        self.c = None
        if size <= inline[0]:
            inline[0] -= size
            self.tmp, self.c = cache_file(key)
        else:
            later.append(key)
    def write(self, b):
        self.h.update(b)
        write_all(self.fd, b)
        if self.c is not None:
            write_all(self.c, b)
        self.got += len(b)
    def finish(self):
        stamped[first[self.key]] = stamp(os.fstat(self.fd))
        os.close(self.fd)
        if self.got != self.size or self.h.hexdigest() != self.key[:64]:
            os.unlink(self.path)
            if self.c is not None:
                os.close(self.c)
                os.unlink(self.tmp)
            raise SystemExit("hash mismatch for " + self.key)
        if self.c is not None:
            into_cache(self.tmp, self.c, self.key)
if need:
    unz = zlib.decompressobj()
    blob = None
    while True:
        head = exact(5)
        kind, size = head[:1], struct.unpack(">I", head[1:])[0]
        payload = exact(size)
        if kind == b"F":
            if blob is not None:
                blob.finish()
            blob = blob_for(payload[:-8].decode("ascii"), struct.unpack(">Q", payload[-8:])[0])
        elif kind == b"R" and blob is not None:
            blob.write(payload)
        elif kind == b"Z" and blob is not None:
            while True:
                data = unz.decompress(payload, 1 << 20)
                blob.write(data)
                payload = unz.unconsumed_tail
                if not payload and len(data) < 1 << 20:
                    break
        elif kind == b"E":
            break
        else:
            raise SystemExit("bad frame in the sync stream")
    if blob is not None:
        blob.finish()
    if wanted:
        raise SystemExit("%d blobs did not arrive" % len(wanted))
drain()  # every blob in place (and stamped) before the copies read them
mark("blobs")
# The other files: copies (never hard links: a run may rewrite a project file in place, as its
# local snapshot allows, and must not change the cache or another run's), from the cache or
# from the blob just written. A reflink where the filesystem has them (btrfs, XFS: no data
# copied, as cp --reflink=auto), else an in-kernel copy.
def copy_one(rel, key, source):
    s = os.open(source, os.O_RDONLY)
    try:
        d = create(os.path.join(root, rel), mode_of(key))
        try:
            copy_fd(s, d)
            stamped[rel] = stamp(os.fstat(d))
        finally:
            os.close(d)
    finally:
        os.close(s)
written = {}
sent = set(need)
for rel, key in todo:
    if rel not in stamped:
        source = os.path.join(root, first[key]) if key in sent else os.path.join(cache, key)
        submit(lambda rel=rel, key=key, source=source: copy_one(rel, key, source))
drain()
for rel, key in todo:
    written[rel] = [key] + stamped[rel]
for rel in same:
    if rel in stamps:
        written[rel] = stamps[rel]
mark("copies")
with open(os.path.join(root, STAMPS), "w") as f:
    json.dump(written, f)
for d in req["mkdirs"]:
    os.makedirs(os.path.expanduser(d), exist_ok=True)
tmp = kept + ".tmp-%d" % os.getpid()
with open(tmp, "w") as f:
    json.dump({"id": req["id"], "entries": entries}, f)
os.replace(tmp, kept)
mark("end")
marks["cpu"] = round(sum(os.times()[:2]), 3)
# The other blobs received go into the cache after the answer, in a detached child holding
# cache/.fill.lock (the run starts meanwhile): each copied from the run folder in the kernel,
# kept only when its stamp is the one it had when written here, before and after the copy (the
# run may already be rewriting it; ctime moves on any write; then it is not cached).
lock = None
if later:
    lock = open(os.path.join(cache, ".fill.lock"), "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    os.chdir(root)  # the child's paths follow the folder when the run's end moves it
    if os.fork() == 0:
        try:
            os.setsid()
            os.nice(10)  # behind the run starting meanwhile
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            for key in later:
                tmp, d, s = None, None, None
                try:
                    s = os.open(first[key], os.O_RDONLY)
                    if stamp(os.fstat(s)) != stamped[first[key]]:
                        raise OSError("changed")
                    tmp, d = cache_file(key)
                    copy_fd(s, d)
                    if stamp(os.fstat(s)) != stamped[first[key]]:
                        raise OSError("changed")  # during the copy
                    into_cache(tmp, d, key)
                    d = None
                except OSError:
                    if d is not None:
                        os.close(d)
                    if tmp is not None:
                        try:
                            os.unlink(tmp)
                        except OSError:
                            pass
                finally:
                    if s is not None:
                        os.close(s)
        finally:
            os._exit(0)
say({"ok": True, "kept": sum(1 for rel in same if entries[rel].startswith("f:")),
     "marks": marks})
'''


@dataclass
class Manifest:
    """What a run folder holds: relative paths -> cache keys, folders, symlinks."""

    files: list[tuple[str, str]] = field(default_factory=list)  # (rel, key)
    dirs: list[str] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)
    blobs: dict[str, tuple[Path, int]] = field(default_factory=dict)  # key -> (local, size)

    @property
    def total_bytes(self) -> int:
        return sum(size for _, size in self.blobs.values())

    def extend(self, other: Manifest) -> None:
        self.files += other.files
        self.dirs += [rel for rel in other.dirs if rel not in self.dirs]
        self.links += other.links
        for key, blob in other.blobs.items():
            self.blobs.setdefault(key, blob)

    def entries(self) -> dict[str, str]:
        """The tree as the host keeps it: rel -> "d", "l:<target>" or "f:<key>"."""
        tree = {rel: "d" for rel in self.dirs}
        tree.update((rel, "l:" + target) for rel, target in self.links)
        tree.update((rel, "f:" + key) for rel, key in self.files)
        return tree


def tree_id(entries: dict[str, str]) -> str:
    """The same digest the host computes of its last tree (``ident`` there)."""
    text = json.dumps(entries, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class SyncResult:
    root: str  # the run folder on the remote host (absolute)
    home: str
    uid: int
    gid: int
    files: int
    sent_files: int
    bytes_sent: int  # manifest and blob stream, as written to the channel
    payload_bytes: int  # the blob stream alone: 0 when the host had every file
    kept_files: int = 0  # files of the project's last tree on the host left as they were
    remote_marks: dict[str, float] = field(default_factory=dict)  # host's phases, s from start


class StampCache:
    """Hashes of files not touched since they were hashed: path -> (size, mtime_ns, ctime_ns,
    inode, sha256). The hash is still the content's; a stamp only says the file was not
    written since (ctime moves on any write, chmod or utime, and cannot be set back). A file
    changed less than RACY seconds ago is hashed and not remembered: within the filesystem's
    clock tick a second write could leave the stamp as it was. Saving keeps only the paths
    looked up since loading (the cache holds one tree, not every snapshot ever hashed)."""

    RACY = 2.0

    def __init__(self, path: Path | None):
        self.path = path
        self.old: dict[str, list[Any]] = {}
        self.new: dict[str, list[Any]] = {}
        self.hits = 0
        if path is not None:
            try:
                loaded = json.loads(path.read_text())
                if isinstance(loaded, dict):
                    self.old = loaded
            except (OSError, ValueError):
                pass

    def digest(self, path: Path, info: os.stat_result) -> str:
        name = str(path)
        stamp = [info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino]
        known = self.old.get(name)
        if isinstance(known, list) and len(known) == 5 and known[:4] == stamp:
            self.hits += 1
            self.new[name] = known
            return str(known[4])
        digest = _hash(path)
        if time.time_ns() - max(info.st_mtime_ns, info.st_ctime_ns) > self.RACY * 1e9:
            self.new[name] = [*stamp, digest]
        return digest

    def save(self) -> None:
        if self.path is None or self.new == self.old:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f"{self.path.name}.tmp-{os.getpid()}")
            tmp.write_text(json.dumps(self.new, separators=(",", ":")))
            os.replace(tmp, self.path)
        except OSError:
            pass  # a cache: the next sync hashes again


def _hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as src:
        while block := src.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def build_manifest(sources: Iterable[tuple[str, Path]], extra_dirs: Iterable[str] = (),
                   stamps: Path | None = None) -> Manifest:
    """Hash every file under each (prefix, folder); blocking: call it in a thread. ``stamps``:
    a StampCache file, so that files untouched since the last sync are not read again."""
    manifest = Manifest()
    cache = StampCache(stamps)

    def walk(folder: str, rel_folder: str) -> None:  # os.scandir: a third of rglob's time
        with os.scandir(folder) as listing:
            found = sorted(listing, key=lambda entry: entry.name)
        for entry in found:
            rel = f"{rel_folder}/{entry.name}"
            info = entry.stat(follow_symlinks=False)
            if stat.S_ISLNK(info.st_mode):
                manifest.links.append((rel, os.readlink(entry.path)))
            elif stat.S_ISDIR(info.st_mode):
                if entry.name != "__pycache__":
                    manifest.dirs.append(rel)
                    walk(entry.path, rel)
            elif stat.S_ISREG(info.st_mode):
                path = Path(entry.path)
                key = cache.digest(path, info) + ("x" if info.st_mode & 0o111 else "")
                manifest.files.append((rel, key))
                manifest.blobs.setdefault(key, (path, info.st_size))

    for prefix, folder in sources:
        manifest.dirs.append(prefix)
        walk(str(folder), prefix)
    manifest.dirs += list(extra_dirs)
    cache.save()
    return manifest


SNAPSHOT_MANIFEST = "snapshot.json"  # a run's content-addressed snapshot (backends/objects.py)


def manifest_from_snapshot(run_dir: Path, workdir: Path, prefix: str = "work"
                           ) -> Manifest | None:
    """The manifest of ``workdir``, a run's checkout of its content-addressed snapshot, from the
    run's ``snapshot.json`` (path, sha256, size, mode, mtime_ns of each file; the checkout
    checks each object against its hash): content hashes without reading any file again. None
    when the run has none, or one of a version this code does not read: then hash."""
    try:
        data = json.loads((run_dir / SNAPSHOT_MANIFEST).read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("version") != 1:
            return None
        manifest = Manifest()
        dirs = {prefix}
        for path, digest, size, mode, _ in data["files"]:
            parts = str(path).split("/")
            if (len(str(digest)) != 64 or str(path).startswith("/")
                    or any(part in ("", ".", "..") for part in parts)):
                return None
            dirs.update(f"{prefix}/{'/'.join(parts[:i])}" for i in range(1, len(parts)))
            key = str(digest) + ("x" if int(mode) & 0o111 else "")
            manifest.files.append((f"{prefix}/{path}", key))
            manifest.blobs.setdefault(key, (workdir / str(path), int(size)))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    manifest.dirs = sorted(dirs)
    return manifest


class _Counts:
    """What the blob writer has put in the stream so far (read by the loop for progress)."""

    def __init__(self) -> None:
        self.files = 0
        self.bytes = 0


def _frame(kind: bytes, size: int) -> bytes:
    return kind + struct.pack(">I", size)


def _squeezes(sample: bytes) -> bool:
    """Whether zlib shrinks this (the first bytes of a blob) by 10% at least: random or already
    compressed data travels as it is (zlib would spend ~20 ns a byte to gain nothing)."""
    if len(sample) < 256:
        return True
    return len(zlib.compress(sample, 1)) < 0.9 * len(sample)


def _write_blobs(manifest: Manifest, keys: list[str], out: BinaryIO,
                 counts: _Counts | None = None) -> None:
    """The frames of the host's reader (``_REMOTE``): F (key, size), then R (as is) or Z (one
    zlib stream over every compressible blob, sync-flushed at each blob's end) chunks, E."""
    counts = counts if counts is not None else _Counts()
    packer = zlib.compressobj(ZLEVEL)
    for key in keys:
        path, size = manifest.blobs[key]
        name = key.encode("ascii") + struct.pack(">Q", size)
        out.write(_frame(b"F", len(name)) + name)
        squeeze: bool | None = None
        read = 0
        with open(path, "rb", buffering=0) as src:
            while block := src.read(CHUNK):
                read += len(block)
                if squeeze is None:
                    squeeze = _squeezes(block[:PROBE])
                if squeeze:
                    packed = packer.compress(block)
                    if packed:
                        out.write(_frame(b"Z", len(packed)) + packed)
                else:
                    out.write(_frame(b"R", len(block)))
                    out.write(block)
                counts.bytes += len(block)
        if squeeze:
            packed = packer.flush(zlib.Z_SYNC_FLUSH)
            out.write(_frame(b"Z", len(packed)) + packed)
        if read != size:
            raise TargetError(f"{path} changed while it was being synced: submit again")
        counts.files += 1
    out.write(_frame(b"E", 0))


def sync_progress_line(files: int, total_files: int, sent: int, total: int) -> str:
    """``sync: 120/5000 files, 12.0/200.0 MB`` (MB = 2**20 bytes, as the preview's): blobs
    the host lacked, written to the stream so far, of those to send; parse with SYNC_PROGRESS."""
    return (f"sync: {files}/{total_files} files, {sent / 1048576:.1f}/{total / 1048576:.1f} MB")


SYNC_PROGRESS = re.compile(r"^sync: (\d+)/(\d+) files, (\d+\.\d)/(\d+\.\d) MB$")


PREVIEW_BYTES = 20 * 1024 * 1024  # an upload at least this large is previewed before it goes


def upload_preview(sizes: Iterable[tuple[str, int]], top: int = 3) -> str:
    """``N MB in F files; largest: a 5.0 MB, b 1.0 MB`` for (path, size) pairs."""
    items = list(sizes)
    total = sum(size for _, size in items)
    largest = sorted(items, key=lambda item: item[1], reverse=True)[:top]
    text = f"{_mb(total)} in {len(items):,} file{'s' if len(items) != 1 else ''}"
    if largest:
        text += "; largest: " + ", ".join(f"{rel} {_mb(size)}" for rel, size in largest)
    return text


def _mb(size: int) -> str:
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / (1024 * 1024):.1f} MB"


def remote_python(script: str, *args: str) -> str:
    return shlex.join(["python3", "-c", script, *args])


async def sync_run(conn: asyncssh.SSHClientConnection, run_rel: str,
                   manifest: Manifest | Awaitable[Manifest], mkdirs: Iterable[str] = (),
                   base: str = REMOTE_BASE,
                   before_send: Callable[[list[str]], None] | None = None, *,
                   progress: Callable[[str], None] | None = None,
                   record: Path | None = None) -> SyncResult:
    """Make ``<base>/<run_rel>`` on the host hold exactly ``manifest``; send only what the
    host's cache lacks (``before_send`` is told those keys first: a preview; ``progress`` gets
    ``sync_progress_line``s while they go). ``record``: a file where this client keeps the
    tree it last synced for the project (``<base>/<dirname of run_rel>``) on this host, so
    that the next sync sends only the difference. ``manifest`` may still be coming (an
    awaitable): the host's program starts meanwhile."""
    import asyncssh

    from ..docker.api import written_in_thread  # the thread-to-loop byte pipe

    try:
        proc = await conn.create_process(remote_python(_REMOTE), encoding=None)
    except (OSError, asyncssh.Error) as err:
        if asyncio.iscoroutine(manifest):
            manifest.close()  # never awaited now
        raise TargetError(f"cannot start the sync on the remote host: {err}") from err
    try:
        if not isinstance(manifest, Manifest):
            manifest = await manifest
    except BaseException:
        proc.close()
        raise
    entries = manifest.entries()
    ident = tree_id(entries)
    request: dict[str, object] = {"v": 2, "base": base, "run": run_rel, "id": ident,
                                  "mkdirs": list(mkdirs)}
    previous = _load_record(record)
    if previous is not None:
        old_id, old = previous
        diff: dict[str, str | None] = {rel: None for rel in old if rel not in entries}
        diff.update((rel, value) for rel, value in entries.items() if old.get(rel) != value)
        request.update(have=old_id, diff=diff)
    else:
        request["entries"] = entries
    sent = 0
    payload = 0
    try:
        sent += _send(proc, request)
        await proc.stdin.drain()
        answer = await _answer(proc)
        if answer.get("full"):  # the host's last tree is not the one recorded here
            sent += _send(proc, {"entries": entries})
            await proc.stdin.drain()
            answer = await _answer(proc)
        missing: list[str] = (list(dict.fromkeys(key for _, key in manifest.files))
                              if answer.get("all") else answer["missing"])
        if missing and before_send is not None:
            before_send(missing)
        if missing:
            counts = _Counts()
            total = sum(manifest.blobs[key][1] for key in missing)
            said = time.monotonic()
            async for chunk in written_in_thread(
                    lambda out: _write_blobs(manifest, missing, out, counts)):
                proc.stdin.write(chunk)
                await proc.stdin.drain()
                payload += len(chunk)
                if progress is not None and time.monotonic() - said >= PROGRESS_EVERY:
                    said = time.monotonic()
                    progress(sync_progress_line(counts.files, len(missing), counts.bytes, total))
            if progress is not None:
                progress(sync_progress_line(counts.files, len(missing), counts.bytes, total))
        proc.stdin.write_eof()
        done = await _answer(proc)
        if not done.get("ok"):
            raise TargetError(f"the sync on the remote host failed: {await _stderr(proc)}")
    except (OSError, asyncssh.Error) as err:
        raise TargetError(f"the sync to the remote host was cut: {err}") from err
    finally:
        proc.close()
    _save_record(record, ident, entries)
    return SyncResult(root=str(answer["root"]), home=str(answer["home"]),
                      uid=int(answer["uid"]), gid=int(answer["gid"]),
                      files=len(manifest.files), sent_files=len(missing),
                      bytes_sent=sent + payload, payload_bytes=payload,
                      kept_files=int(done.get("kept", 0)),
                      remote_marks=dict(done.get("marks") or {}))


def _send(proc: asyncssh.SSHClientProcess[bytes], message: object) -> int:
    packed = zlib.compress(json.dumps(message, separators=(",", ":")).encode(), 6)
    line = b"%d\n%b" % (len(packed), packed)
    proc.stdin.write(line)
    return len(line)


async def _answer(proc: asyncssh.SSHClientProcess[bytes]) -> dict[str, Any]:
    line = await proc.stdout.readline()
    try:
        answer = json.loads(line) if line else None
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise TargetError(f"the sync on the remote host failed: {await _stderr(proc)}")
    return answer


def _load_record(record: Path | None) -> tuple[str, dict[str, str]] | None:
    if record is None:
        return None
    try:
        loaded = json.loads(record.read_text())
        ident, entries = loaded["id"], loaded["entries"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(ident, str) or not isinstance(entries, dict):
        return None
    return ident, entries


def _save_record(record: Path | None, ident: str, entries: dict[str, str]) -> None:
    if record is None:
        return
    try:
        record.parent.mkdir(parents=True, exist_ok=True)
        tmp = record.with_name(f"{record.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps({"id": ident, "entries": entries}, separators=(",", ":")))
        os.replace(tmp, record)
    except OSError:
        pass  # the next sync sends the whole tree


async def _stderr(proc: asyncssh.SSHClientProcess[bytes]) -> str:
    await proc.wait_closed()
    text = (await proc.stderr.read()).decode("utf-8", "replace").strip()
    if proc.exit_status == 127 or "python3: not found" in text or "command not found" in text:
        return "python3 is not installed there (labdeck's sync needs it)"
    lines = text.splitlines()
    return lines[-1] if lines else f"exit status {proc.exit_status}"


async def remove_remote(conn: asyncssh.SSHClientConnection, root: str) -> None:
    """Delete a run folder on the host (best effort: the caller reports failures)."""
    await conn.run(shlex.join(["rm", "-rf", "--", root]), check=False)


def tree_folder(root: str) -> str:
    """Where a project's last run folder waits for the next sync: ``<project>/.tree``."""
    return posixpath.join(posixpath.dirname(root.rstrip("/")), ".tree")


async def release_remote(conn: asyncssh.SSHClientConnection, root: str) -> None:
    """A finished run's folder becomes its project's tree, which the next sync turns into its
    run folder by rewriting only what differs (or is deleted, when a tree is already there or
    a run holds it). Best effort, as ``remove_remote``."""
    tree = tree_folder(root)
    await conn.run(f"mv -T -- {shlex.quote(root)} {shlex.quote(tree)} 2>/dev/null || "
                   f"rm -rf -- {shlex.quote(root)}", check=False)
