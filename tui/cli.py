"""``labdeck``: a thin CLI over the engine. Parse, call, print; errors are one line on stderr.

Heavy modules (textual, rich, asyncio backends) load only in the verbs that need them, so
``labdeck submit`` starts fast.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from .submitting import Ctx, do_submit, echo, guarded, show_warnings

F = TypeVar("F", bound=Callable[..., Any])
SCRIPT_ARGS = {"ignore_unknown_options": True, "allow_interspersed_args": False}


def _render() -> Any:
    from . import render  # only the verbs that print tables pay for it

    return render


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--project",
    "project_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Project folder (default: the folder with aml_config/ here or above).",
)
@click.version_option(package_name="labdeck")
@click.pass_context
def cli(ctx: click.Context, project_dir: Path | None) -> None:
    """Run ML scripts on local, Docker, remote Docker and Spark targets (Workbench compatible).

    With no command, opens the dashboard.
    """
    ctx.obj = Ctx(project_dir)
    if ctx.invoked_subcommand is None:
        ctx.invoke(ui)


# ------------------------------------------------------------------------------------ submit


def submit_options(func: F) -> F:
    func = click.argument("script_args", nargs=-1, type=click.UNPROCESSED)(func)
    func = click.argument("script", required=False)(func)
    func = click.option(
        "--explain",
        is_flag=True,
        help="Print what would run (commands, folder, environment); run nothing.",
    )(func)
    func = click.option(
        "-a",
        "--async",
        "run_async",
        is_flag=True,
        help="Print the run id and return; the run goes on.",
    )(func)
    func = click.option(
        "-c",
        "--target",
        "target",
        default="local",
        show_default=True,
        help="A runconfig or compute name from aml_config/.",
    )(func)
    return func


@cli.command(context_settings=SCRIPT_ARGS)
@submit_options
@click.option("--watch", is_flag=True, help="Resubmit whenever a project file's content changes.")
@click.option(
    "--policy",
    type=click.Choice(["cancel", "queue", "parallel"]),
    default="cancel",
    show_default=True,
    help="With --watch: what happens to the run in flight.",
)
@click.pass_obj
def submit(
    obj: Ctx,
    target: str,
    run_async: bool,
    explain: bool,
    script: str | None,
    script_args: tuple[str, ...],
    watch: bool,
    policy: str,
) -> None:
    """Run SCRIPT [ARGS...] on a target; streams its log and exits with its exit status."""
    do_submit(obj, target, run_async, explain, script, list(script_args), watch, policy)


@cli.command()
@click.option("-c", "--target", "target", default="local", show_default=True)
@click.option("--force", is_flag=True, help="Rebuild even when the cached environment matches.")
@click.option("--offline", is_flag=True,
              help="docker: download the wheels here and send them with the build (for daemons "
                   "that cannot reach a package index).")
@click.pass_obj
def prepare(obj: Ctx, target: str, force: bool, offline: bool) -> None:
    """Build the target's run environment (cached until its inputs change)."""
    do_prepare(obj, target, force, offline)


def do_prepare(obj: Ctx, target: str, force: bool, offline: bool = False) -> None:
    import asyncio

    from backends.base import PrepareOptions

    engine = obj.engine
    show_warnings(engine.project.resolve(target))
    options = PrepareOptions(explicit=True, force=force, offline=offline)
    env = asyncio.run(engine.prepare(target, options, progress=lambda m: click.echo(m, err=True)))
    click.echo(f"prepared {target}: {env.ref}" + (" (cached)" if env.cached else ""))


# ------------------------------------------------------------------------------------ targets


@cli.group()
def target() -> None:
    """Execution targets (aml_config/*.compute)."""


@target.command("list")
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table")
@click.pass_obj
def target_list(obj: Ctx, output: str) -> None:
    """List the project's targets (a target whose file does not load is a row with its error)."""
    views = obj.engine.project.views()
    if output == "json":
        click.echo(_render().as_json([target_json(v) for v in views]))
        return
    rows = []
    for view in views:
        compute = view.compute
        if compute is None:
            rows.append([view.name, "-", "-", "-", f"error: {_after_path(view.error or '')}"])
            continue
        gpu = compute.gpus.cli_value() if compute.gpus else "-"
        if compute.type == "local":
            where = "-"
        elif compute.type == "docker":
            where = compute.base_docker_image
        else:
            where = compute.address or "-"
        notes = "; ".join(_after_path(w) for w in view.warnings) or "-"
        rows.append([view.name, compute.type, where, gpu, notes])
    click.echo(_render().table(["NAME", "TYPE", "ADDRESS/IMAGE", "GPUS", "NOTES"], rows))


