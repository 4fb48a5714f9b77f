"""Content-addressed snapshots: each file's bytes stored once per project, a run's snapshot a
manifest.

``.labdeck/objects/ab/cdef...`` holds one file per distinct content (its sha256), written through
a temporary file and a rename (never half-written) and read-only. A run keeps
``runs/<id>/snapshot.json``: path -> sha256, size, mode, mtime of each file that travelled (a
symlink to a file travels as its content, as the copy did; links to folders do not travel). Twenty
runs of an unchanged project cost twenty manifests and no bytes of content.

The targets still get a real folder, ``runs/<id>/snapshot`` (``RunContext.workdir``): a copy of
the objects (a reflink where the filesystem can), never hard links: a script may rewrite its own
files, and a container running as root would write through a read-only mode into the store. The
copy lives while the run does: ``.labdeck/materialised/<id>`` marks it, and once the run is
terminal ``drop_finished`` removes it (the engine does after each submit, prune and ``labdeck
store`` too); ``materialise`` rebuilds it exactly from the manifest whenever asked.

Hashing an unchanged 50 MB project on every watch-mode run is avoided by a stamp cache,
``.labdeck/stamps.json``: path -> (size, mtime_ns, ctime_ns, inode, sha256). A file is hashed
again when any of these change; a stamp is kept only for files whose last change (mtime and
ctime both: a rewrite whose mtime was put back shows in ctime only) is over two seconds before the
hash began, by the clock of the filesystem itself (a write in the same timestamp tick as the stat
could otherwise go unseen; FAT keeps mtimes to 2 s, a network filesystem stamps by its server's
clock).

Objects are trusted by name and size: one whose size is not the manifest's (a crash after the
rename, before its data reached the disk) is stored again from the project by the next snapshot,
and refused by ``materialise``; ``verify=True`` (a saved snapshot run again, checked out or
exported) hashes each object too, so damaged content is an error, never silently a run's files.

Collection (``collect``) removes the objects no manifest references, under an exclusive lock that
each snapshot holds shared from its first object written until its manifest is saved. A manifest
that cannot be read stops a collection (its objects might be all that is left of that run).

File names are str with lone surrogates for bytes that are not UTF-8 (as ``os`` gives them);
they are hashed as the bytes they stand for and kept in JSON as such.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import stat
import time
from _thread import get_ident
from pathlib import Path

from ._records import dataclass
from ._sha256 import sha256
from .errors import StorageError
from .snapshot import FileEntry, name_bytes

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import BinaryIO

OBJECTS = "objects"
STAMPS = "stamps.json"
LOCK = "objects.lock"
MATERIALISED = "materialised"
MANIFEST = "snapshot.json"  # in the run's folder
SNAPSHOT_DIR = "snapshot"  # the materialised copy, in the run's folder
MANIFEST_VERSION = 1
STAMP_SETTLE_NS = 2_000_000_000
_FICLONE = 0x40049409  # ioctl: share the source's blocks (btrfs, xfs, bcachefs...)


@dataclass(frozen=True)
class ManifestEntry:
    path: str  # POSIX, relative to the project root
    sha256: str
    size: int
    mode: int  # permission bits
    mtime_ns: int


@dataclass
class Manifest:
    files: list[ManifestEntry]

    @property
    def digest(self) -> str:
        """The snapshot's content hash, as ``snapshot.content_hash`` computes it from the files
        (the store's ``snapshot`` column): path, exec bit and file hash of each."""
        outer = sha256()
        for e in self.files:
            outer.update(name_bytes(
                f"{e.path}\0{int(bool(e.mode & stat.S_IXUSR))}\0{e.sha256}\n"))
        return outer.hexdigest()

    @property
    def size(self) -> int:
        return sum(e.size for e in self.files)

    def by_path(self) -> dict[str, ManifestEntry]:
        return {e.path: e for e in self.files}

    def to_json(self) -> dict[str, object]:
        return {"version": MANIFEST_VERSION, "digest": self.digest,
                "files": [[e.path, e.sha256, e.size, e.mode, e.mtime_ns] for e in self.files]}

    def save(self, run_dir: Path) -> None:
        tmp = run_dir / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), separators=(",", ":")))
        os.replace(tmp, run_dir / MANIFEST)

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Manifest:
        if not isinstance(data, dict):
            raise ValueError("not a manifest")
        version = data.get("version")
        if version != MANIFEST_VERSION:
            raise ValueError(f"manifest version {version!r}, this labdeck reads"
                             f" {MANIFEST_VERSION}")
        rows = data.get("files")
        if not isinstance(rows, list):
            raise ValueError("manifest without a file list")
        entries = [ManifestEntry(str(r[0]), str(r[1]), int(r[2]), int(r[3]), int(r[4]))
                   for r in rows]
        for e in entries:
            parts = e.path.split("/")
            if (len(e.sha256) != 64 or not e.path or e.path.startswith("/") or ".." in parts
                    or "" in parts or e.size < 0):
                raise ValueError(f"bad entry {e.path!r}")
        return cls(entries)

    @classmethod
    def load(cls, run_dir: Path) -> Manifest:
        return cls.from_json(json.loads((run_dir / MANIFEST).read_text(encoding="utf-8")))


