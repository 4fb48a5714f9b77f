"""The Targets panel: each compute target, whether it is reachable (or why not), its engine
version and GPUs with their utilisation. Listing the targets reads their config files (in a thread);
describing a target is async I/O: a worker per refresh."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from rich.text import Text
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist, RowDoesNotExist

from backends.base import TargetInfo
from backends.errors import one_line

from ..messages import TargetSelected
from .table import FittedTable

if TYPE_CHECKING:
    from backends.engine import Engine

REFRESH_S = 10.0
COLUMNS = ("target", "type", "state", "detail")


def gpu_text(info: TargetInfo) -> str:
    if not info.gpus:
        return info.gpu_note
    return " ".join(f"GPU{g.index} {g.utilization_pct}% {g.memory_used_mb}/{g.memory_total_mb}MB"
                    for g in info.gpus)


class TargetsPanel(FittedTable):
    DEFAULT_CSS = """
    TargetsPanel { height: auto; max-height: 6; }
    """

    def __init__(self, engine: Engine, *, selected: str = "local", poll: bool = True,
                 id: str | None = None):
        super().__init__(id=id, cursor_type="row", show_cursor=True)
        self.engine = engine
        self.initial = selected
        self.poll = poll
        self.names: list[str] = []
        self.broken: set[str] = set()  # their config does not load: nothing to describe

    def on_mount(self) -> None:
        for col in COLUMNS:
            self.add_column(col, key=col, width=7 if col == "state" else None)
        self.run_worker(self._load(), exclusive=True, group="targets", name="list-targets",
                        exit_on_error=False)

    async def _load(self) -> None:
        """The rows (config files read in a thread), then a first look at each target."""
        rows = await asyncio.to_thread(self._list)
        if not self.is_attached:
            return
        self.names = [name for name, _kind, _error in rows]
        for name, kind, error in rows:
            if kind is None:
                self.add_row(name, "?", Text("✗ config", style="red"), error, key=name)
                self.broken.add(name)
            else:
                self.add_row(name, kind, Text("…", style="dim"), "checking", key=name)
        if self.initial in self.names:
            self.move_cursor(row=self.names.index(self.initial), animate=False)
        if self.poll:
            self.set_interval(REFRESH_S, self.refresh_targets, name="targets-poll")
        await self._describe_all()

    def _list(self) -> list[tuple[str, str | None, str | None]]:
        """In a thread: each target's name and type, or why its config does not load."""
        rows: list[tuple[str, str | None, str | None]] = []
        for name in self.engine.project.compute_names():
            try:
                rows.append((name, self.engine.project.resolve(name).compute.type, None))
            except Exception as err:  # a broken config file shows on its row
                rows.append((name, None, one_line(err)))
        return rows

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
        state = Text("● ready", style="green") if info.reachable else Text("✗ down", style="red")
        gpus = gpu_text(info)
        try:
            self.update_cell(name, "state", state)
            self.update_cell(name, "detail", f"{info.detail} {gpus}".strip(), update_width=True)
        except (RowDoesNotExist, CellDoesNotExist):  # the row vanished; nothing to show
            return

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        if event.row_key is not None and event.row_key.value is not None:
            self.post_message(TargetSelected(str(event.row_key.value)))