def _after_path(line: str) -> str:
    """'aml_config/x.compute:3: message' -> 'x.compute:3: message' (the table stays narrow)."""
    head, sep, tail = line.partition(": ")
    return f"{Path(head).name}: {tail}" if sep and ("/" in head or "\\" in head) else line


# The keys of a target's JSON, by type: only what applies to that type (others are absent, not
# filled with defaults); values are real nulls where unset.
_COMMON_JSON = ("description",)
_TYPE_JSON: dict[str, tuple[str, ...]] = {
    "local": ("pythonLocation", "nativeSharedDirectory"),
    "docker": ("baseDockerImage", "sharedVolumes", "gpus", "nativeSharedDirectory"),
    "remotedocker": ("address", "port", "username", "baseDockerImage", "sharedVolumes", "gpus",
                     "nativeSharedDirectory"),
    "remote": ("address", "port", "username", "pythonLocation", "userManagedEnvironment"),
    "cluster": ("address", "port", "username", "yarnDeployMode", "sparkSubmitLocation"),
}


def target_json(view: Any) -> dict[str, Any]:
    compute = view.compute
    if compute is None:
        return {"name": view.name, "type": None, "error": view.error, "warnings": view.warnings}
    values: dict[str, Any] = {
        "description": compute.description,
        "pythonLocation": compute.python_location,
        "nativeSharedDirectory": compute.native_shared_directory or None,
        "baseDockerImage": compute.base_docker_image,
        "sharedVolumes": compute.shared_volumes,
        "gpus": compute.gpus.cli_value().strip('"') if compute.gpus else None,
        "address": compute.address,
        "port": compute.port,
        "username": compute.username,
        "userManagedEnvironment": compute.user_managed_environment,
        "yarnDeployMode": compute.yarn_deploy_mode,
        "sparkSubmitLocation": compute.spark_submit_location,
    }
    out: dict[str, Any] = {"name": view.name, "type": compute.type,
                           "file": str(compute.path) if compute.path else None}
    for key in (*_COMMON_JSON, *_TYPE_JSON.get(compute.type, ())):
        out[key] = values[key]
    out["error"] = None
    out["warnings"] = view.warnings
    return out


@target.command("show")
@click.argument("name")
@click.pass_obj
def target_show(obj: Ctx, name: str) -> None:
    """Show a target: its settings, reachability and GPUs."""
    import asyncio

    from backends import registry
    from backends.errors import LabdeckError

    engine = obj.engine
    view = engine.project.view(name)
    for warning in view.warnings:
        click.echo(f"labdeck: warning: {warning}", err=True)
    compute = view.compute
    lines = [
        f"name:         {compute.name}",
        f"type:         {compute.type}",
        f"file:         {compute.path or '(built in)'}",
    ]
    if compute.description:
        lines.append(f"description:  {compute.description}")
    if compute.address:
        lines.append(
            f"address:      {compute.username + '@' if compute.username else ''}"
            f"{compute.address}:{compute.port}"
        )
    if compute.type in {"docker", "remotedocker"}:
        lines.append(f"base image:   {compute.base_docker_image}")
        lines.append(f"shared vols:  {compute.shared_volumes}")
    runconfig = view.runconfig
    if runconfig is not None:
        lines.append(f"runconfig:    {runconfig.name} ({runconfig.framework})")
        if runconfig.description:
            lines.append(f"  about:      {runconfig.description}")
    else:
        lines.append("runconfig:    - (the compute's defaults)")
    try:
        caps = sorted(c.value for c in registry.backend_class(compute.type).capabilities)
    except LabdeckError as err:
        caps = [f"none ({err})"]
    lines.append(f"capabilities: {', '.join(caps) or '-'}")
    info = None
    if compute.problem:
        lines.append(f"reachable:    not checked ({compute.problem})")
    else:
        try:
            info = asyncio.run(_describe(compute))
            lines.append(f"reachable:    {'yes' if info.reachable else 'no'} ({info.detail})")
        except LabdeckError as err:
            lines.append(f"reachable:    not checked ({err})")
    if compute.gpus:
        lines.append(f"gpus asked:   {compute.gpus.cli_value()}")
    if info is not None and info.gpus:
        lines.append("gpus:")
        for gpu in info.gpus:
            lines.append(
                f"  [{gpu.index}] {gpu.name}  {gpu.memory_used_mb}/{gpu.memory_total_mb}"
                f" MiB  {gpu.utilization_pct}% util"
            )
    elif info is not None and info.gpu_note:
        lines.append(f"gpus:         {info.gpu_note}")
    click.echo("\n".join(lines))


async def _describe(compute: Any) -> Any:
    """The backend's own look at the compute (as Engine.describe_target, from the compute
    already loaded: a broken runconfig of the same name must not hide it)."""
    from backends import registry
    from backends.base import TargetInfo
    from backends.errors import TargetError

    try:
        return await registry.create(compute).describe()
    except TargetError as err:
        return TargetInfo(False, str(err))


