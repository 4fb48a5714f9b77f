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


def _colour(err: bool = False) -> bool:
    """Colours for stdout (stderr with ``err``): a terminal, and no NO_COLOR."""
    from .cli_style import on

    return on(sys.stderr if err else sys.stdout)


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

    \b
    Examples:
      labdeck init                        make this folder a project (local, docker targets)
      labdeck submit -c local train.py    run a script, its log streamed here
      labdeck runs list --where 'accuracy > 0.9' --sort accuracy
      labdeck completion bash             shell completion (its --help says how to install)
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
@click.option("--name", default=None,
              help="A name for the run, usable wherever a run id is (unique in the project).")
@click.option("--tag", "tags", multiple=True, metavar="NAME=VALUE",
              help="Label the run (repeatable); 'runs list --tag NAME=VALUE' finds it.")
@click.option("--note", default=None, help="A line of text kept with the run.")
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
    name: str | None,
    tags: tuple[str, ...],
    note: str | None,
) -> None:
    """Run SCRIPT [ARGS...] on a target; streams its log and exits with its exit status.

    \b
    Examples:
      labdeck submit -c local train.py --epochs 3     (the script's own args follow it)
      labdeck submit -a -c docker train.py            (print the run id and return)
      labdeck submit --name baseline --tag data=v2 train.py
      labdeck submit --explain -c docker train.py     (what would run; runs nothing)
      labdeck submit --watch --policy queue train.py  (again on every saved change)
    """
    meta = None
    check_submit_flags(run_async, explain, watch, name is not None or bool(tags)
                       or note is not None)
    if name is not None or tags or note is not None:
        from backends.history import check_name, parse_tags
        from backends.store import RunMeta

        meta = RunMeta(name=None if name is None else check_name(name), note=note or None,
                       tags=parse_tags(tags))
    do_submit(obj, target, run_async, explain, script, list(script_args), watch, policy, meta)


def given(name: str) -> bool:
    """Whether the option ``name`` of the running command was given (not its default)."""
    source = click.get_current_context().get_parameter_source(name)
    return source in (click.core.ParameterSource.COMMANDLINE,
                      click.core.ParameterSource.ENVIRONMENT)


def conflict(first: str, second: str, why: str) -> click.UsageError:
    return click.UsageError(f"{first} and {second} do not go together: {why}")


def check_submit_flags(run_async: bool, explain: bool, watch: bool, meta: bool) -> None:
    """Flags that contradict each other, or that the others make pointless, are errors."""
    if watch and run_async:
        raise conflict("--watch", "-a/--async", "watch mode stays to resubmit on each change"
                       " (run it in the background instead)")
    if watch and explain:
        raise conflict("--watch", "--explain", "--explain runs nothing to watch")
    if watch and meta:
        raise conflict("--watch", "--name/--tag/--note", "they apply to one run, and --watch"
                       " makes one per change (runs tag RUN k=v afterwards)")
    if explain and run_async:
        raise conflict("--explain", "-a/--async", "--explain runs nothing")
    if explain and meta:
        raise conflict("--explain", "--name/--tag/--note", "--explain records no run")
    if given("policy") and not watch:
        raise click.UsageError("--policy applies with --watch only (what a change does to the"
                               " run in flight)")


@cli.command()
@click.option("-c", "--target", "target", default="local", show_default=True,
              help="A runconfig or compute name from aml_config/.")
@click.option("--force", is_flag=True, help="Rebuild even when the cached environment matches.")
@click.option("--offline", is_flag=True,
              help="docker: download the wheels here and send them with the build (for daemons "
                   "that cannot reach a package index).")
@click.pass_obj
def prepare(obj: Ctx, target: str, force: bool, offline: bool) -> None:
    """Build the target's run environment (cached until its inputs change).

    \b
    Examples:
      labdeck prepare -c docker
      labdeck prepare -c docker --force --offline
    """
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
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table",
              help="Output format.")
