"""Load a YAML or JSON mapping while remembering the line each top-level key sits on.

Every error names the file and line, so a person can fix a project file without a traceback.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError


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


def load_mapping(path: Path, *, allow_json: bool = False, allow_empty: bool = False) -> MappingFile:
    text = _read_text(path)
    if allow_json and text.lstrip().startswith("{"):
        return _load_json(path, text)
    return _load_yaml(path, text, allow_empty)


def _load_yaml(path: Path, text: str, allow_empty: bool) -> MappingFile:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
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
