"""What a fresh supervisor does before it loads asyncio: load its run and let the backend begin.

Loading asyncio and the backend takes a new supervisor 30-40 ms. A backend listed in
``registry.EARLY`` may begin the run first with blocking calls (the docker backend creates and
starts the container) so that the import overlaps the work the run waits on anyway; its
``prepare``/``start`` take up what it began from ``ctx.early``. This module and those hooks
load no asyncio.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from . import registry
from .base import RunContext
from .project import Project, find_project
from .runspec import RunSpec


def run_context(project: Project, run_id: str) -> RunContext:
    """The context a run's backend gets, from its recorded spec (``run.json``)."""
    run_dir = project.run_dir(run_id)
    spec = RunSpec.load(run_dir)
    target = project.resolve(spec.target)
    return RunContext(run_id, project, target, run_dir, Path(spec.workdir), spec.argv, spec.env)


def warm(target_name: str) -> bool:
    """Before the run arrives (its client is still recording it): find the project and the
    target, and let the backend's early start get ready. True when the run can be begun early:
    the supervisor-to-be then waits for it instead of loading asyncio first."""
    try:
        project = find_project()
        target = project.resolve(target_name)
        module = registry.early_module_of(target.compute.type)
        if not module:
            return False
        hook = getattr(importlib.import_module(module), "warm", None)
        return bool(hook(project, target)) if hook is not None else True
    except Exception:  # the usual path redoes it and reports what is wrong
        return False


def begin(project: Project, run_id: str) -> RunContext | None:
    """The run's context with what its backend began (``ctx.early``); None when nothing was
    begun: a backend without an early path, or any failure (the supervisor then starts the run
    the usual way, and reports that failure properly). The run was recorded a moment ago by the
    client that handed it over; a cancel that came since is seen by the supervisor, which then
    discards what was begun (``EarlyWork.discard``)."""
    try:
        ctx = run_context(project, run_id)
        hook = registry.early_hook(ctx.compute.type)
        if hook is None:
            return None
        ctx.early = hook(ctx)
        return ctx if ctx.early is not None else None
    except Exception as err:  # the usual path redoes it and reports it
        print(f"labdeck: early start skipped: {err!r}", file=sys.stderr)
        return None
