"""Project snapshots: which files travel (ignore rules), their content hash, and the copy.

Content hashes, never mtimes, decide what changed. ``.git``, ``outputs/`` and ``.labdeck/`` never
travel; ``.gitignore`` files (nested too), ``.labdeckignore`` and ``.amlignore`` (the later Azure
ML SDK's ignore file) are honoured. Workbench's 25 MB cap did not count ``docs/`` (nor ``.git``
and ``outputs/``, which do not travel at all).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath

from ._records import dataclass
from ._sha256 import sha256
from .errors import LabdeckError

TYPE_CHECKING = False  # importing typing costs ~3 ms of a submit; annotations need none
if TYPE_CHECKING:
    from typing import Any

if TYPE_CHECKING:
    import pathspec

ALWAYS_IGNORED = {".git", "outputs", ".labdeck"}
IGNORE_FILES = (".gitignore", ".amlignore", ".labdeckignore")  # later ones can re-include
DEFAULT_LIMIT_BYTES = 25 * 1024 * 1024  # Workbench's cap
NOT_COUNTED = {"docs"}  # top-level folders left out of the cap, as Workbench documented


class SnapshotTooLarge(LabdeckError):
    exit_code = 2

    def __init__(self, message: str, details: list[str]):
        super().__init__(message)
        self.details = details


_setattr = object.__setattr__  # hand-written __init__ of hot frozen records

@dataclass(frozen=True)
class FileEntry:
    rel: str  # POSIX-style path relative to the project root
    size: int
    executable: bool

    def __init__(self, rel: str, size: int, executable: bool):  # one per project file
        _setattr(self, "rel", rel)
        _setattr(self, "size", size)
        _setattr(self, "executable", executable)


class IgnoreRules:
    """Git's wildmatch rules, one spec per folder that holds an ignore file."""

    def __init__(self, root: Path):
        self.root = root
        self._specs: dict[str, pathspec.PathSpec[Any]] = {}

    def _load(self, rel_dir: str, folder: Path) -> None:
        lines: list[str] = []
        for name in IGNORE_FILES:
            path = folder / name
            if path.is_file():
                lines += path.read_text(encoding="utf-8", errors="replace").splitlines()
        if lines:
            import pathspec  # ~25 ms: only for projects that have ignore files

            self._specs[rel_dir] = pathspec.GitIgnoreSpec.from_lines(lines)

    def ignored(self, rel: str, is_dir: bool) -> bool:
        parts = PurePosixPath(rel).parts
        if parts and parts[0] in ALWAYS_IGNORED:
            return True
        if parts and parts[-1] == ".git":
            return True
        for base, spec in self._specs.items():
            if base and not rel.startswith(base + "/"):
                continue
            sub = rel[len(base) + 1 :] if base else rel
            if spec.match_file(sub + "/" if is_dir else sub):
                return True
        return False

    def walk(self) -> list[FileEntry]:
        entries: list[FileEntry] = []
        self._walk("", self.root, entries)
        entries.sort(key=lambda e: e.rel)
        return entries

    def _walk(self, rel_dir: str, folder: Path, out: list[FileEntry]) -> None:
        self._load(rel_dir, folder)
        try:
            items = list(os.scandir(folder))
        except OSError:
            return
        for item in items:
            rel = f"{rel_dir}/{item.name}" if rel_dir else item.name
            if item.is_dir(follow_symlinks=False):
                if not self.ignored(rel, True):
                    self._walk(rel, Path(item.path), out)
            elif item.is_file(follow_symlinks=True) and not self.ignored(rel, False):
                st = item.stat()
                out.append(FileEntry(rel, st.st_size, bool(st.st_mode & stat.S_IXUSR)))


def list_files(root: Path) -> list[FileEntry]:
    return IgnoreRules(root).walk()


def content_hash(root: Path, files: list[FileEntry]) -> str:
    """sha256 over (path, exec bit, file sha256) of every file that travels."""
    outer = sha256()
    for entry in files:
        digest = file_sha256(root / entry.rel)
        outer.update(name_bytes(f"{entry.rel}\0{int(entry.executable)}\0{digest}\n"))
    return outer.hexdigest()


def name_bytes(text: str) -> bytes:
    """A text holding file names as bytes: a name that is not UTF-8 comes from ``os`` with lone
    surrogates for its bytes (surrogateescape), which stand for those bytes again here."""
    return text.encode("utf-8", "surrogateescape")