@click.pass_obj
def target_list(obj: Ctx, output: str) -> None:
    """List the project's targets (a target whose file does not load is a row with its error).

    \b
    Examples:
      labdeck target list
      labdeck target list -o json
    """
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
    "cluster": ("address", "port", "username", "yarnDeployMode", "sparkMaster", "deployMode",
                "sparkRestUrl", "sparkMasterUi", "sparkSubmitLocation"),
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
        "sparkMaster": compute.spark_master,
        "deployMode": compute.deploy_mode,
        "sparkRestUrl": compute.spark_rest_url,
        "sparkMasterUi": compute.spark_master_ui,
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
    """Show a target: its settings, reachability and GPUs.

    \b
    Examples:
      labdeck target show docker
      labdeck target show local   (this machine's GPUs)
    """
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
        lines.append(f"address:      {_address_shown(compute)}")
    if compute.type in {"docker", "remotedocker"}:
        lines.append(f"base image:   {compute.base_docker_image}")
        lines.append(f"shared vols:  {compute.shared_volumes}")
    if compute.spark_master:
        lines.append(f"spark master: {compute.spark_master} (deploy mode {compute.deploy_mode})")
        if compute.spark_rest_url:
            lines.append(f"rest server:  {compute.spark_rest_url}")
    runconfig = view.runconfig
    if runconfig is not None:
        lines.append(f"runconfig:    {runconfig.name} ({runconfig.framework})")
        if runconfig.description:
            lines.append(f"  about:      {runconfig.description}")
    else:
        lines.append("runconfig:    - (the compute's defaults)")
    try:
        backend_class = registry.backend_class(compute.type)
        caps = sorted(c.value for c in backend_class.capabilities_for(compute))
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


def _address_shown(compute: Any) -> str:
    """user@host[:port] as the target is reached: a port written in ``address`` is the port
    (it showed "127.0.0.1:32768:22"); the ``port`` key only when the address has none and it
    is not SSH's default."""
    from backends.ssh.connection import split_address

    user = f"{compute.username}@" if compute.username else ""
    try:
        host, port = split_address(compute.address)
    except ValueError:
        return user + compute.address
    port = port or (compute.port if compute.port != 22 else None)
    host = f"[{host}]" if ":" in host and port else host
    return f"{user}{host}:{port}" if port else f"{user}{host}"


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
@click.option("--username", default=None, help="remotedocker: the SSH user.")
@click.option("--identity-file", default=None, help="remotedocker: SSH private key.")
@click.option("--password-stdin", is_flag=True, help="remotedocker: read the password from stdin.")
@click.option("--password", default=None, hidden=True)
@click.option("--accept-new-host-key", is_flag=True,
              help="remotedocker: trust the host's key when known_hosts has none for it.")
@click.option("--yarn-deploy-mode", type=click.Choice(["cluster", "client"]), default=None,
              help="cluster: spark-submit's --deploy-mode where the head node has YARN.")
@click.option("--gpus", default=None, help="docker: all, a count, or device ids (0,1).")
@click.option("--shared-volumes", is_flag=True, default=False,
              help="docker: run in the project folder itself (mounted) instead of a copy.")
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
    yarn_deploy_mode: str | None,
    gpus: str | None,
    shared_volumes: bool,
    force: bool,
) -> None:
    """Attach a target: writes aml_config/NAME.compute and NAME.runconfig as Workbench did
    (remotedocker: after checking the host over SSH).

    \b
    Examples:
      labdeck target attach docker --name gpu --gpus all
      echo PW | labdeck target attach remotedocker --name vm --address HOST \\
          --username U --password-stdin
      echo PW | labdeck target attach cluster --name myhdi --address HOST-ssh \\
          --username sshuser --password-stdin
    """
    if kind == "cluster":  # a Spark head node over SSH (backends/spark/attach.py)
        from .attach_cli import attach_cluster

        if base_image or gpus or shared_volumes:
            raise click.UsageError("--base-image, --gpus, --shared-volumes: not used by a "
                                   "cluster target")
        attach_cluster(obj.engine.project, name, address=address, username=username,
                       identity_file=identity_file, password_stdin=password_stdin,
                       password=password, accept_new_host_key=accept_new_host_key,
                       yarn_deploy_mode=yarn_deploy_mode or "cluster", force=force)
        return
    if yarn_deploy_mode:
        raise click.UsageError(f"--yarn-deploy-mode: not used by a {kind} target")
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
    unused = [flag for flag, value in (("--address", address), ("--username", username))
              if value] if kind in ("local", "docker") else []
    if kind == "local":
        unused += [flag for flag, value in (("--base-image", base_image), ("--gpus", gpus),
                                            ("--shared-volumes", shared_volumes)) if value]
    if unused:
        raise click.UsageError(f"{', '.join(unused)}: not used by a {kind} target")
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
    """Remove a target's .compute (and its .runconfig).

    \b
    Examples:
      labdeck target detach gpu
    """
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


