"""A DataTable whose rows always fill its width.

Textual's DataTable caches each rendered row (with the blank it pads to the widget's width) under
a key that leaves the width out; the cache is dropped when the ``Resize`` event is handled. A paint
between the size change and that event (the first layout, a breakpoint switch, a terminal resize:
timing decides) reuses rows padded for the old width, and nothing repaints them afterwards: rows
ended short of the edge on some runs and not others. Dropping the row cache whenever the width it
was drawn for changes makes the picture depend on the size alone.

Every list also gets the same keys: Enter on a row, g/G for the first and last row.
"""

from __future__ import annotations

from typing import Any, ClassVar

from textual.binding import BindingType
from textual.widgets import DataTable

from ..keymap import LIST_BINDINGS


class FittedTable(DataTable[Any]):
    BINDINGS: ClassVar[list[BindingType]] = [*LIST_BINDINGS]
    _rows_width: int | None = None

    def _render_line_in_row(self, *args: Any, **kwargs: Any) -> Any:
        width = self.size.width
        if width != self._rows_width:
            self._rows_width = width
            self._row_render_cache.clear()
        return super()._render_line_in_row(*args, **kwargs)
