"""Log metrics, params and tags from a labdeck run: ``from labdeck_metrics import log_metric``.

Standalone (standard library only): labdeck puts this folder on PYTHONPATH for every run, on every
target, so nothing needs installing. Outside labdeck the values are printed plainly.
"""

import json
import os
import sys

_MARKER = "\x1e@@labdeck:metric "


def _plain(value):
    if isinstance(value, tuple):
        value = list(value)
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        value = value.tolist()
    return value


def _emit(record, plain):
    if os.environ.get("LABDECK_RUN_ID"):
        line = _MARKER + json.dumps(record, separators=(",", ":"))
    else:
        line = plain
    stream = sys.__stdout__ or sys.stdout
    stream.write(line + "\n")
    stream.flush()


def log_metric(name, value):
    """A number or string is a scalar; a list, or the same name logged again, is a series."""
    value = _plain(value)
    _emit({"name": str(name), "value": value}, f"{name}: {value}")


def log_param(name, value):
    """A run's input (a learning rate, a model kind): one number, string or bool per name; the
    same name logged again replaces it. Shown, compared and queried like metrics."""
    value = _plain(value)
    if value is not None and not isinstance(value, (str, int, float, bool)):
        raise TypeError(f"param {name!r}: a number, string or bool, not {type(value).__name__}")
    _emit({"kind": "param", "name": str(name), "value": value}, f"param {name}: {value}")


def set_tag(name, value=""):
    """A label on the run (``labdeck runs list --tag NAME=VALUE`` finds it); values are text."""
    _emit({"kind": "tag", "name": str(name), "value": str(value)}, f"tag {name}: {value}")


__all__ = ["log_metric", "log_param", "set_tag"]