def has_manifest(run_dir: Path) -> bool:
    return (run_dir / MANIFEST).is_file()


class _Lock:
    """``flock`` on ``.labdeck/objects.lock``: snapshots hold it shared, collection exclusive."""

    def __init__(self, state_dir: Path, exclusive: bool):
        self.path = state_dir / LOCK
        self.mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        self.fd = -1

    def __enter__(self) -> _Lock:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        fcntl.flock(self.fd, self.mode)
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)  # releases the lock
        self.fd = -1


class ObjectStore:
    def __init__(self, state_dir: Path):
        self.state_dir = state_dir
        self.root = state_dir / OBJECTS

    def path(self, digest: str) -> Path:
        return self.root / digest[:2] / digest[2:]

    def lock(self, exclusive: bool = False) -> _Lock:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        return _Lock(self.state_dir, exclusive)

    def has(self, digest: str) -> bool:
        try:
            os.stat(self.path(digest))
            return True
        except OSError:
            return False

    def size_of(self, digest: str) -> int:
        """The object's size in bytes, -1 when it is not stored."""
        try:
            return os.stat(self.path(digest)).st_size
        except OSError:
            return -1

    def put(self, src: Path, replace: bool = False) -> tuple[str, int]:
        """Store ``src``'s bytes (read once: copied while hashed); their sha256 and size. The
        name comes from what was read, so a file rewritten meanwhile is stored as read. A
        failure (a full disk) leaves nothing behind. ``replace``: over a stored object of that
        name (a damaged one)."""
        folder = self.root
        folder.mkdir(parents=True, exist_ok=True)
        with open(src, "rb") as fin:  # a file that cannot be read leaves no temporary one
            tmp = folder / f"tmp-{os.getpid()}-{time.monotonic_ns()}"
            try:
                digest = sha256()
                size = 0
                with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444),
                          "wb") as fout:
                    while block := fin.read(1 << 20):
                        digest.update(block)
                        fout.write(block)
                        size += len(block)
                hexdigest = digest.hexdigest()
                final = self.path(hexdigest)
                if os.path.exists(final) and not replace:
                    os.unlink(tmp)
                else:
                    final.parent.mkdir(exist_ok=True)
                    os.replace(tmp, final)
            except BaseException:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                raise
        return hexdigest, size

    def read_bytes(self, digest: str) -> bytes:
        """An object's content, checked against its name (``ObjectDamaged`` otherwise)."""
        path = self.path(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ObjectDamaged(f"{path}: missing from the object store") from None
        except OSError as err:
            raise StorageError(f"cannot read {path}: {err.strerror or err}") from err
        if sha256(data).hexdigest() != digest:
            raise ObjectDamaged(f"{path}: damaged (its content does not hash to its name)")
        return data

    def intact(self, digest: str) -> bool:
        """The object is stored and hashes to its name."""
        try:
            return file_digest(self.path(digest)) == digest
        except OSError:
            return False

    def verify(self, remove: bool = False) -> list[str]:
        """Hash every object; those that are not what their name says (removed with
        ``remove``: the next snapshot stores them again from the project's files)."""
        bad = []
        with self.lock(exclusive=remove):
            for digest in self.all_objects():
                if not self.intact(digest):
                    bad.append(digest)
                    if remove:
                        try:
                            os.unlink(self.path(digest))
                        except OSError:
                            pass
        return sorted(bad)

    def all_objects(self) -> dict[str, int]:
        """Every stored object: its sha256 -> bytes on disk (blocks)."""
        found: dict[str, int] = {}
        try:
            fans = list(os.scandir(self.root))
        except OSError:
            return found
        for fan in fans:
            if len(fan.name) != 2 or not fan.is_dir(follow_symlinks=False):
                continue
            for item in _scandir(Path(fan.path)):
                try:
                    found[fan.name + item.name] = item.stat(follow_symlinks=False).st_blocks * 512
                except OSError:
                    continue
        return found


# ------------------------------------------------------------------------ stamps and hashing


def _load_stamps(path: Path) -> dict[str, list[int | str]]:
    """The stamp cache; entries not of the expected shape are left out (a damaged file is a
    cache miss, never an error)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items()
            if isinstance(v, list) and len(v) == 5 and isinstance(v[4], str)
            and all(type(x) is int for x in v[:4])}


def _fs_now_ns(state_dir: Path) -> int:
    """The current time as the filesystem stamps files (a network filesystem uses its server's
    clock), read by touching the lock file; never later than this machine's clock."""
    now = time.time_ns()
    try:
        path = state_dir / LOCK
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))
        os.utime(path)
        return min(now, os.stat(path).st_mtime_ns)
    except OSError:
        return now