def file_sha256(path: Path) -> str:
    """The hex sha256 of a file's bytes (OSError when it cannot be read)."""
    digest = sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_size(files: list[FileEntry], limit: int = DEFAULT_LIMIT_BYTES) -> None:
    files = [e for e in files if e.rel.partition("/")[0] not in NOT_COUNTED]
    total = sum(e.size for e in files)
    if total <= limit:
        return
    biggest = sorted(files, key=lambda e: e.size, reverse=True)[:10]
    details = ["largest files:"] + [f"  {_mb(e.size):>8}  {e.rel}" for e in biggest]
    suggestions = _suggest_ignores(files, total - limit)
    if suggestions:
        details.append("add to .labdeckignore to shrink it:")
        details += [f"  {line}" for line in suggestions]
    raise SnapshotTooLarge(
        f"project snapshot is {_mb(total)}, over the {_mb(limit)} limit "
        "(set LABDECK_SNAPSHOT_LIMIT_MB to raise it)",
        details,
    )


def _suggest_ignores(files: list[FileEntry], excess: int) -> list[str]:
    """Top-level folders (or files) by size, biggest first, until the excess is covered."""
    sizes: dict[str, int] = {}
    for entry in files:
        head, sep, _ = entry.rel.partition("/")
        key = f"/{head}/" if sep else f"/{head}"
        sizes[key] = sizes.get(key, 0) + entry.size
    picked: list[str] = []
    saved = 0
    for key, size in sorted(sizes.items(), key=lambda kv: kv[1], reverse=True):
        if saved >= excess:
            break
        picked.append(f"{key:<30} # saves {_mb(size)}")
        saved += size
    return picked


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def copy_files(root: Path, files: list[FileEntry], dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    made: set[Path] = set()
    for entry in files:
        target = dest / entry.rel
        if target.parent not in made:
            target.parent.mkdir(parents=True, exist_ok=True)
            made.add(target.parent)
        copy_file(root / entry.rel, target)


def copy_file(src: Path, dst: Path) -> None:
    """``shutil.copy2`` of a regular file without importing shutil (~2 ms of every submit: it
    loads the bz2 and lzma modules): the bytes through the kernel, mode and times kept."""
    with open(src, "rb") as fin:
        st = os.fstat(fin.fileno())
        # Opened without O_TRUNC (nor O_APPEND: sendfile refuses it), so that a dst that is
        # src is found before anything is emptied.
        with open(os.open(dst, os.O_WRONLY | os.O_CREAT, 0o666), "wb") as fout:
            there = os.fstat(fout.fileno())
            if (st.st_dev, st.st_ino) == (there.st_dev, there.st_ino):
                raise OSError(f"{src} and {dst} are the same file")
            fout.truncate(0)
            offset = 0
            try:
                while sent := os.sendfile(fout.fileno(), fin.fileno(), offset, 1 << 30):
                    offset += sent
            except OSError:  # no sendfile between these files: plain reads and writes
                fin.seek(offset)
                while block := fin.read(1 << 20):
                    fout.write(block)
            os.fchmod(fout.fileno(), stat.S_IMODE(st.st_mode))
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))


def git_commit(root: Path) -> str | None:
    """HEAD's commit when the project is in a git work tree (read from files: no subprocess)."""
    for folder in (root, *root.parents):
        git_dir = folder / ".git"
        if git_dir.is_dir():
            return _resolve_head(git_dir)
        if git_dir.is_file():  # a worktree or submodule: "gitdir: <path>"
            text = git_dir.read_text().strip()
            if text.startswith("gitdir:"):
                return _resolve_head((folder / text[7:].strip()).resolve())
            return None
    return None


def _resolve_head(git_dir: Path) -> str | None:
    try:
        head = (git_dir / "HEAD").read_text().strip()
    except OSError:
        return None
    if not head.startswith("ref:"):
        return head or None
    ref = head[4:].strip()
    common = git_dir
    if (git_dir / "commondir").is_file():
        common = (git_dir / (git_dir / "commondir").read_text().strip()).resolve()
    for base in (git_dir, common):
        ref_file = base / ref
        if ref_file.is_file():
            return ref_file.read_text().strip() or None
    packed = common / "packed-refs"
    if packed.is_file():
        for line in packed.read_text().splitlines():
            if line.endswith(" " + ref):
                return line.split(" ", 1)[0]
    return None  # an unborn branch: no commit yet
