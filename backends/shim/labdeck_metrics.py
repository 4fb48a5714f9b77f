"""Log metrics from a labdeck run: ``from labdeck_metrics import log_metric``.

Standalone (standard library only): labdeck puts this folder on PYTHONPATH for every run, on every
target, so nothing needs installing. Outside labdeck the values are printed plainly.
"""

import json
import os
import sys

_MARKER = "\x1e@@labdeck:metric "


def log_metric(name, value):
    """A number or string is a scalar; a list, or the same name logged again, is a series."""
    if isinstance(value, tuple):
        value = list(value)
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        value = value.tolist()
    if os.environ.get("LABDECK_RUN_ID"):
        line = _MARKER + json.dumps({"name": str(name), "value": value}, separators=(",", ":"))
    else:
        line = f"{name}: {value}"
    stream = sys.__stdout__ or sys.stdout
    stream.write(line + "\n")
    stream.flush()


__all__ = ["log_metric"]