STATUSES = ["queued", "preparing", "running", "completed", "failed", "canceled"]


def filter_options(func: F) -> F:
    """The filters ``runs list``, ``runs best`` and ``runs prune`` share (all must hold)."""
    for decorator in reversed([
        click.option("--status", "statuses", multiple=True,
                     type=click.Choice([*STATUSES, "active", "terminal"]),
                     help="Runs in this status (repeatable; active/terminal: any such)."),
        click.option("--target", "targets", multiple=True, help="Runs on this target."),
        click.option("--script", "scripts", multiple=True,
                     help="Runs of this script (a path, its end, or a * pattern)."),
        click.option("--tag", "tags", multiple=True, metavar="NAME[=VALUE]",
                     help="Runs with this tag (and value)."),
        click.option("--sweep", default=None, help="Runs of this sweep."),
        click.option("--where", default=None, metavar="EXPR",
                     help="A condition on metrics and params: 'DTree Accuracy > 0.9 and "
                          "kernel = rbf' (and, or, not, parentheses; = != < <= > >=)."),
    ]):
        func = decorator(func)
    return func


def build_filter(obj: Ctx, statuses: tuple[str, ...], targets: tuple[str, ...],
                 scripts: tuple[str, ...], tags: tuple[str, ...], sweep: str | None,
                 where: str | None, since: str | None = None,
                 older_than: str | None = None) -> Any:
    from backends.query import RunFilter, parse_tag, parse_when, parse_where
    from backends.status import TERMINAL, RunStatus

    chosen: list[RunStatus] = []
    for status in statuses:
        if status == "terminal":
            chosen += sorted(TERMINAL, key=lambda s: s.value)
        elif status == "active":
            chosen += [s for s in RunStatus if s not in TERMINAL]
        else:
            chosen.append(RunStatus(status))
    return RunFilter(
        statuses=chosen,
        targets=list(targets),
        scripts=list(scripts),
        tags=[parse_tag(t) for t in tags],
        sweep=None if sweep is None else obj.engine.store.sweep(sweep).id,
        where=None if where is None else parse_where(where),
        since=None if since is None else parse_when(since, "--since"),
        before=None if older_than is None else parse_when(older_than, "--older-than"),
    )


def select_runs(obj: Ctx, run_filter: Any, sort: str | None, limit: int | None) -> list[Any]:
    from backends import query

    return query.select_runs(recovered(obj).store, run_filter, sort, limit)


@runs.command("list")
@click.option("-o", "--output", type=click.Choice(["table", "json", "csv"]), default="table",
              help="Output format.")
@click.option("-n", "--limit", type=click.IntRange(min=1), default=None,
              help="Only the first N runs.")
@filter_options
@click.option("--since", default=None, metavar="AGE|DATE",
              help="Runs created since then: 12h, 3d, 2w or 2024-05-01[T12:30].")
@click.option("--sort", default=None, metavar="NAME[:asc]",
              help="By a metric or param, best (highest) first; NAME:asc for lowest first.")
@click.pass_obj
def runs_list(obj: Ctx, output: str, limit: int | None, statuses: tuple[str, ...],
              targets: tuple[str, ...], scripts: tuple[str, ...], tags: tuple[str, ...],
              sweep: str | None, where: str | None, since: str | None,
              sort: str | None) -> None:
    """List runs, newest first (or sorted by a metric), filtered by what they mean.

    \b
    Examples:
      labdeck runs list --status failed --since 2d
      labdeck runs list --where 'DTree Accuracy > 0.9' --sort 'DTree Accuracy'
      labdeck runs list --tag team=vision -o csv > runs.csv
    """
    from backends.query import sort_name

    run_filter = build_filter(obj, statuses, targets, scripts, tags, sweep, where, since)
    records = select_runs(obj, run_filter, sort, limit)
    if output == "json":
        click.echo(_render().as_json([r.to_json() for r in records]))
    elif output == "csv":
        click.echo(_render().runs_csv(records))
    elif records:
        click.echo(_render().runs_table(records, sort_name(sort) if sort else None,
                                        colour=_colour()))
    else:
        click.echo("no runs match" if run_filter.sql()[0] else "no runs yet", err=True)