def file_digest(path: Path) -> str:
    digest = sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def snapshot(root: Path, files: list[FileEntry], state_dir: Path) -> Manifest:
    """Store each file's content (what is not stored yet) and return the manifest. The caller
    holds ``ObjectStore.lock()`` until the manifest is saved (collection waits for it)."""
    store = ObjectStore(state_dir)
    stamps_path = state_dir / STAMPS
    stamps = _load_stamps(stamps_path)
    fresh: dict[str, list[int | str]] = {}
    state_dir.mkdir(parents=True, exist_ok=True)
    settled = _fs_now_ns(state_dir) - STAMP_SETTLE_NS
    entries: list[ManifestEntry] = []
    for f in files:
        src = root / f.rel
        try:
            st = os.stat(src)
            key = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
            old = stamps.get(f.rel)
            digest = str(old[4]) if old is not None and old[:4] == key else None
            if digest is None:
                digest = file_digest(src)
            stored = store.size_of(digest)
            if stored != st.st_size:  # not stored, or damaged (its size is not its content's)
                digest, size = store.put(src, replace=stored >= 0)
                if size != st.st_size:  # rewritten while read: its stat no stamp of these bytes
                    key = [size, -1, -1, -1]
            else:
                size = st.st_size
        except FileNotFoundError as err:
            if err.filename is not None and Path(err.filename) == src:
                continue  # gone since the listing (an editor's temporary file): not travelling
            raise
        if max(st.st_mtime_ns, st.st_ctime_ns) < settled and key[1] != -1:
            fresh[f.rel] = [*key, digest]
        entries.append(ManifestEntry(f.rel, digest, size, stat.S_IMODE(st.st_mode),
                                     st.st_mtime_ns))
    if fresh != stamps:
        # Named per thread too: the dashboard submits from several at once.
        tmp = stamps_path.with_name(f"{STAMPS}.{os.getpid()}-{get_ident()}.tmp")
        try:
            tmp.write_text(json.dumps(fresh, separators=(",", ":")))
            os.replace(tmp, stamps_path)
        except OSError:
            pass  # a cache: the next snapshot hashes again
    return Manifest(entries)


# ------------------------------------------------------------------------ materialise


class ObjectDamaged(StorageError):
    """A stored object is missing or is not the content its name says."""


def materialise(manifest: Manifest, state_dir: Path, dest: Path, verify: bool = False) -> None:
    """Write the snapshot's files into ``dest`` (made; the files must not exist yet), each with
    its mode and mtime. Each object's size is checked, and with ``verify`` its sha256 too: a
    damaged object is an ``ObjectDamaged`` naming it, never a file with other content."""
    store = ObjectStore(state_dir)
    dest.mkdir(parents=True, exist_ok=True)
    made: set[Path] = {dest}
    clone = [True]
    for e in manifest.files:
        target = dest / e.path
        if target.parent not in made:
            target.parent.mkdir(parents=True, exist_ok=True)
            made.add(target.parent)
        _copy_object(store.path(e.sha256), target, e, clone, verify)


def _damaged(src: Path, e: ManifestEntry, why: str) -> ObjectDamaged:
    return ObjectDamaged(f"snapshot file {e.path}: its stored content {src} {why}; the objects"
                         " no longer hold it (labdeck store --verify removes damaged ones)")


