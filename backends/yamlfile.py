"""Load a YAML or JSON mapping while remembering the line each top-level key sits on.

Every error names the file and line, so a person can fix a project file without a traceback.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ._records import dataclass, field
from .errors import ConfigError

TYPE_CHECKING = False  # importing typing costs ~3 ms of a submit; annotations need none
if TYPE_CHECKING:
    from typing import Any

CACHE_VERSION = 1
# A file changed again within the clock's granularity after we read it would keep its size and
# mtime; entries are made only for files left alone this long ("racily clean", as git says).
CACHE_SETTLE_NS = 1_000_000_000


@dataclass
class MappingFile:
    """A parsed top-level mapping plus the 1-based line of each key."""

    path: Path
    data: dict[str, Any]
    lines: dict[str, int] = field(default_factory=dict)

    def line_of(self, key: str) -> int | None:
        return self.lines.get(key)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError("not UTF-8 text", path) from err
    except OSError as err:
        raise ConfigError(f"cannot read file: {err.strerror}", path) from err


class MappingCache:
    """Parsed mappings of unchanged files, so that a submit in an unchanged project needs no
    YAML parser (importing it alone costs ~30 ms). An entry holds what ``load_mapping`` returned
    and counts only while the file's size, mtime_ns, ctime_ns and inode are the same; on any
    doubt the file is parsed again. Warnings are made from the mapping, so they come out the
    same. Errors are never cached."""

    def __init__(self, path: Path):
        self.path = path
        self._entries: dict[str, Any] | None = None
        self._dirty = False

    def _load(self) -> dict[str, Any]:
        if self._entries is None:
            self._entries = {}
            try:
                with open(self.path, encoding="utf-8") as fh:
                    raw = json.load(fh)
                if isinstance(raw, dict) and raw.get("version") == CACHE_VERSION:
                    entries = raw.get("entries")
                    if isinstance(entries, dict):
                        self._entries = entries
            except (OSError, ValueError):
                pass
        return self._entries

    @staticmethod
    def _key(path: Path, allow_json: bool, allow_empty: bool) -> str:
        return f"{int(allow_json)}{int(allow_empty)}:{path}"

    @staticmethod
    def _stamp(st: os.stat_result) -> list[int]:
        return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]

    def get(self, path: Path, allow_json: bool, allow_empty: bool) -> MappingFile | None:
        entry = self._load().get(self._key(path, allow_json, allow_empty))
        if not isinstance(entry, dict):
            return None
        try:
            if entry.get("stamp") != self._stamp(os.stat(path)):
                return None
        except OSError:
            return None
        data, lines = entry.get("data"), entry.get("lines")
        if not isinstance(data, dict) or not isinstance(lines, dict):
            return None
        return MappingFile(path, data, lines)

    def put(self, mf: MappingFile, allow_json: bool, allow_empty: bool, st: os.stat_result) -> None:
        if time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) < CACHE_SETTLE_NS:
            return
        try:
            # Only what JSON gives back unchanged (no dates, no non-text keys, no NaN).
            data = json.loads(json.dumps(mf.data))
        except (TypeError, ValueError):
            return
        if data != mf.data:
            return
        self._load()[self._key(mf.path, allow_json, allow_empty)] = {
            "stamp": self._stamp(st),
            "data": data,
            "lines": dict(mf.lines),
        }
        self._dirty = True

    def save(self) -> None:
        """Write it back if it changed and its folder exists (a read-only look creates none)."""
        if not self._dirty or not self.path.parent.is_dir():
            return
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump({"version": CACHE_VERSION, "entries": self._entries}, fh)
            os.replace(tmp, self.path)
            self._dirty = False
        except OSError:
            try:
                os.unlink(tmp)
            except OSError:
                pass


# Per thread: the dashboard resolves targets in several worker threads at once.
_local = threading.local()


@contextmanager
def cached_mappings(path: Path) -> Iterator[None]:
    """Within this block, ``load_mapping`` answers from (and fills) the cache file ``path``."""
    outer: MappingCache | None = getattr(_local, "cache", None)
    cache = MappingCache(path)
    _local.cache = cache
    try:
        yield
        cache.save()
    finally:
        _local.cache = outer


def load_mapping(path: Path, *, allow_json: bool = False, allow_empty: bool = False) -> MappingFile:
    cache: MappingCache | None = getattr(_local, "cache", None)
    if cache is None:
        return _parse(path, allow_json, allow_empty)
    hit = cache.get(path, allow_json, allow_empty)
    if hit is not None:
        return hit
    try:
        st = os.stat(path)
    except OSError:
        return _parse(path, allow_json, allow_empty)  # it reports the error
    mf = _parse(path, allow_json, allow_empty)
    cache.put(mf, allow_json, allow_empty, st)
    return mf


def _parse(path: Path, allow_json: bool, allow_empty: bool) -> MappingFile:
    text = _read_text(path)
    if allow_json and text.lstrip().startswith("{"):
        return _load_json(path, text)
    return _load_yaml(path, text, allow_empty)


def _load_yaml(path: Path, text: str, allow_empty: bool) -> MappingFile:
    import yaml  # ~30 ms: only when a file is parsed (see MappingCache)

    # libyaml (the C loader), as Workbench's own tools read these files: it is faster, and it
    # accepts a tab after "key:", which real files have and the pure-Python scanner refuses.
    loader_class = getattr(yaml, "CSafeLoader", None)
    if loader_class is None:
        loader_class = yaml.SafeLoader
        text = _TAB_AFTER_KEY.sub(r"\1 ", text)  # what libyaml would have accepted
    try:
        loader = loader_class(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = (err.problem or err.context or "invalid YAML").strip()
        raise ConfigError(f"invalid YAML: {problem}", path, line) from err
    except yaml.YAMLError as err:
        raise ConfigError(f"invalid YAML: {err}", path) from err
    if data is None:
        if allow_empty:
            return MappingFile(path, {})
        raise ConfigError("file is empty; expected a mapping of keys", path, 1)
    if not isinstance(data, dict) or not isinstance(node, yaml.MappingNode):
        line = node.start_mark.line + 1 if node is not None else 1
        raise ConfigError(f"expected a mapping of keys, found {_kind(data)}", path, line)
    lines: dict[str, int] = {}
    for key_node, _ in node.value:
        key = key_node.value
        if not isinstance(key, str) or key_node.tag != "tag:yaml.org,2002:str":
            raise ConfigError(f"key {key!r} is not a name", path, key_node.start_mark.line + 1)
        if key in lines:
            raise ConfigError(f"duplicate key {key!r}", path, key_node.start_mark.line + 1)
        lines[key] = key_node.start_mark.line + 1
    return MappingFile(path, data, lines)


# "key:<TAB>value" on a line of its own (no quotes before the colon): the pure-Python loader's
# fallback turns the tab into a space, as libyaml reads it.
_TAB_AFTER_KEY = re.compile(r"^([ ]*(?:- )?[A-Za-z0-9_.\-\"']+:)\t+", re.MULTILINE)


def _load_json(path: Path, text: str) -> MappingFile:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"invalid JSON: {err.msg}", path, err.lineno) from err
    if not isinstance(data, dict):
        raise ConfigError(f"expected a JSON object, found {_kind(data)}", path, 1)
    lines: dict[str, int] = {}
    for key in data:
        match = re.search(r'"' + re.escape(key) + r'"\s*:', text)
        if match:
            lines[key] = text.count("\n", 0, match.start()) + 1
    return MappingFile(path, data, lines)


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    return f"a {type(value).__name__}"
