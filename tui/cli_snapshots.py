"""CLI verbs about a run's snapshot and contents (rerun, diff, export, the store's size).

Imported at the end of ``tui/cli.py`` so that its commands register on the ``cli`` and ``runs``
groups defined there.
"""

from __future__ import annotations

from pathlib import Path
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
@click.option("--migrate", is_flag=True,
              help="Turn ended runs' full snapshot copies (from before content-addressed"
                   " snapshots) into manifests, dropping the copies.")
@click.option("--verify", is_flag=True,
              help="Hash every stored object; remove those that are damaged (the next submit"
                   " stores them again from the project's files) and name the runs that used"
                   " them.")
@click.option("--dry-run", is_flag=True,
              help="With --gc, --migrate or --verify: say what would go, change nothing.")
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table",
              show_default=True, help="Output format.")
@click.pass_obj
def store_cmd(obj: Ctx, gc: bool, migrate: bool, verify: bool, dry_run: bool,
              output: str) -> None:
    """What the run history takes on disk: snapshot content (stored once, by hash) and the
    run folders (logs, outputs, live snapshot copies).

    \b
    Examples:
      labdeck store
      labdeck store --gc --dry-run
      labdeck store --migrate --gc
      labdeck store --verify --dry-run
    """
    from backends import objects
    from backends.usage import usage

    if dry_run and not (gc or migrate or verify):
        raise click.UsageError("--dry-run goes with --gc, --migrate or --verify")
    engine = recovered(obj)
    project = engine.project
    if verify:
        bad = objects.ObjectStore(project.state_dir).verify(remove=not dry_run)
        users = sorted(run for run, refs in objects.referenced(project.runs_dir).items()
                       if refs & set(bad))
        verb = "found" if dry_run else "removed"
        click.echo(f"{verb} {len(bad)} damaged object(s)"
                   + (f", used by {len(users)} run(s): {' '.join(users[:10])}"
                      + (" ..." if len(users) > 10 else "") if users else ""), err=True)
    if migrate:
        moved = engine.migrate_old_snapshots(dry_run=dry_run)
        verb = "would turn" if dry_run else "turned"
        click.echo(f"{verb} {len(moved)} full snapshot cop(ies) into manifests, freeing up to"
                   f" {_size(sum(size for _, size in moved))} (less the content stored once)",
                   err=True)
    if gc:
        dropped = engine.drop_finished_snapshots(orphans=True, dry_run=dry_run)
        count, freed = objects.collect(project.state_dir, project.runs_dir, dry_run=dry_run)
        verb, dverb = ("would remove", "would drop") if dry_run else ("removed", "dropped")
        click.echo(f"{verb} {count} unreferenced object(s), {_size(freed)}; {dverb}"
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
        ["run database", "", _size(info.database_bytes)],
        ["other (stamps, caches, logs)", "", _size(info.other_bytes)],
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


# ------------------------------------------------------------------------ rerun, diff, export


@runs.command("rerun", context_settings={"ignore_unknown_options": True})
@click.argument("run_id")
@click.argument("script_args", nargs=-1, type=click.UNPROCESSED)
@click.option("--current", is_flag=True,
              help="Run the project's files as they are now, not the run's snapshot.")
@click.option("-c", "--target", "target", default=None,
              help="Another runconfig or compute (default: the run's own).")
@click.option("--no-args", is_flag=True, help="Run the script without its arguments.")
@click.option("-a", "--async", "run_async", is_flag=True,
              help="Print the new run's id and return; the run goes on.")
@click.option("--name", default=None, help="A name for the new run.")
@click.option("--tag", "tags", multiple=True, metavar="NAME=VALUE",
              help="Label the new run (repeatable); it is tagged rerun_of=RUN too.")
@click.option("--note", default=None, help="A line of text kept with the new run.")
@click.pass_obj
def runs_rerun(obj: Ctx, run_id: str, script_args: tuple[str, ...], current: bool,
               target: str | None, no_args: bool, run_async: bool, name: str | None,
               tags: tuple[str, ...], note: str | None) -> None:
    """Run RUN again: the same snapshot (its files as they were), target and arguments.
    Arguments after ``--`` replace the script's.

    \b
    Examples:
      labdeck runs rerun my-run
      labdeck runs rerun my-run --current -c docker
      labdeck runs rerun my-run -- --rate 0.1
    """
    from backends.history import check_name, parse_tags
    from backends.store import RunMeta

    from .submitting import echo, exit_status

    if no_args and script_args:
        raise click.UsageError("--no-args and arguments: give one or the other")
    engine = recovered(obj)
    original = engine.get(run_id, with_metrics=False)
    meta = RunMeta(name=None if name is None else check_name(name), note=note or None,
                   tags={"rerun_of": original.id, **parse_tags(tags)})
    args = [] if no_args else list(script_args) if script_args else None
    record = engine.rerun(original.id, current=current, target_name=target, args=args,
                          meta=meta)
    what = "the current files" if current else "its snapshot"
    echo(f"run {record.id} submitted to {record.target} (rerun of {original.id}, {what})",
         err=True)
    echo(record.id)
    if run_async:
        return
    import sys

    from .follow import follow

    try:
        final = follow(engine, record.id)
    except KeyboardInterrupt:
        echo(f"\nlabdeck: detached; the run goes on (labdeck runs logs {record.id} -f)",
             err=True)
        sys.exit(130)
    summary = f"run {final.id} {final.status.value}"
    if final.exit_code is not None:
        summary += f" (exit code {final.exit_code})"
    if final.error and final.status.value != "completed":
        summary += f": {final.error}"
    echo(summary, err=True)
    sys.exit(exit_status(final))


@runs.command("diff")
@click.argument("run_a")
@click.argument("run_b")
@click.option("--stat", "name_only", is_flag=True,
              help="Only the changed files' names, no unified diff.")
@click.option("-U", "--unified", "context", type=int, default=3, show_default=True,
              help="Lines of context in the unified diff.")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="Output format.")
