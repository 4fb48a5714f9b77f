"""compute type -> backend class. Built-ins are listed in pyproject's ``labdeck.backends`` entry
points like any plug-in; the table below mirrors them so the CLI's hot path skips the scan."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from .base import Backend, EarlyWork, RunContext
from .config import Compute
from .errors import UsageError

BUILTINS = {
    "local": "backends.local:LocalBackend",
    "docker": "backends.docker.backend:DockerBackend",
    "remotedocker": "backends.docker.remote:RemoteDockerBackend",
    "cluster": "backends.spark.backend:SparkClusterBackend",
}
PLANNED = {"remote"}
# Backends that can begin a run before the supervisor loads asyncio (see prestart.py):
# compute type -> "module:function", the module free of asyncio.
EARLY = {
    "docker": "backends.docker.early:begin",
    "local": "backends.localstart:begin",
}


def backend_class(compute_type: str) -> type[Backend]:
    spec = BUILTINS.get(compute_type)
    if spec is None:
        from importlib.metadata import entry_points  # slow to import: only for plug-ins

        for ep in entry_points(group="labdeck.backends"):
            if ep.name == compute_type:
                spec = ep.value
                break
    if spec is None:
        if compute_type in PLANNED:
            raise UsageError(f"target type {compute_type!r} is not supported by this labdeck yet")
        raise UsageError(f"no backend for target type {compute_type!r}")
    module_name, _, attr = spec.partition(":")
    cls = getattr(importlib.import_module(module_name), attr)
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise UsageError(f"backend {spec!r} is not a labdeck Backend")
    return cls


def module_of(compute_type: str) -> str:
    """The module a built-in backend lives in (for preloading); "" for a plug-in."""
    return BUILTINS.get(compute_type, "").partition(":")[0]


def early_module_of(compute_type: str) -> str:
    """The module of a backend's early start (for preloading); "" when it has none."""
    return EARLY.get(compute_type, "").partition(":")[0]


def early_hook(compute_type: str) -> Callable[[RunContext], EarlyWork | None] | None:
    spec = EARLY.get(compute_type)
    if spec is None:
        return None
    module_name, _, attr = spec.partition(":")
    hook: Callable[[RunContext], EarlyWork | None] = getattr(importlib.import_module(module_name),
                                                          attr)
    return hook


def check(compute_type: str) -> None:
    """Fail now for a type no backend serves; a built-in is not imported here (the supervisor
    loads it: the local one would bring asyncio into the client)."""
    if compute_type not in BUILTINS:
        backend_class(compute_type)


def create(compute: Compute) -> Backend:
    return backend_class(compute.type)(compute)