@target.command("attach")
@click.argument("kind", type=click.Choice(["local", "docker", "remotedocker", "virtualmachine",
                                           "cluster"]))
@click.option("--name", required=True, help="Target name (file aml_config/NAME.compute).")
@click.option("--base-image", default=None, help="docker, remotedocker: base image.")
@click.option("--address", default=None, help="remotedocker: HOST[:PORT] or a ~/.ssh/config Host.")
@click.option("--username", default=None)
@click.option("--identity-file", default=None, help="remotedocker: SSH private key.")
@click.option("--password-stdin", is_flag=True, help="remotedocker: read the password from stdin.")
@click.option("--password", default=None, hidden=True)
@click.option("--accept-new-host-key", is_flag=True,
              help="remotedocker: trust the host's key when known_hosts has none for it.")
@click.option("--gpus", default=None, help="docker: all, a count, or device ids (0,1).")
@click.option("--shared-volumes", is_flag=True, default=False)
@click.option("--force", is_flag=True, help="Overwrite an existing target.")
@click.pass_obj
def target_attach(
    obj: Ctx,
    kind: str,
    name: str,
    base_image: str | None,
    address: str | None,
    username: str | None,
    identity_file: str | None,
    password_stdin: bool,
    password: str | None,
    accept_new_host_key: bool,
    gpus: str | None,
    shared_volumes: bool,
    force: bool,
) -> None:
    """Attach a target: writes aml_config/NAME.compute and NAME.runconfig as Workbench did
    (remotedocker: after checking the host over SSH)."""
    if kind in ("remotedocker", "virtualmachine"):
        from .attach_cli import attach_remote

        attach_remote(obj.engine.project, name, address=address, username=username,
                      identity_file=identity_file, password_stdin=password_stdin,
                      password=password, accept_new_host_key=accept_new_host_key,
                      base_image=base_image, gpus=gpus, shared_volumes=shared_volumes,
                      force=force)
        return
    from backends.attach import attach

    if identity_file or password_stdin or password is not None or accept_new_host_key:
        from backends.errors import UsageError

        raise UsageError("--identity-file, --password-stdin and --accept-new-host-key apply "
                         "to remotedocker targets only")
    written = attach(
        obj.engine.project,
        kind,
        name,
        base_image=base_image,
        address=address,
        username=username,
        gpus=gpus,
        shared_volumes=shared_volumes,
        force=force,
    )
    for path in written:
        click.echo(f"wrote {path}")


@target.command("detach")
@click.argument("name")
@click.pass_obj
def target_detach(obj: Ctx, name: str) -> None:
    """Remove a target's .compute (and its .runconfig)."""
    from backends.attach import detach

    for path in detach(obj.engine.project, name):
        click.echo(f"removed {path}")


# ------------------------------------------------------------------------------------ runs


@cli.group()
def runs() -> None:
    """Run history: list, show, logs, cancel, download, compare."""


def output_option(func: F) -> F:
    return click.option(
        "-o",
        "--output",
        type=click.Choice(["table", "json"]),
        default="table",
        help="Output format.",
    )(func)


@runs.command("list")
@output_option
@click.option("-n", "--limit", type=int, default=None, help="Only the newest N runs.")
@click.pass_obj
def runs_list(obj: Ctx, output: str, limit: int | None) -> None:
    """List runs, newest first."""
    records = recovered(obj).runs(limit)
    if output == "json":
        click.echo(_render().as_json([r.to_json() for r in records]))
    elif records:
        click.echo(_render().runs_table(records))
    else:
        click.echo("no runs yet", err=True)


def recovered(obj: Ctx) -> Any:
    """The engine, once the runs in flight whose supervisor died were taken over (a new
    supervisor reattaches, or the run is failed): reads are read-only, this is the step."""
    obj.engine.recover()
    return obj.engine


def show_record(record: Any, output: str) -> None:
    click.echo(
        _render().as_json(record.to_json()) if output == "json" else _render().run_details(record)
    )


@runs.command("show")
@click.argument("run_id")
@output_option
@click.pass_obj
def runs_show(obj: Ctx, run_id: str, output: str) -> None:
    """Show one run."""
    show_record(recovered(obj).get(run_id), output)


@runs.command("last")
@output_option
@click.pass_obj
def runs_last(obj: Ctx, output: str) -> None:
    """Show the newest run."""
    show_record(recovered(obj).last(), output)


