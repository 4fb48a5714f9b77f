"""The dashboard's key bindings, each with an id a user can remap.

Remaps live in a TOML file: ``$LABDECK_KEYMAP``, else ``~/.config/labdeck/keymap.toml``::

    [keymap]
    submit = "ctrl+s"
    cancel = "x,delete"

Keys are Textual key names; a comma gives several keys to one action.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from textual.binding import Binding

APP_BINDINGS: list[Binding] = [
    Binding("s", "submit", "Submit", id="submit", tooltip="Submit a script on a target"),
    Binding("r", "resubmit", "Rerun", id="resubmit",
            tooltip="Submit the selected run's script, arguments and target again"),
    Binding("c", "cancel_run", "Cancel", id="cancel", tooltip="Cancel the selected run"),
    Binding("w", "toggle_watch", "Watch", id="watch",
            tooltip="Resubmit the selected run whenever a project file's content changes"),
    Binding("p", "prepare", "Prepare", id="prepare",
            tooltip="Build (or find cached) the selected target's environment"),
    Binding("d", "download", "Outputs", id="download",
            tooltip="Copy the selected run's outputs into the project"),
    Binding("m", "compare", "Compare", id="compare",
            tooltip="Compare the two marked runs (or the selected and the one before)"),
    Binding("l", "open_log", "Log", id="open_log", tooltip="Open the selected run's log"),
    Binding("i", "toggle_details", "Details", id="details", show=False,
            tooltip="Switch between the log and the run details"),
    Binding("f1", "help", "Help", id="help", tooltip="Key bindings and help"),
    Binding("q", "quit", "Quit", id="quit", show=False, tooltip="Quit (runs go on)"),
]

RUNS_BINDINGS: list[Binding] = [
    Binding("space", "mark", "Mark", id="runs.mark", show=False, tooltip="Mark a run for compare"),
    Binding("slash", "filter", "Filter", id="runs.filter", show=False, tooltip="Filter the runs"),
    Binding("o", "sort", "Sort", id="runs.sort", show=False,
            tooltip="Sort by the next column (a metric: best first)"),
    Binding("k", "choose_columns", "Columns", id="runs.columns", show=False,
            tooltip="Choose the metrics shown as columns (kept for this project)"),
    Binding("escape", "clear_filter", "Clear filter", id="runs.clear", show=False),
]

LOG_BINDINGS: list[Binding] = [
    Binding("slash", "search", "Search", id="log.search", tooltip="Search the whole log"),
    Binding("n", "next_match", "Next", id="log.next", show=False),
    Binding("N", "prev_match", "Prev", id="log.prev", show=False),
    Binding("ampersand", "filter", "Filter", id="log.filter",
            tooltip="Show only lines matching a text (whole log)"),
    Binding("f", "follow", "Follow", id="log.follow", tooltip="Follow the end of the log"),
    Binding("t", "toggle_timestamps", "Times", id="log.timestamps", tooltip="Show timestamps"),
    Binding("z", "toggle_wrap", "Wrap", id="log.wrap", tooltip="Wrap long lines"),
    Binding("escape", "clear", "Clear", id="log.clear", show=False),
    Binding("home,g", "scroll_home", "Top", id="log.top", tooltip="Line 1 of the log"),
    Binding("end,G", "scroll_end", "End", id="log.end",
            tooltip="The end of the log, following it"),
    Binding("up", "line_up", "Up", id="log.up", show=False),
    Binding("down", "line_down", "Down", id="log.down", show=False),
    Binding("pageup", "page_up_lines", "Page up", id="log.pageup", show=False),
    Binding("pagedown", "page_down_lines", "Page down", id="log.pagedown", show=False),
]


def keymap_path() -> Path:
    explicit = os.environ.get("LABDECK_KEYMAP")
    if explicit:
        return Path(explicit).expanduser()
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "labdeck" / "keymap.toml"


def known_ids() -> set[str]:
    return {b.id for b in (*APP_BINDINGS, *RUNS_BINDINGS, *LOG_BINDINGS) if b.id}


def load_keymap(path: Path | None = None) -> tuple[dict[str, str], list[str]]:
    """The user's remaps (binding id -> keys) and one-line problems found in the file."""
    path = path or keymap_path()
    if not path.is_file():
        return {}, []
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as err:
        return {}, [f"{path}: {err}"]
    table = data.get("keymap", data)
    if not isinstance(table, dict):
        return {}, [f"{path}: 'keymap' must be a table of binding id = \"keys\""]
    remaps: dict[str, str] = {}
    problems: list[str] = []
    ids = known_ids()
    for key, value in table.items():
        if key not in ids:
            problems.append(f"{path}: unknown binding id {key!r}")
        elif not isinstance(value, str) or not value.strip():
            problems.append(f"{path}: {key} must be a key name such as \"ctrl+s\"")
        else:
            remaps[key] = value.replace(" ", "")
    return remaps, problems