@runs.command("best")
@click.argument("metric")
@click.option("--asc", "lowest", is_flag=True, help="Lowest is best (a loss).")
@output_option
@filter_options
@click.pass_obj
def runs_best(obj: Ctx, metric: str, lowest: bool, output: str, statuses: tuple[str, ...],
              targets: tuple[str, ...], scripts: tuple[str, ...], tags: tuple[str, ...],
              sweep: str | None, where: str | None) -> None:
    """Show the run with the highest METRIC (lowest with --asc) among those the filters keep.

    \b
    Examples:
      labdeck runs best 'DTree Accuracy'
      labdeck runs best loss --asc --tag team=nlp
    """
    from backends.errors import RunNotFound

    run_filter = build_filter(obj, statuses, targets, scripts, tags, sweep, where)
    sort = f"{metric}:{'asc' if lowest else 'desc'}"
    records = select_runs(obj, run_filter, sort, 1)
    if not records or _render().value_of(records[0], metric) == "-":
        raise RunNotFound(f"no run has a numeric {metric!r}")
    show_record(records[0], output, obj)


@runs.command("tag")
@click.argument("run_id")
@click.argument("tags", nargs=-1, required=True)
@click.pass_obj
def runs_tag(obj: Ctx, run_id: str, tags: tuple[str, ...]) -> None:
    """Add or change tags: labdeck runs tag RUN NAME=VALUE [NAME=VALUE...].

    \b
    Examples:
      labdeck runs tag baseline stage=prod reviewed
    """
    from backends.history import parse_tags

    record = obj.engine.get(run_id, with_metrics=False)
    obj.engine.store.set_tags(record.id, parse_tags(tags, "tag"))
    click.echo(_render().tags_text(obj.engine.get(record.id).tags))


@runs.command("untag")
@click.argument("run_id")
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def runs_untag(obj: Ctx, run_id: str, names: tuple[str, ...]) -> None:
    """Remove tags by name.

    \b
    Examples:
      labdeck runs untag baseline reviewed
    """
    record = obj.engine.get(run_id, with_metrics=False)
    gone = obj.engine.store.remove_tags(record.id, list(names))
    missing = [n for n in names if n not in gone]
    if missing:
        click.echo(f"labdeck: warning: run {record.id} had no tag {', '.join(missing)}", err=True)
    click.echo(_render().tags_text(obj.engine.get(record.id).tags))


@runs.command("reindex")
@click.pass_obj
def runs_reindex(obj: Ctx) -> None:
    """Rebuild the run store from the run folders (a damaged runs.db is moved aside).

    \b
    Examples:
      labdeck runs reindex
    """
    from backends.reindex import reindex

    result = reindex(obj.engine.project)
    if result.moved_aside is not None:
        click.echo(f"the damaged store is kept as {result.moved_aside}")
    for line in result.skipped:
        click.echo(f"labdeck: warning: skipped {line}", err=True)
    click.echo(f"{len(result.added)} run(s) added to the store from their folders")


@runs.command("note")
@click.argument("run_id")
@click.argument("text")
@click.pass_obj
def runs_note(obj: Ctx, run_id: str, text: str) -> None:
    """Set a run's note ('' removes it).

    \b
    Examples:
      labdeck runs note baseline 'lr too high'
      labdeck runs note baseline ''
    """
    record = obj.engine.get(run_id, with_metrics=False)
    obj.engine.store.set_note(record.id, text)


@runs.command("rename")
@click.argument("run_id")
@click.argument("name")
@click.pass_obj
def runs_rename(obj: Ctx, run_id: str, name: str) -> None:
    """Name a run ('' removes its name); the name then works wherever a run id does.

    \b
    Examples:
      labdeck runs rename proj_1718000000000 baseline
    """
    from backends.history import check_name

    record = obj.engine.get(run_id, with_metrics=False)
    obj.engine.store.rename(record.id, check_name(name) if name else None)
    click.echo(f"run {record.id}" + (f" is named {name}" if name else " has no name"))


