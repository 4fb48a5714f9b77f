"""CLI verbs about a run's snapshot and contents (rerun, diff, export, the store's size).

Imported at the end of ``tui/cli.py`` so that its commands register on the ``cli`` and ``runs``
groups defined there.
"""

from __future__ import annotations

from typing import Any

import click

from .cli import Ctx, cli, recovered, runs


def _render() -> Any:
    from . import render

    return render


def _size(n: int) -> str:
    from backends.history import human_size

    return human_size(n)


# ------------------------------------------------------------------------ store, runs du


@cli.command("store")
@click.option("--gc", "gc", is_flag=True,
              help="Remove snapshot content no run references, and the materialised copies"
                   " of ended runs.")
@click.option("--dry-run", is_flag=True, help="With --gc: say what would go, remove nothing.")
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table",
              show_default=True, help="Output format.")
@click.pass_obj
def store_cmd(obj: Ctx, gc: bool, dry_run: bool, output: str) -> None:
    """What the run history takes on disk: snapshot content (stored once, by hash) and the
    run folders (logs, outputs, live snapshot copies).

    \b
    Examples:
      labdeck store
      labdeck store --gc --dry-run
    """
    from backends import objects
    from backends.usage import usage

    if dry_run and not gc:
        raise click.UsageError("--dry-run goes with --gc")
    engine = recovered(obj)
    project = engine.project
    if gc:
        dropped = [] if dry_run else engine.drop_finished_snapshots()
        count, freed = objects.collect(project.state_dir, project.runs_dir, dry_run=dry_run)
        verb = "would remove" if dry_run else "removed"
        click.echo(f"{verb} {count} unreferenced object(s), {_size(freed)}; dropped"
                   f" {len(dropped)} materialised snapshot(s) of ended runs", err=True)
    info = usage(project.state_dir, project.runs_dir)
    if output == "json":
        click.echo(_render().as_json(info.to_json()))
        return
    logical = sum(r.snapshot_bytes for r in info.runs)
    rows = [
        ["snapshot content", f"{info.objects} object(s)", _size(info.objects_bytes)],
        ["  unreferenced", f"{info.unreferenced} object(s)", _size(info.unreferenced_bytes)],
        ["run folders", f"{len(info.runs)} run(s)", _size(info.runs_bytes)],
        ["  materialised snapshots", "", _size(sum(r.materialised for r in info.runs))],
        ["  outputs", "", _size(sum(r.outputs for r in info.runs))],
        ["  logs", "", _size(sum(r.log for r in info.runs))],
        ["total", "", _size(info.total)],
        ["snapshot files of all runs (logical)", "", _size(logical)],
    ]
    click.echo(_render().table(["", "count", "on disk"], rows))


@runs.command("du")
@click.argument("run_ids", nargs=-1)
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table",
              show_default=True, help="Output format.")
@click.pass_obj
def runs_du(obj: Ctx, run_ids: tuple[str, ...], output: str) -> None:
    """What each run holds on disk: its snapshot's content unique to it and shared with other
    runs, its outputs, log and live snapshot copy (all runs when none is named).

    \b
    Examples:
      labdeck runs du
      labdeck runs du my-run -o json
    """
    from backends.usage import usage

    engine = recovered(obj)
    ids = [engine.get(ref, with_metrics=False).id for ref in run_ids] if run_ids else None
    info = usage(engine.project.state_dir, engine.project.runs_dir, ids)
    if output == "json":
        click.echo(_render().as_json([r.to_json() for r in info.runs]))
        return
    rows = [[r.run_id, str(r.files), _size(r.snapshot_bytes),
             _size(r.unique) if r.manifest else "(copy)", _size(r.shared) if r.manifest else "-",
             _size(r.materialised), _size(r.outputs), _size(r.log)] for r in info.runs]
    click.echo(_render().table(["RUN", "FILES", "SNAPSHOT", "UNIQUE", "SHARED", "COPY",
                                "OUTPUTS", "LOG"], rows))
