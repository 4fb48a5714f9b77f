"""A run's files to a remote host, incrementally: content hashes decide, never mtimes.

One exec channel per sync runs a small Python program on the host (python3 is all it needs;
never rsync). The client sends a manifest (each file's relative path, sha256 and exec bit);
the host answers with the blobs its content-addressed cache (``~/.labdeck/cache/<sha256>[x]``)
lacks; only those travel, as ONE gzip tar stream on the same channel; the host checks each
blob's hash, then materialises the run folder by copies from the cache (reflinks where the
filesystem has them), writable as a local snapshot is. So a second run of an unchanged project
sends the manifest and nothing else, and a file deleted from the project is simply not in the
next run's folder.

Cached blobs are read-only with a sentinel mtime: one changed behind labdeck's back (as root)
changes its mtime, and the next sync sees the entry as missing and sends it again.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shlex
import stat
import tarfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from ..errors import TargetError

if TYPE_CHECKING:
    import asyncssh

REMOTE_BASE = "~/.labdeck"

# Runs on the remote host as ``python3 -c``: reads the manifest (its length on a line, then
# gzipped JSON), answers what is missing,
# reads the tar of the missing blobs, materialises the run folder, says "ok".
_REMOTE = r'''
import fcntl, gzip, hashlib, json, os, shutil, sys, tarfile
SENTINEL = 946684800
def copy_data(s, d):
    size, offset = os.fstat(s.fileno()).st_size, 0
    try:
        while offset < size:
            sent = os.sendfile(d.fileno(), s.fileno(), offset, size - offset)
            if not sent:
                break
            offset += sent
    except (AttributeError, OSError):  # no sendfile for files here: plain reads
        s.seek(offset)
        d.seek(offset)
        shutil.copyfileobj(s, d, 1 << 20)
req = json.loads(gzip.decompress(sys.stdin.buffer.read(int(sys.stdin.buffer.readline()))))
base = os.path.expanduser(req["base"])
cache = os.path.join(base, "cache")
root = os.path.join(base, req["run"])
os.makedirs(cache, exist_ok=True)
def good(key, size):
    try:
        st = os.stat(os.path.join(cache, key))
    except OSError:
        return False
    return st.st_size == size and int(st.st_mtime) == SENTINEL
need = sorted(k for k, s in req["blobs"].items() if not good(k, s))
home = os.path.expanduser("~")
sys.stdout.write(json.dumps({"missing": need, "root": root, "home": home,
                             "uid": os.getuid(), "gid": os.getgid()}) + "\n")
sys.stdout.flush()
if need:
    wanted = set(need)
    with tarfile.open(fileobj=sys.stdin.buffer, mode="r|gz") as tar:
        for m in tar:
            key = m.name
            if key not in wanted or not m.isfile():
                raise SystemExit("unexpected member " + key)
            src = tar.extractfile(m)
            tmp = os.path.join(cache, ".tmp-%d-%s" % (os.getpid(), key))
            h = hashlib.sha256()
            with open(tmp, "wb") as f:
                while True:
                    b = src.read(1 << 20)
                    if not b:
                        break
                    h.update(b)
                    f.write(b)
            if h.hexdigest() != key[:64]:
                os.unlink(tmp)
                raise SystemExit("hash mismatch for " + key)
            os.chmod(tmp, 0o555 if key.endswith("x") else 0o444)
            os.utime(tmp, (SENTINEL, SENTINEL))
            dst = os.path.join(cache, key)
            if os.path.lexists(dst):
                os.chmod(dst, 0o644)
                os.unlink(dst)
            os.replace(tmp, dst)
if os.path.lexists(root):
    shutil.rmtree(root)
os.makedirs(root)
for d in req["dirs"]:
    os.makedirs(os.path.join(root, d), exist_ok=True)
# Copies, never hard links: a run may rewrite a project file in place (its local snapshot
# allows it) and must not change the cache. A reflink where the filesystem has them (btrfs,
# XFS: no data copied, as cp --reflink=auto), else an in-kernel copy.
clone = True
for rel, key in req["files"]:
    src, dst = os.path.join(cache, key), os.path.join(root, rel)
    with open(src, "rb") as s, open(dst, "wb") as d:
        try:
            if not clone:
                raise OSError
            fcntl.ioctl(d.fileno(), 0x40049409, s.fileno())  # FICLONE
        except OSError:
            clone = False  # not this filesystem: do not ask again
            copy_data(s, d)
        os.fchmod(d.fileno(), 0o755 if key.endswith("x") else 0o644)
for rel, target in req["links"]:
    os.symlink(target, os.path.join(root, rel))
for d in req["mkdirs"]:
    os.makedirs(os.path.expanduser(d), exist_ok=True)
sys.stdout.write("ok\n")
sys.stdout.flush()
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


@dataclass(frozen=True)
class SyncResult:
    root: str  # the run folder on the remote host (absolute)
    home: str
    uid: int
    gid: int
    files: int
    sent_files: int
    bytes_sent: int  # manifest and tar stream, as written to the channel
    payload_bytes: int  # the tar stream alone: 0 when the host had every file


def _hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as src:
        while block := src.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def build_manifest(sources: Iterable[tuple[str, Path]], extra_dirs: Iterable[str] = ()
                   ) -> Manifest:
    """Hash every file under each (prefix, folder); blocking: call it in a thread."""
    manifest = Manifest()
    for prefix, folder in sources:
        manifest.dirs.append(prefix)
        for path in sorted(folder.rglob("*")):
            if "__pycache__" in path.parts:
                continue
            rel = f"{prefix}/{path.relative_to(folder).as_posix()}"
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                manifest.links.append((rel, os.readlink(path)))
            elif stat.S_ISDIR(info.st_mode):
                manifest.dirs.append(rel)
            elif stat.S_ISREG(info.st_mode):
                key = _hash(path) + ("x" if info.st_mode & 0o111 else "")
                manifest.files.append((rel, key))
                manifest.blobs.setdefault(key, (path, info.st_size))
    manifest.dirs += list(extra_dirs)
    return manifest


def _write_blobs(manifest: Manifest, keys: list[str], out: BinaryIO) -> None:
    # Level 6 (tarfile's own stream gzip is level 9: three times slower for ~2% fewer bytes).
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=6, mtime=0) as packed, \
            tarfile.open(fileobj=packed, mode="w|") as tar:
        for key in keys:
            path, size = manifest.blobs[key]
            info = tarfile.TarInfo(key)
            info.size = size
            info.mode = 0o644
            with open(path, "rb") as src:
                tar.addfile(info, src)


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


async def sync_run(conn: asyncssh.SSHClientConnection, run_rel: str, manifest: Manifest,
                   mkdirs: Iterable[str] = (), base: str = REMOTE_BASE,
                   before_send: Callable[[list[str]], None] | None = None) -> SyncResult:
    """Make ``<base>/<run_rel>`` on the host hold exactly ``manifest``; send only what the
    host's cache lacks (``before_send`` is told those keys first: a preview)."""
    import asyncssh

    from ..docker.api import written_in_thread  # the thread-to-loop byte pipe

    request = {"base": base, "run": run_rel,
               "blobs": {key: size for key, (_, size) in manifest.blobs.items()},
               "files": manifest.files, "dirs": manifest.dirs, "links": manifest.links,
               "mkdirs": list(mkdirs)}
    packed = gzip.compress(json.dumps(request).encode(), compresslevel=6, mtime=0)
    line = b"%d\n%b" % (len(packed), packed)  # the manifest, gzipped: ~half its hex hashes
    sent = len(line)
    payload = 0
    try:
        proc = await conn.create_process(remote_python(_REMOTE), encoding=None)
    except (OSError, asyncssh.Error) as err:
        raise TargetError(f"cannot start the sync on the remote host: {err}") from err
    try:
        proc.stdin.write(line)
        await proc.stdin.drain()
        answer_line = await proc.stdout.readline()
        if not answer_line:
            raise TargetError(f"the sync on the remote host failed: {await _stderr(proc)}")
        answer = json.loads(answer_line)
        missing: list[str] = answer["missing"]
        if missing and before_send is not None:
            before_send(missing)
        if missing:
            async for chunk in written_in_thread(
                    lambda out: _write_blobs(manifest, missing, out)):
                proc.stdin.write(chunk)
                await proc.stdin.drain()
                payload += len(chunk)
        proc.stdin.write_eof()
        done = await proc.stdout.readline()
        if done.strip() != b"ok":
            raise TargetError(f"the sync on the remote host failed: {await _stderr(proc)}")
    except (OSError, asyncssh.Error) as err:
        raise TargetError(f"the sync to the remote host was cut: {err}") from err
    finally:
        proc.close()
    return SyncResult(root=str(answer["root"]), home=str(answer["home"]),
                      uid=int(answer["uid"]), gid=int(answer["gid"]),
                      files=len(manifest.files), sent_files=len(missing),
                      bytes_sent=sent + payload, payload_bytes=payload)


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