@runs.command("logs")
@click.argument("run_id")
@click.option("-f", "--follow", "follow_", is_flag=True, help="Keep printing until the run ends.")
@click.option("-t", "--timestamps", is_flag=True)
@click.option("--tail", type=int, default=None, help="Start from the last N lines.")
@click.pass_obj
def runs_logs(obj: Ctx, run_id: str, follow_: bool, timestamps: bool, tail: int | None) -> None:
    """Print a run's log (stdout, stderr, metrics and labdeck's notes)."""
    from .follow import follow

    record = recovered(obj).get(run_id)
    try:
        follow(obj.engine, record.id, follow=follow_, timestamps=timestamps, tail=tail)
    except KeyboardInterrupt:
        sys.exit(130)


@runs.command("cancel")
@click.argument("run_ids", nargs=-1, required=True)
@click.option("--wait/--no-wait", default=True, help="Wait until the run has stopped.")
@click.pass_obj
def runs_cancel(obj: Ctx, run_ids: tuple[str, ...], wait: bool) -> None:
    """Cancel runs: SIGTERM to everything they started, SIGKILL after a grace period."""
    do_cancel(obj, list(run_ids), wait)


def do_cancel(obj: Ctx, run_ids: list[str], wait: bool) -> None:
    import time

    engine = obj.engine
    for run_id in run_ids:
        record = engine.cancel(run_id)
        if record.status.is_terminal():
            click.echo(f"run {record.id} already {record.status.value}")
            continue
        deadline = time.monotonic() + 30
        while wait and time.monotonic() < deadline:
            record = engine.get(record.id)
            if record.status.is_terminal():
                break
            time.sleep(0.05)
        click.echo(
            f"run {record.id} {record.status.value}"
            + ("" if record.status.is_terminal() else " (cancel requested)")
        )


@runs.command("download")
@click.argument("run_id")
@click.option(
    "-d",
    "--dir",
    "dest",
    type=click.Path(path_type=Path),
    default=None,
    help="Destination folder (default: ./downloads/RUN_ID; never the project's outputs/).",
)
@click.pass_obj
def runs_download(obj: Ctx, run_id: str, dest: Path | None) -> None:
    """Copy a run's outputs to a folder."""
    record = recovered(obj).get(run_id)
    target_dir = dest if dest is not None else Path("downloads") / record.id
    for path in obj.engine.download(record.id, target_dir):
        click.echo(str(path))


@runs.command("compare")
@click.argument("run_ids", nargs=-1, required=True)
@output_option
@click.pass_obj
def runs_compare(obj: Ctx, run_ids: tuple[str, ...], output: str) -> None:
    """Metrics of several runs side by side."""
    if len(run_ids) < 2:
        raise click.UsageError("compare needs at least two runs")
    engine = recovered(obj)
    records = [engine.get(r) for r in run_ids]
    if output == "json":
        click.echo(_render().as_json([r.to_json() for r in records]))
    else:
        click.echo(_render().compare(records))


# ------------------------------------------------------------------------------------ Workbench


@cli.group()
def experiment() -> None:
    """Workbench spelling: experiment submit|prepare|cancel."""


experiment.add_command(submit, "submit")
experiment.add_command(prepare, "prepare")


@experiment.command("cancel")
@click.option("-r", "--run", "run_ids", multiple=True)
@click.argument("more_ids", nargs=-1)
@click.pass_obj
def experiment_cancel(obj: Ctx, run_ids: tuple[str, ...], more_ids: tuple[str, ...]) -> None:
    """Same as 'labdeck runs cancel'."""
    ids = [*run_ids, *more_ids]
    if not ids:
        raise click.UsageError("name a run to cancel (-r RUN)")
    do_cancel(obj, ids, True)


@cli.group()
def history() -> None:
    """Workbench spelling: history list|info|last|download|compare."""


history.add_command(runs_list, "list")
history.add_command(runs_show, "info")
history.add_command(runs_last, "last")
history.add_command(runs_download, "download")
history.add_command(runs_compare, "compare")


@cli.group()
def computetarget() -> None:
    """Workbench spelling: computetarget attach|list."""


computetarget.add_command(target_attach, "attach")
computetarget.add_command(target_list, "list")


# ------------------------------------------------------------------------------------ dashboard


@cli.command()
@click.option(
    "-c",
    "--target",
    "target",
    default="local",
    show_default=True,
    help="The target selected at start.",
)
@click.option(
    "--submit",
    "submit_script",
    default=None,
    metavar="SCRIPT",
    help="Submit SCRIPT on the target as the dashboard opens.",
)
@click.pass_obj
def ui(obj: Ctx, target: str, submit_script: str | None) -> None:
    """Open the dashboard (the default command)."""
    from .app import run_app

    run_app(obj.engine, target=target, submit_script=submit_script)


def main(argv: list[str] | None = None) -> None:
    guarded(_click_main, argv)


def _click_main(argv: list[str] | None) -> None:
    try:
        cli.main(args=argv, prog_name="labdeck", standalone_mode=False)
    except click.exceptions.Abort:
        echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)


if __name__ == "__main__":
    main()