@runs.command("delete")
@click.argument("run_ids", nargs=-1, required=True)
@click.option("--dry-run", is_flag=True, help="Show what would go and the space freed.")
@click.pass_obj
def runs_delete(obj: Ctx, run_ids: tuple[str, ...], dry_run: bool) -> None:
    """Delete ended runs: their folders (snapshot, log, outputs) and records.

    \b
    Examples:
      labdeck runs delete baseline proj_1718000000000 --dry-run
    """
    from backends.history import select_delete

    engine = recovered(obj)
    doomed = select_delete(engine.store, engine.project.runs_dir, list(run_ids))
    _delete(engine, doomed, dry_run)


@runs.command("prune")
@filter_options
@click.option("--older-than", default=None, metavar="AGE|DATE",
              help="Runs created before then: 12h, 3d, 2w or 2024-05-01.")
@click.option("--keep-last", type=click.IntRange(min=0), default=None, metavar="N",
              help="Spare the newest N of the runs selected.")
@click.option("--dry-run", is_flag=True, help="Show what would go and the space freed.")
@click.pass_obj
def runs_prune(obj: Ctx, statuses: tuple[str, ...], targets: tuple[str, ...],
               scripts: tuple[str, ...], tags: tuple[str, ...], sweep: str | None,
               where: str | None, older_than: str | None, keep_last: int | None,
               dry_run: bool) -> None:
    """Delete ended runs by age, status, tag, count...; runs in flight are never touched.

    \b
    Examples:
      labdeck runs prune --keep-last 5 --dry-run
      labdeck runs prune --status failed --older-than 7d
    """
    from backends.history import select_prune

    if not (statuses or targets or scripts or tags or sweep or where or older_than
            or keep_last is not None):
        raise click.UsageError("say what to prune: --older-than, --status, --keep-last, --tag,"
                               " --target, --script, --sweep or --where")
    run_filter = build_filter(obj, statuses, targets, scripts, tags, sweep, where,
                              older_than=older_than)
    engine = recovered(obj)
    _delete(engine, select_prune(engine.store, engine.project.runs_dir, run_filter, keep_last),
            dry_run)


def _delete(engine: Any, doomed: list[Any], dry_run: bool) -> None:
    from backends.history import delete, human_size

    if not doomed:
        click.echo("nothing to delete", err=True)
        return
    if dry_run:
        for item in doomed:
            click.echo(f"would delete {item.record.id}  {item.record.status.value}"
                       f"  {human_size(item.size)}")
        total = sum(item.size for item in doomed)
        click.echo(f"would delete {len(doomed)} run(s), freeing {human_size(total)}", err=True)
        return
    done, freed = delete(engine.store, engine.project.runs_dir, doomed)
    for item in done:
        click.echo(f"deleted {item.record.id}  {human_size(item.size)}")
    click.echo(f"deleted {len(done)} run(s), freed {human_size(freed)}", err=True)


def recovered(obj: Ctx) -> Any:
    """The engine, once the runs in flight whose supervisor died were taken over (a new
    supervisor reattaches, or the run is failed): reads are read-only, this is the step."""
    obj.engine.recover()
    return obj.engine


def show_record(record: Any, output: str, obj: Ctx | None = None) -> None:
    if output == "json":
        click.echo(_render().as_json(record.to_json()))
        return
    from .failure import failure_reason

    reason = failure_reason(record, obj.engine.log_path(record.id)) if obj else record.error
    click.echo(_render().run_details(record, reason, colour=_colour()))


@runs.command("show")
@click.argument("run_id")
@output_option
@click.pass_obj
def runs_show(obj: Ctx, run_id: str, output: str) -> None:
    """Show one run.

    \b
    Examples:
      labdeck runs show baseline
      labdeck runs show proj_17180 -o json   (a unique id prefix)
    """
    show_record(recovered(obj).get(run_id), output, obj)


@runs.command("last")
@output_option
@click.pass_obj
def runs_last(obj: Ctx, output: str) -> None:
    """Show the newest run.

    \b
    Examples:
      labdeck runs last -o json
    """
    show_record(recovered(obj).last(), output, obj)


@runs.command("logs")
@click.argument("run_id")
@click.option("-f", "--follow", "follow_", is_flag=True, help="Keep printing until the run ends.")
@click.option("-t", "--timestamps", is_flag=True, help="Prefix each line with its time (UTC).")
@click.option("--tail", type=click.IntRange(min=0), default=None,
              help="Start from the last N lines.")
