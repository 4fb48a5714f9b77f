"""Colours for the CLI: run statuses and errors, only on a terminal and never when ``NO_COLOR``
is set (https://no-color.org: any non-empty value) or ``TERM=dumb``. Plain ANSI codes: no rich
import on a CLI path."""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO

RESET = "\x1b[0m"
CODES = {"red": "31", "green": "32", "yellow": "33", "blue": "34", "magenta": "35",
         "cyan": "36", "bold": "1", "dim": "2"}
STATUS = {"completed": "green", "failed": "red", "canceled": "yellow", "running": "cyan",
          "preparing": "blue", "queued": "magenta"}


def on(stream: TextIO | None = None) -> bool:
    """Whether to colour what goes to ``stream`` (stdout by default)."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    stream = sys.stdout if stream is None else stream
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def paint(text: str, *styles: str) -> str:
    codes = ";".join(CODES[s] for s in styles if s in CODES)
    return f"\x1b[{codes}m{text}{RESET}" if codes and text else text


def status(text: str, colour: bool) -> str:
    """A status word (``completed``, ``failed``...) in its colour, when ``colour``."""
    style = STATUS.get(text)
    return paint(text, style) if colour and style else text


def error_line(message: str, colour: bool, label: str = "error") -> str:
    """``labdeck: error: message`` with the label red and bold."""
    head = f"labdeck: {label}:"
    if colour:
        head = paint(head, "bold", "red" if label == "error" else "yellow")
    return f"{head} {message}"
