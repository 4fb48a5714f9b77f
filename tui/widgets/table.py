"""A DataTable whose rows always fill its width.

Textual's DataTable caches each rendered row (with the blank it pads to the widget's width) under
a key that leaves the width out; the cache is dropped when the ``Resize`` event is handled. A paint
between the size change and that event (the first layout, a breakpoint switch, a terminal resize:
timing decides) reuses rows padded for the old width, and nothing repaints them afterwards: rows
ended short of the edge on some runs and not others. Dropping the row cache whenever the width it
was drawn for changes makes the picture depend on the size alone.

Every list also gets the same keys: Enter on a row, g/G for the first and last row.

Thousands of rows (the runs list with 10,000 runs): DataTable's ``add_row`` costs a reactive
cursor update and an idle check per row, and its ``_update_dimensions`` formats and measures
every cell of every new row with Rich (markup parsed, emoji replaced): 4.6 s for 10,000 runs, all
on the UI thread, before the first paint. ``set_rows`` replaces every row in one step, and a cell
that is one line of plain text (a ``str`` without markup, a ``Text``) is measured by its cell
length; only rows that are painted are ever formatted (DataTable renders the visible lines only).
Both lean on DataTable's internals as Textual 8 has them (``_data``, ``rows``,
``_row_locations``, ``_new_rows``): tests/tui/test_table.py compares them with ``add_row``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import zip_longest
from typing import Any, ClassVar

from rich.cells import cell_len
from rich.text import Text
from textual._two_way_dict import TwoWayDict
from textual.binding import BindingType
from textual.render import measure
from textual.widgets import DataTable
from textual.widgets._data_table import (
    CellKey,
    DuplicateKey,
    Row,
    RowKey,
    default_cell_formatter,
)

from ..keymap import LIST_BINDINGS

PLAIN_UNSAFE = ("[", ":", "\n", "\t", "\r")  # markup, emoji codes, more than one line


def plain_width(cell: object) -> int | None:
    """The width DataTable would measure for a one-line plain cell; None: measure it as it
    does (markup, emoji codes, several lines, other renderables)."""
    if isinstance(cell, str):
        text = cell
    elif isinstance(cell, Text):
        text = cell.plain
    else:
        return None
    if any(c in text for c in PLAIN_UNSAFE):
        return None
    return cell_len(text)


class FittedTable(DataTable[Any]):
    BINDINGS: ClassVar[list[BindingType]] = [*LIST_BINDINGS]
    _rows_width: int | None = None

    def _render_line_in_row(self, *args: Any, **kwargs: Any) -> Any:
        width = self.size.width
        if width != self._rows_width:
            self._rows_width = width
            self._row_render_cache.clear()
        return super()._render_line_in_row(*args, **kwargs)

    def set_rows(self, rows: Sequence[tuple[str, Sequence[Any]]]) -> None:
        """Replace every row with ``rows`` (key, cells), one line each; the columns stay, the
        cursor keeps its row number (clamped), the scroll stays. Column widths are measured
        afresh (they shrink too)."""
        keys = [RowKey(key) for key, _ in rows]
        if len(set(keys)) != len(keys):
            raise DuplicateKey("two rows with one key")
        columns = self.ordered_columns
        if any(len(cells) > len(columns) for _, cells in rows):
            raise ValueError("More values provided than there are columns.")
        had_rows = self.row_count > 0
        self._clear_caches()
        column_keys = [column.key for column in columns]
        self._data = {key: dict(zip_longest(column_keys, cells))
                      for key, (_, cells) in zip(keys, rows, strict=True)}
        self.rows = {key: Row(key, 1, None, False) for key in keys}
        self._row_locations = TwoWayDict({key: index for index, key in enumerate(keys)})
        console = self.app.console
        for column in columns:
            column.content_width = measure(console, column.label, 1)
        self._new_rows = set(keys)
        self._require_update_dimensions = True
        self._update_count += 1
        self.cursor_coordinate = self.cursor_coordinate  # clamped to the rows there are
        if keys and not had_rows and self.columns and self.show_cursor \
                and self.cursor_type != "none":
            self._highlight_cursor()  # as add_row does for a first row
        self.refresh()
        self.check_idle()

    def _update_dimensions(self, new_rows: Iterable[RowKey]) -> None:
        """Column widths from the new rows: one-line plain cells by their length, the rest
        (and rows with labels or auto height) measured by DataTable."""
        columns = self.ordered_columns
        slow: list[RowKey] = []
        for row_key in new_rows:
            data = self._data.get(row_key)
            row = self.rows.get(row_key)
            if data is None or row is None:
                continue  # removed before the idle that measures it
            if row.label is not None or row.auto_height:
                slow.append(row_key)
                continue
            widths = [plain_width(data.get(column.key)) for column in columns]
            if any(width is None for width in widths):
                slow.append(row_key)
                continue
            for column, width in zip(columns, widths, strict=True):
                if width is not None and width > column.content_width:
                    column.content_width = width
        super()._update_dimensions(slow)  # the rest, and the virtual size

    def _cell_width(self, cell: object) -> int:
        width = plain_width(cell)
        return measure(self.app.console, default_cell_formatter(cell), 1) \
            if width is None else width

    def _update_column_widths(self, updated_cells: set[CellKey]) -> None:
        """DataTable's rule (a column grows to a wider cell; a narrower one makes it measure
        the whole column again), with plain cells measured by their length."""
        for row_key, column_key in updated_cells:
            column = self.columns.get(column_key)
            data = self._data.get(row_key)
            if column is None or data is None or column_key not in data:
                continue
            label_width = measure(self.app.console, column.label, 1)
            width = self._cell_width(data[column_key])
            if width < column.content_width:
                width = max((self._cell_width(cell) for cell in self.get_column(column_key)),
                            default=0)
            column.content_width = max(width, label_width)