@click.pass_obj
def runs_logs(obj: Ctx, run_id: str, follow_: bool, timestamps: bool, tail: int | None) -> None:
    """Print a run's log (stdout, stderr, metrics and labdeck's notes).

    \b
    Examples:
      labdeck runs logs baseline -f
      labdeck runs logs RUN --tail 50 -t
    """
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
    """Cancel runs: SIGTERM to everything they started, SIGKILL after a grace period.

    \b
    Examples:
      labdeck runs cancel RUN
      labdeck runs cancel RUN1 RUN2 --no-wait
    """
    do_cancel(obj, list(run_ids), wait)


def do_cancel(obj: Ctx, run_ids: list[str], wait: bool) -> None:
    import time

    engine = obj.engine
    for run_id in run_ids:
        record = engine.cancel(run_id)
        if record.status.is_terminal():
            click.echo(f"run {record.id} already {_status(record.status.value)}")
            continue
        deadline = time.monotonic() + 30
        while wait and time.monotonic() < deadline:
            record = engine.get(record.id)
            if record.status.is_terminal():
                break
            time.sleep(0.05)
        click.echo(
            f"run {record.id} {_status(record.status.value)}"
            + ("" if record.status.is_terminal() else " (cancel requested)")
        )


def _status(value: str) -> str:
    from .cli_style import status

    return status(value, _colour())


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
    """Copy a run's outputs to a folder.

    \b
    Examples:
      labdeck runs download baseline
      labdeck runs download RUN -d /tmp/model
    """
    record = recovered(obj).get(run_id)
    target_dir = dest if dest is not None else Path("downloads") / record.id
    for path in obj.engine.download(record.id, target_dir):
        click.echo(str(path))


@runs.command("compare")
@click.argument("run_ids", nargs=-1, required=True)
@output_option
@click.pass_obj
def runs_compare(obj: Ctx, run_ids: tuple[str, ...], output: str) -> None:
    """Metrics of several runs side by side.

    \b
    Examples:
      labdeck runs compare baseline RUN
      labdeck runs compare RUN1 RUN2 RUN3 -o json
    """
    if len(run_ids) < 2:
        raise click.UsageError("compare needs at least two runs")
    engine = recovered(obj)
    records = [engine.get(r) for r in run_ids]
    if output == "json":
        click.echo(_render().as_json([r.to_json() for r in records]))
    else:
        click.echo(_render().compare(records))


# ------------------------------------------------------------------------------------ sweep