def _copy_object(src: Path, dst: Path, e: ManifestEntry, clone: list[bool],
                 verify: bool) -> None:
    try:
        fin = open(src, "rb")
    except FileNotFoundError:
        raise _damaged(src, e, "is missing") from None
    with fin:  # checked before anything is written
        have = os.fstat(fin.fileno()).st_size
        if have != e.size:
            raise _damaged(src, e, f"has {have} bytes, not {e.size}")
        if verify and file_digest(src) != e.sha256:
            raise _damaged(src, e, "does not hash to its name")
        # O_EXCL | O_NOFOLLOW: never through a link someone left where a file goes
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        with open(os.open(dst, flags, 0o600), "wb") as fout:
            _fill(fin, fout, clone)
            os.fchmod(fout.fileno(), e.mode & 0o777)  # never setuid/setgid in a run's folder
    os.utime(dst, ns=(e.mtime_ns, e.mtime_ns))


def _fill(fin: BinaryIO, fout: BinaryIO, clone: list[bool]) -> None:
    """``fout`` gets ``fin``'s bytes: a reflink where the filesystem can, else by the kernel."""
    done = False
    if clone[0]:
        try:
            fcntl.ioctl(fout.fileno(), _FICLONE, fin.fileno())
            done = True
        except OSError as err:
            if err.errno in (errno.EOPNOTSUPP, errno.EXDEV, errno.EINVAL, errno.ENOTTY,
                             errno.EBADF):
                clone[0] = False  # no reflinks here: plain copies from now on
            else:
                raise
    if not done:
        offset = 0
        try:
            while sent := os.sendfile(fout.fileno(), fin.fileno(), offset, 1 << 30):
                offset += sent
        except OSError:
            fin.seek(offset)
            while block := fin.read(1 << 20):
                fout.write(block)


def mark_materialised(state_dir: Path, run_id: str) -> None:
    folder = state_dir / MATERIALISED
    folder.mkdir(exist_ok=True)
    os.close(os.open(folder / run_id, os.O_WRONLY | os.O_CREAT, 0o644))


def materialised_runs(state_dir: Path) -> list[str]:
    try:
        return sorted(os.listdir(state_dir / MATERIALISED))
    except OSError:
        return []


def unmark_materialised(state_dir: Path, run_id: str) -> None:
    try:
        os.unlink(state_dir / MATERIALISED / run_id)
    except OSError:
        pass


def drop_ended_copy(state_dir: Path, run_dir: Path, run_id: str) -> bool:
    """The supervisor's last act once its run's status is final: remove the run's materialised
    copy (its manifest and the objects keep it), so that the next submit has none to drop on its
    own path. A run without a manifest (sharedVolumes, an old full snapshot) keeps its folder."""
    if not has_manifest(run_dir) or not (state_dir / MATERIALISED / run_id).exists():
        return False
    if remove_tree(run_dir / SNAPSHOT_DIR):
        unmark_materialised(state_dir, run_id)
        return True
    return False


def remove_tree(path: Path) -> bool:
    """``shutil.rmtree`` without importing shutil (the submit path avoids it); folders a run made
    read-only are opened up first. False when something stayed (a file a container's root
    made, say)."""
    ok = True
    try:
        items = list(os.scandir(path))
    except FileNotFoundError:
        return True
    except OSError:
        return False
    for item in items:
        try:
            if item.is_dir(follow_symlinks=False):
                try:
                    os.chmod(item.path, 0o700)
                except OSError:
                    pass
                ok = remove_tree(Path(item.path)) and ok
            else:
                os.unlink(item.path)
        except OSError:
            ok = False
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass
    except OSError:
        ok = False
    return ok


# ------------------------------------------------------------------------ references


class ManifestUnreadable(StorageError):
    """A run's manifest exists but cannot be read: what it references is unknown."""


def referenced(runs_dir: Path, skip: Iterable[str] = (),
               strict: bool = False) -> dict[str, set[str]]:
    """Every run folder's referenced objects (run id -> sha256s), but ``skip``'s. A manifest
    that cannot be read counts as referencing nothing, or (``strict``: a collection, which must
    not take what it might name) is a ``ManifestUnreadable``."""
    return {name: s.digests for name, s in summaries(runs_dir, skip, strict).items()}


@dataclass(frozen=True)
class Summary:
    """What a manifest says without its entries: the objects it names, its file count and
    logical size."""

    digests: set[str]
    files: int
    size: int


def _summary(raw: bytes) -> Summary:
    """Read from the JSON rows directly (no entry objects: thousands of manifests are read by
    ``labdeck store`` and a collection), checked as ``Manifest.from_json`` checks them."""
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("not a manifest")
    if data.get("version") != MANIFEST_VERSION:
        raise ValueError(f"manifest version {data.get('version')!r}, this labdeck reads"
                         f" {MANIFEST_VERSION}")
    rows = data.get("files")
    if not isinstance(rows, list):
        raise ValueError("manifest without a file list")
    digests = {r[1] for r in rows}
    if not all(type(d) is str and len(d) == 64 for d in digests):
        raise ValueError("an entry without a sha256")
    return Summary(digests, len(rows), sum(int(r[2]) for r in rows))