@click.pass_obj
def runs_diff(obj: Ctx, run_a: str, run_b: str, name_only: bool, context: int,
              output: str) -> None:
    """What changed between two runs: the files of their snapshots (a unified diff of text
    files), then target, arguments, params, metrics and tags side by side.

    \b
    Examples:
      labdeck runs diff baseline tuned
      labdeck runs diff baseline tuned --stat -o json
    """
    from backends import rundiff
    from backends.objects import ObjectStore

    engine = recovered(obj)
    a, b = engine.get(run_a), engine.get(run_b)
    changes = rundiff.diff_manifests(engine.manifest(a.id), engine.manifest(b.id))
    for change in changes:  # a name that is not UTF-8 is shown with its bytes escaped
        change.path = _shown(change.path)
    if not name_only:
        rundiff.add_unified(ObjectStore(engine.project.state_dir), changes, a.id, b.id, context)
    rows = rundiff.side_by_side(a, b)
    if output == "json":
        click.echo(_render().as_json({
            "a": a.id, "b": b.id, "files": [c.to_json() for c in changes],
            "side_by_side": [{"kind": r.kind, "name": r.name, "a": r.a, "b": r.b,
                              "same": r.same} for r in rows]}))
        return
    marks = {"added": "A", "removed": "D", "modified": "M", "mode": "m"}
    click.echo(f"files: {len(changes)} changed between {a.id} and {b.id}")
    for change in changes:
        extra = ""
        if change.change == "mode" and change.a and change.b:
            extra = f"  (mode {change.a.mode:o} -> {change.b.mode:o})"
        elif change.binary:
            extra = "  (binary or over 1 MB: not shown)"
        click.echo(f"{marks[change.change]} {change.path}{extra}")
    for change in changes:
        if change.diff:
            click.echo("".join(change.diff), nl=False)
    click.echo("")
    table = [[r.kind, r.name, _cell(r.a), _cell(r.b), "" if r.same else "*"] for r in rows]
    click.echo(_render().table(["", "NAME", a.id, b.id, "DIFF"], table))


def _shown(name: str) -> str:
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return _render().metric_value(value) if isinstance(value, float) else str(value)


@runs.command("export")
@click.argument("run_id")
@click.option("-o", "--output", "dest", type=click.Path(path_type=Path), default=None,
              help="The archive to write (default: RUN_ID.tar.gz here; a folder: inside it).")
@click.option("--with-objects", is_flag=True,
              help="Include the snapshot's file contents (objects/ by sha256), not only its"
                   " manifest.")
@click.pass_obj
def runs_export(obj: Ctx, run_id: str, dest: Path | None, with_objects: bool) -> None:
    """One .tar.gz of a run: run.json, its record (status, params, tags), metrics, log,
    outputs and its snapshot's manifest (and its files' contents with --with-objects).

    \b
    Examples:
      labdeck runs export my-run
      labdeck runs export my-run -o /tmp/ --with-objects
    """
    from backends.export import export_run

    path, names = export_run(recovered(obj), run_id, dest, with_objects)
    click.echo(str(path))
    click.echo(f"{len(names)} entries, {_size(path.stat().st_size)}", err=True)


@runs.command("checkout")
@click.argument("run_id")
@click.argument("dest", required=False, type=click.Path(path_type=Path))
@click.pass_obj
def runs_checkout(obj: Ctx, run_id: str, dest: Path | None) -> None:
    """Write a run's snapshot files out again, exactly as submitted (modes and times too):
    into DEST, or back into the run's own snapshot/ folder (dropped once a run has ended).

    \b
    Examples:
      labdeck runs checkout my-run /tmp/my-run-files
    """
    if dest is not None and dest.exists() and any(dest.iterdir()):
        raise click.UsageError(f"{dest} is not empty: check out into a new or empty folder")
    click.echo(str(recovered(obj).materialise(run_id, dest)))