class SweepGroup(click.Group):
    """``labdeck sweep -c T script.py --grid ...`` starts one (the ``start`` verb implied);
    ``labdeck sweep show|cancel|list ...`` are verbs."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["start", *args]
        return super().parse_args(ctx, args)


@cli.group(cls=SweepGroup)
def sweep() -> None:
    """Parameter sweeps: a grid or random search, each point a run under one sweep id.

    \b
    Examples:
      labdeck sweep -c local train.py --grid 'rate=0.01,0.1,1' --grid 'depth=2,4' --parallel 2
      labdeck sweep -c docker train.py --random 'rate=0.0001:1:log' --count 8 --seed 7
      labdeck sweep -c local train.py --grid 'rate=0.1,1' -- --epochs 3   (the script's own args)
      labdeck sweep show SWEEP --sort accuracy
      labdeck sweep cancel SWEEP
    """


@sweep.command("start")
@click.option("-c", "--target", "target", default="local", show_default=True,
              help="A runconfig or compute name from aml_config/.")
@click.option("--grid", "grids", multiple=True, metavar="NAME=V1,V2,...",
              help="Values of one param; several --grid are crossed.")
@click.option("--random", "randoms", multiple=True, metavar="NAME=LOW:HIGH[:log]",
              help="A param drawn at random (integers when LOW and HIGH are); needs --count.")
@click.option("--count", type=int, default=None, help="With --random: how many draws.")
@click.option("--seed", type=int, default=None, help="With --random: the draws' seed.")
@click.option("--parallel", type=int, default=1, show_default=True,
              help="Runs in flight at once.")
@click.option("--sort", default=None, metavar="METRIC[:asc]",
              help="Order of the table printed at the end (best first).")
@click.option("--tag", "tags", multiple=True, metavar="NAME=VALUE", help="Tag every run.")
@click.option("--name", default=None,
              help="Name the runs NAME-1, NAME-2... in the points' order.")
@click.argument("script")
@click.argument("script_args", nargs=-1)
@click.pass_obj
def sweep_start(obj: Ctx, target: str, grids: tuple[str, ...], randoms: tuple[str, ...],
                count: int | None, seed: int | None, parallel: int, sort: str | None,
                tags: tuple[str, ...], name: str | None, script: str,
                script_args: tuple[str, ...]) -> None:
    """Run SCRIPT once per point (passed as --NAME VALUE after the script's own args, which
    follow --); waits for every run and prints the sweep's table.

    \b
    Examples:
      labdeck sweep -c local train.py --grid 'rate=0.01,0.1,1' --parallel 2
      labdeck sweep train.py --random 'rate=1e-4:1:log' --count 8 --seed 7 --name lr
    """
    import secrets
    import time

    from backends.history import check_name, parse_tags
    from backends.sweep import SweepEvents, parse_grid, parse_random, points, run_sweep

    if parallel < 1:
        raise click.UsageError("--parallel: 1 or more")
    if seed is not None and not randoms:
        raise click.UsageError("--seed goes with --random (a grid draws nothing)")
    if name is not None:
        check_name(f"{name}-1")
    seed = seed if seed is not None else secrets.randbelow(2**31)
    todo = points([parse_grid(g) for g in grids], [parse_random(r) for r in randoms], count,
                  seed)
    tag_map = parse_tags(tags)
    engine = obj.engine
    if name is not None:  # every name free before the first run starts, not one taken midway
        names = [f"{name}-{i}" for i in range(1, len(todo) + 1)]
        taken = engine.store.select(f"name IN ({','.join('?' * len(names))})", names,
                                    with_metrics=False, limit=1) if names else []
        if taken:
            raise click.UsageError(f"--name {name}: {taken[0].name} is taken by run"
                                   f" {taken[0].id}")
    show_warnings(engine.project.resolve(target))
    sweep_id = f"sweep_{int(time.time() * 1000)}"
    spec = {"grid": list(grids), "random": list(randoms), "count": count, "seed": seed,
            "parallel": parallel, "args": list(script_args)}
    engine.store.create_sweep(sweep_id, target, script, spec, len(todo))
    click.echo(sweep_id)
    click.echo(f"sweep {sweep_id}: {len(todo)} run(s) of {script} on {target}, {parallel} at a"
               f" time" + (f", seed {seed}" if randoms else ""), err=True)
    events = SweepEvents(
        submitted=lambda rec, point: click.echo(
            f"run {rec.id} submitted: " + " ".join(f"{k}={v}" for k, v in point.items()),
            err=True),
        ended=lambda rec: click.echo(f"run {rec.id} {rec.status.value}", err=True),
    )
    try:
        ids = run_sweep(engine, sweep_id, target, script, list(script_args), todo, parallel,
                        events, tags=tag_map, name=name)
    except KeyboardInterrupt:
        click.echo(f"\nlabdeck: stopped submitting; runs in flight go on"
                   f" (labdeck sweep cancel {sweep_id})", err=True)
        sys.exit(130)
    records = _sweep_records(obj, sweep_id, sort)
    click.echo(_render().sweep_table(records, _sort_name(sort), colour=_colour()))
    if len(ids) < len(todo):
        click.echo(f"sweep {sweep_id} canceled: {len(ids)} of {len(todo)} run(s) submitted",
                   err=True)
    sys.exit(0 if all(r.status.value == "completed" for r in records)
             and len(ids) == len(todo) else 1)


def _sort_name(sort: str | None) -> str | None:
    from backends.query import sort_name

    return sort_name(sort) if sort else None


def _sweep_records(obj: Ctx, sweep_id: str, sort: str | None) -> list[Any]:
    from backends.query import RunFilter, select_runs

    return select_runs(obj.engine.store, RunFilter(sweep=sweep_id), sort, oldest_first=True)


@sweep.command("show")
@click.argument("sweep_id")
@click.option("--sort", default=None, metavar="METRIC[:asc]",
              help="By a metric or param, best (highest) first; METRIC:asc for lowest first.")
@click.option("-o", "--output", type=click.Choice(["table", "json", "csv"]), default="table",
              help="Output format.")
@click.pass_obj
def sweep_show(obj: Ctx, sweep_id: str, sort: str | None, output: str) -> None:
    """A sweep's runs with their params and metrics, best first by --sort.

    \b
    Examples:
      labdeck sweep show SWEEP --sort accuracy
      labdeck sweep show SWEEP -o csv
    """
    engine = recovered(obj)
    found = engine.store.sweep(sweep_id)
    records = _sweep_records(obj, found.id, sort)
    if output == "json":
        click.echo(_render().as_json({"id": found.id, "target": found.target,
                                      "script": found.script, "spec": found.spec,
                                      "total": found.total, "canceled": found.cancel_requested,
                                      "runs": [r.to_json() for r in records]}))
        return
    if output == "csv":
        click.echo(_render().runs_csv(records))
        return
    counts: dict[str, int] = {}
    for rec in records:
        counts[rec.status.value] = counts.get(rec.status.value, 0) + 1
    state = ", ".join(f"{n} {s}" for s, n in counts.items()) or "no runs yet"
    click.echo(f"sweep {found.id}: {found.script} on {found.target}, {len(records)} of"
               f" {found.total} run(s): {state}" + (" (canceled)" if found.cancel_requested
                                                    else ""))
    click.echo(_render().sweep_table(records, _sort_name(sort), colour=_colour()))


@sweep.command("cancel")
@click.argument("sweep_id")
@click.pass_obj
def sweep_cancel(obj: Ctx, sweep_id: str) -> None:
    """Cancel a sweep: no more of its points start, and its runs in flight are canceled.

    \b
    Examples:
      labdeck sweep cancel SWEEP
    """
    from backends.sweep import cancel_sweep

    engine = recovered(obj)
    found = engine.store.sweep(sweep_id)
    canceled = cancel_sweep(engine, found.id)
    click.echo(f"sweep {found.id} canceled; {len(canceled)} run(s) in flight asked to stop")


# ------------------------------------------------------------------------------------ Workbench


@cli.group()
def experiment() -> None:
    """Workbench spelling: experiment submit|prepare|cancel."""


experiment.add_command(submit, "submit")
experiment.add_command(prepare, "prepare")


@experiment.command("cancel")
@click.option("-r", "--run", "run_ids", multiple=True, help="A run to cancel (repeatable).")
@click.argument("more_ids", nargs=-1)
@click.pass_obj
def experiment_cancel(obj: Ctx, run_ids: tuple[str, ...], more_ids: tuple[str, ...]) -> None:
    """Same as 'labdeck runs cancel'.

    \b
    Examples:
      labdeck experiment cancel -r RUN
    """
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
    """Workbench spelling: computetarget attach|detach|list|show."""


computetarget.add_command(target_attach, "attach")
computetarget.add_command(target_detach, "detach")
computetarget.add_command(target_list, "list")
computetarget.add_command(target_show, "show")


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
    """Open the dashboard (the default command).

    \b
    Examples:
      labdeck
      labdeck ui -c docker --submit train.py
    """
    from .app import run_app

    run_app(obj.engine, target=target, submit_script=submit_script)


# Verbs kept in their own modules register on `cli` / `runs` as they are imported.
from . import cli_snapshots  # noqa: E402, F401
from .cli_complete import install as _install_completion  # noqa: E402
from .cli_complete import register as _register_completion  # noqa: E402
from .cli_init import init as _init  # noqa: E402

cli.add_command(_init)
_register_completion(cli)
_install_completion(cli)  # once every verb is registered


def main(argv: list[str] | None = None) -> None:
    guarded(_click_main, argv)


def _click_main(argv: list[str] | None) -> None:
    from backends.errors import LabdeckError

    try:
        cli.main(args=argv, prog_name="labdeck", standalone_mode=False)
    except click.exceptions.Abort:
        echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as err:  # one line, as labdeck's own errors
        echo(_error_line(usage_message(err)), err=True)
        sys.exit(err.exit_code)
    except LabdeckError as err:
        echo(_error_line(str(err)), err=True)
        for line in getattr(err, "details", []):
            echo(f"  {line}", err=True)
        sys.exit(err.exit_code)


def usage_message(err: click.ClickException) -> str:
    """A click error as one line, naming the verb's --help for a usage error."""
    message = " ".join(err.format_message().split())
    ctx = getattr(err, "ctx", None)
    if isinstance(err, click.UsageError) and ctx is not None:
        message += f" (see '{ctx.command_path} --help')"
    return message


def _error_line(message: str) -> str:
    from .cli_style import error_line

    return error_line(message, _colour(err=True))


if __name__ == "__main__":
    main()
