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

# The footer shows the focused panel's keys plus q and F1 (``show``); run actions are bound on the
# app (they work wherever the focus is) and shown again in the panels where they belong, under
# the same id so one remap moves both.
APP_BINDINGS: list[Binding] = [
    Binding("s", "submit", "Submit", id="submit", show=False,
            tooltip="Submit a script on a target"),
    Binding("r", "resubmit", "Rerun", id="resubmit", show=False,
            tooltip="Submit the selected run's script, arguments and target again"),
    Binding("c", "cancel_run", "Cancel", id="cancel", show=False,
            tooltip="Cancel the selected run"),
    Binding("w", "toggle_watch", "Watch", id="watch", show=False,
            tooltip="Resubmit the selected run whenever a project file's content changes"),
    Binding("p", "prepare", "Prepare", id="prepare", show=False,
            tooltip="Build (or find cached) the selected target's environment"),
    Binding("d", "download", "Outputs", id="download", show=False,
            tooltip="Copy the selected run's outputs into the project"),
    Binding("m", "compare", "Compare", id="compare", show=False,
            tooltip="Compare the marked runs (or the selected and the one before)"),
    Binding("l", "open_log", "Log", id="open_log", show=False,
            tooltip="Open the selected run's log on the whole screen"),
    Binding("i", "toggle_details", "Details", id="details", show=False,
            tooltip="Switch between the log and the run details"),
    Binding("e", "notifications", "Messages", id="notifications", show=False,
            tooltip="Every notification of this session (errors stay readable)"),
    Binding("q", "quit", "Quit", id="quit", tooltip="Quit (runs go on)"),
    Binding("f1", "help", "Help", id="help", key_display="F1", tooltip="Key bindings and help"),
]

RUNS_BINDINGS: list[Binding] = [
    Binding("space", "mark", "Mark", id="runs.mark", key_display="space",
            tooltip="Mark runs to compare"),
    Binding("m", "app.compare", "Compare", id="compare"),
    Binding("slash", "filter", "Filter", id="runs.filter", tooltip="Filter the runs"),
    Binding("o", "sort", "Sort", id="runs.sort",
            tooltip="Sort by the next column (a metric: best first)"),
    Binding("k", "choose_columns", "Columns", id="runs.columns",
            tooltip="Choose the metrics shown as columns (kept for this project)"),
    Binding("c", "app.cancel_run", "Cancel", id="cancel"),
    Binding("escape", "clear_filter", "Clear filter", id="runs.clear", show=False),
]

# Every list (runs, targets, compare, help): Enter acts on the row, g/G go to the ends.
LIST_BINDINGS: list[Binding] = [
    Binding("enter", "select_cursor", "Open", id="list.open", key_display="Enter",
            tooltip="Runs: the selected run's full log"),
    Binding("g", "scroll_top", "Top", id="list.top", show=False, tooltip="The first row"),
    Binding("G", "scroll_bottom", "Bottom", id="list.bottom", show=False,
            tooltip="The last row"),
]

TARGETS_BINDINGS: list[Binding] = [
    Binding("p", "app.prepare", "Prepare", id="prepare"),
    Binding("s", "app.submit", "Submit", id="submit"),
]

LOG_BINDINGS: list[Binding] = [
    Binding("slash", "search", "Search", id="log.search", tooltip="Search the whole log"),
    Binding("n", "next_match", "Next", id="log.next", show=False),
    Binding("N", "prev_match", "Prev", id="log.prev", show=False),
    Binding("ampersand", "filter", "Filter", id="log.filter",
            tooltip="Show only lines matching a text (whole log)"),
    Binding("f", "follow", "Follow", id="log.follow", tooltip="Follow the end of the log"),
    Binding("t", "toggle_timestamps", "Times", id="log.timestamps", tooltip="Show timestamps",
            show=False),
    Binding("z", "toggle_wrap", "Wrap", id="log.wrap", tooltip="Wrap long lines"),
    Binding("escape", "clear", "Clear", id="log.clear", show=False),
    Binding("home,g", "scroll_home", "Top", id="log.top", key_display="g",
            tooltip="Line 1 of the log"),
    Binding("end,G", "scroll_end", "End", id="log.end", key_display="G",
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
    return {b.id for b in (*APP_BINDINGS, *RUNS_BINDINGS, *LIST_BINDINGS, *TARGETS_BINDINGS,
                           *LOG_BINDINGS) if b.id}


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
