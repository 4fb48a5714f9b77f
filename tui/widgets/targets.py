"""The Targets panel: each compute target, whether it is reachable (or why not), its engine
version and GPUs with their utilisation. Listing the targets reads their config files (in a thread);
describing a target is async I/O: a worker per refresh."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist, RowDoesNotExist

from backends.base import TargetInfo
from backends.errors import one_line
from backends.gpu import NO_RUNTIME

from ..keymap import TARGETS_BINDINGS
from ..messages import TargetSelected
from .table import FittedTable

if TYPE_CHECKING:
    from backends.engine import Engine

REFRESH_S = 10.0
COLUMNS = ("target", "type", "state", "detail")
STATE_WIDTH = 8  # "● ready", "✗ config", "✗ no GPU"


def detail_of(info: TargetInfo) -> str:
    return f"{info.detail} {gpu_text(info)}".strip()


def gpu_refused(info: TargetInfo) -> bool:
    """The target asks for GPUs its daemon cannot give (no NVIDIA runtime): runs are refused."""
    return NO_RUNTIME in info.gpu_note


def gpu_text(info: TargetInfo) -> str:
    if not info.gpus:
        return info.gpu_note
    return " ".join(f"GPU{g.index} {g.utilization_pct}% {g.memory_used_mb}/{g.memory_total_mb}MB"
                    for g in info.gpus)


class TargetsPanel(FittedTable):
    """The rows are rebuilt from ``rows`` and ``infos`` (a handful of targets): on a change in
    aml_config/ (watched; a fixed or newly attached target appears at once) and on a resize (an
    error row wraps to the width: its whole one-line error readable without scrolling)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        *TARGETS_BINDINGS,
        Binding("enter", "select_cursor", "Open", show=False),  # a row is only selected
    ]
    DEFAULT_CSS = """
    TargetsPanel { height: auto; max-height: 6; }
    """

    def __init__(self, engine: Engine, *, selected: str = "local", poll: bool = True,
                 watch_config: bool | None = None, id: str | None = None):
        super().__init__(id=id, cursor_type="row", show_cursor=True)
        self.engine = engine
        self.initial = selected
        self.poll = poll
        self.watch_config = poll if watch_config is None else watch_config
        self.names: list[str] = []
        self.configs: list[tuple[str, str | None, str | None]] = []  # name, type, config error
        self.infos: dict[str, TargetInfo] = {}
        self.broken: set[str] = set()  # their config does not load: nothing to describe
        self.links: dict[str, str] = {}  # remote target -> link state of its runs in flight
        self._drawn_width = 0
        self._placed = False  # the cursor was put on ``initial`` (the first rows drawn)

    def on_mount(self) -> None:
        self.run_worker(self._load(), exclusive=True, group="targets", name="list-targets",
                        exit_on_error=False)
        if self.poll:
            self.set_interval(REFRESH_S, self.refresh_targets, name="targets-poll")
        if self.watch_config:
            self.run_worker(self._watch_config(), group="config-watch", name="watch aml_config",
                            exit_on_error=False)

    async def _load(self) -> None:
        """The rows (config files read in a thread), then a first look at each target."""
        rows = await asyncio.to_thread(self._list)
        if not self.is_attached:
            return
        self.configs = rows
        self.names = [name for name, _kind, _error in rows]
        self.broken = {name for name, kind, _error in rows if kind is None}
        self.infos = {k: v for k, v in self.infos.items() if k in self.names}
        self.redraw()
        await self._describe_all()

    async def _watch_config(self) -> None:
        from watchfiles import awatch

        config_dir = self.engine.project.config_dir
        if not config_dir.is_dir():
            return
        async for _changes in awatch(config_dir, debounce=100, recursive=False):
            if not self.is_attached:
                return
            self.reload()

    def reload(self) -> None:
        """Read aml_config/ again (a file fixed, added, removed)."""
        self.run_worker(self._load(), exclusive=True, group="targets", name="list-targets",
                        exit_on_error=False)

    def _list(self) -> list[tuple[str, str | None, str | None]]:
        """In a thread: each target's name and type, or why its config does not load."""
        rows: list[tuple[str, str | None, str | None]] = []
        for name in self.engine.project.compute_names():
            try:
                rows.append((name, self.engine.project.resolve(name).compute.type, None))
            except Exception as err:  # a broken config file shows on its row
                rows.append((name, None, one_line(err)))
        return rows

    # ------------------------------------------------------------------ drawing

    def _detail_width(self) -> int:
        """What the detail column gets: the panel's width less the other columns."""
        names = max((len(n) for n in self.names), default=6)
        kinds = max((len(k or "?") for _n, k, _e in self.configs), default=4)
        used = max(names, 6) + max(kinds, 4) + STATE_WIDTH + 2 * self.cell_padding * 3
        return max(20, self.size.width - used - 2 * self.cell_padding - 1)

    def redraw(self) -> None:
        # The first rows go to the target asked for (-c): the cursor's row 0 is no choice yet
        # (it was: the dashboard opened on the first target, whatever -c said).
        selected = self.selected_name if self._placed else self.initial
        width = self._detail_width()
        self._drawn_width = self.size.width
        # Rebuilding the rows moves the cursor through row 0: no choice of the user's, so not
        # announced (the app's target flipped to the first target and back at each redraw).
        with self.prevent(DataTable.RowHighlighted):
            self.clear(columns=True)
            for col in COLUMNS:
                self.add_column(col, key=col, width=STATE_WIDTH if col == "state" else
                                width if col == "detail" else None)
            for name, kind, error in self.configs:
                if kind is None:
                    text = error or "the config does not load"
                    self.add_row(name, "?", Text("✗ config", style="red"),
                                 Text(text, style="red"), key=name,
                                 height=max(1, -(-len(text) // width)))
                    continue
                state, detail = self._cells(name)
                self.add_row(name, kind, state, detail, key=name,
                             height=max(1, -(-len(detail.plain) // width)))
            if selected in self.names:
                self.move_cursor(row=self.names.index(selected), animate=False)
        self._placed = self._placed or bool(self.names)
        if self.selected_name is not None and self.selected_name != selected:
            self.post_message(TargetSelected(self.selected_name))  # its target is gone
        self.show_title()

    def show_title(self) -> None:
        """Each target's state in the title: all that shows of a collapsed panel (80x24)."""
        states = []
        for name, kind, _error in self.configs:
            state = "✗ config" if kind is None else self._cells(name)[0].plain
            states.append(f"{name} {state}")
        self.border_title = "Targets · " + " · ".join(states) if states else "Targets"

    def set_links(self, states: dict[str, str]) -> None:
        """Remote targets' SSH links as their runs in flight say (reconnecting, lost)."""
        if states != self.links:
            self.links = dict(states)
            if self.configs:
                self.redraw()

    def _cells(self, name: str) -> tuple[Text, Text]:
        link = self.links.get(name)
        if link in ("reconnecting", "lost"):
            _state, detail = self._described(name)
            said = ("SSH link reconnecting (its run goes on there)" if link == "reconnecting"
                    else "SSH link lost")
            return (Text("◌ link…", style="bold yellow") if link == "reconnecting"
                    else Text("✗ link", style="bold red")), Text(f"{said}; {detail.plain}")
        return self._described(name)

    def _described(self, name: str) -> tuple[Text, Text]:
        info = self.infos.get(name)
        if info is None:
            return Text("…", style="dim"), Text("checking", style="dim")
        detail = detail_of(info)
        if not info.reachable:
            return Text("✗ down", style="red"), Text(detail)
        if gpu_refused(info):  # a GPU run would be refused (target show says why)
            return Text("✗ no GPU", style="red"), Text(detail)
        return Text("● ready", style="green"), Text(detail)

    @property
    def selected_name(self) -> str | None:
        if not self.names or not 0 <= self.cursor_row < len(self.names):
            return None
        return self.names[self.cursor_row]

    def on_resize(self) -> None:
        if self.configs and self.size.width != self._drawn_width:
            self.redraw()

    # ------------------------------------------------------------------ describing

    def refresh_targets(self) -> None:
        self.run_worker(self._describe_all(), exclusive=True, group="targets",
                        name="describe-targets", exit_on_error=False)

    async def _describe_all(self) -> None:
        await asyncio.gather(*(self._describe(name) for name in self.names
                               if name not in self.broken))

    async def _describe(self, name: str) -> None:
        try:
            info = await self.engine.describe_target(name)
        except Exception as err:  # any backend failure is a row state, never a crash
            info = TargetInfo(False, one_line(err))
        self.show_info(name, info)

    def show_info(self, name: str, info: TargetInfo) -> None:
        if name not in self.names or not self.is_attached:
            return
        before = self.infos.get(name)
        self.infos[name] = info
        state, detail = self._cells(name)
        try:
            if before is None or detail_of(before) != detail.plain:
                self.redraw()  # the detail's length decides the row's height
                return
            self.update_cell(name, "state", state)
            self.update_cell(name, "detail", detail)
            self.show_title()
        except (RowDoesNotExist, CellDoesNotExist):  # the row vanished; nothing to show
            return

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        if event.row_key is not None and event.row_key.value is not None:
            self.post_message(TargetSelected(str(event.row_key.value)))