def summaries(runs_dir: Path, skip: Iterable[str] = (), strict: bool = False,
              lenient: Iterable[str] = ()) -> dict[str, Summary]:
    """``referenced``, with each manifest's file count and logical size; ``lenient``: runs
    whose unreadable manifest counts as naming nothing even when ``strict``."""
    skipped = set(skip)
    forgiven = set(lenient)
    refs: dict[str, Summary] = {}
    try:
        names = os.listdir(runs_dir)
    except OSError:
        return refs
    cache: dict[bytes, Summary] = {}
    for name in names:
        if name in skipped:
            continue
        path = runs_dir / name / MANIFEST
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            continue
        except OSError as err:
            if strict and name not in forgiven and not isinstance(err, NotADirectoryError):
                raise ManifestUnreadable(_unreadable(path, err)) from err
            continue
        key = sha256(raw).digest()  # identical manifests (watch mode) are parsed once
        if key not in cache:
            try:
                cache[key] = _summary(raw)
            except (ValueError, KeyError, IndexError, TypeError) as err:
                if strict and name not in forgiven:
                    raise ManifestUnreadable(_unreadable(path, err)) from err
                refs[name] = Summary(set(), 0, 0)
                continue
        refs[name] = cache[key]
    return refs


def unreferenced_by_others(runs_dir: Path, doomed: list[str],
                           objects: dict[str, int]) -> dict[str, dict[str, int]]:
    """What deleting ``doomed`` frees of the store: for each doomed run, the objects no other
    run (nor an earlier doomed one) references, with their sizes. Each object counted once."""
    gone = set(doomed)
    every = summaries(runs_dir, strict=True, lenient=gone)  # a doomed run's may be damaged
    kept: set[str] = set().union(*(s.digests for name, s in every.items() if name not in gone))
    freed: dict[str, dict[str, int]] = {}
    claimed: set[str] = set()
    for run_id in doomed:
        mine = every[run_id].digests if run_id in every else set()
        own = mine - kept - claimed
        claimed |= own
        freed[run_id] = {d: objects[d] for d in own if d in objects}
    return freed


def collect(state_dir: Path, runs_dir: Path, dry_run: bool = False) -> tuple[int, int]:
    """Remove the objects no run folder's manifest references (and stray temporary files):
    the count and bytes removed (or that would be)."""
    store = ObjectStore(state_dir)
    count = freed = 0
    with store.lock(exclusive=True):
        objects = store.all_objects()
        refs = referenced(runs_dir, strict=True)
        live: set[str] = set().union(*refs.values()) if refs else set()
        for digest, size in objects.items():
            if digest in live:
                continue
            if not dry_run:
                try:
                    os.unlink(store.path(digest))
                except OSError:
                    continue
            count += 1
            freed += size
        if not dry_run:
            for item in _scandir(store.root):
                if item.name.startswith("tmp-"):
                    try:
                        os.unlink(item.path)  # a snapshot killed mid-copy (none runs now)
                    except OSError:
                        pass
    return count, freed


def _unreadable(path: Path, err: BaseException) -> str:
    return (f"{path}: unreadable ({err}); nothing collected: what that run's snapshot names is"
            f" unknown (labdeck runs delete {path.parent.name} if the run is not needed)")


def _scandir(path: Path) -> list[os.DirEntry[str]]:
    try:
        return list(os.scandir(path))
    except OSError:
        return []


def manifest_of_folder(folder: Path) -> tuple[Manifest, dict[str, Path]]:
    """A manifest of an old run's full snapshot folder (before manifests), hashed from its files,
    and where each file is: old runs are diffed, exported and rerun as manifests."""
    entries: list[ManifestEntry] = []
    where: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            try:
                st = os.stat(path)
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            rel = path.relative_to(folder).as_posix()
            if rel.split("/", 1)[0] == "outputs":
                continue  # what the run wrote, not what travelled
            entries.append(ManifestEntry(rel, file_digest(path), st.st_size,
                                         stat.S_IMODE(st.st_mode), st.st_mtime_ns))
            where[rel] = path
    entries.sort(key=lambda e: e.path)
    return Manifest(entries), where
