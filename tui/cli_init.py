"""``labdeck init``: make a folder a labdeck project (cli.py adds the command to ``cli``)."""

from __future__ import annotations

from pathlib import Path

import click

from .submitting import Ctx, warn


@click.command("init")
@click.argument("folder", required=False, type=click.Path(path_type=Path))
@click.option("--force", is_flag=True,
              help="Add the files that are missing to an existing aml_config/ (never overwrites"
                   " one).")
@click.pass_obj
def init(obj: Ctx, folder: Path | None, force: bool) -> None:
    """Make FOLDER (default: --project, else here) a project: aml_config/ with a local and a
    docker target in Workbench's format, and a .labdeckignore.

    \b
    Examples:
      labdeck init
      labdeck init my-experiment
      labdeck init --force          (an aml_config/ exists: add only what it lacks)
    """
    from backends.scaffold import check_written, init_project

    root = folder or obj.project_dir or Path(".")
    result = init_project(root, force)
    for path in result.written:
        click.echo(f"wrote {path}")
    for path in result.kept:
        click.echo(f"kept  {path} (exists; not overwritten)")
    for warning in check_written(result):
        warn(str(warning))
    click.echo(next_steps(root), err=True)


def next_steps(root: Path) -> str:
    """What to do now, naming a script of the folder when it has one."""
    scripts = sorted(p.name for p in root.glob("*.py"))[:1]
    script = scripts[0] if scripts else "train.py"
    steps = [
        (f"labdeck submit -c local {script}", "run a script on this machine"),
        ("labdeck prepare -c docker", "build the docker target's image"
                                      " (packages: aml_config/conda_dependencies.yml)"),
        (f"labdeck submit -c docker {script}", "run it in a container"),
        ("labdeck", "the dashboard"),
    ]
    if root.resolve() != Path.cwd().resolve():
        steps.insert(0, (f"cd {root}", ""))
    width = max(len(cmd) for cmd, _ in steps) + 3
    return "next:\n" + "\n".join(f"  {cmd.ljust(width)}{why}".rstrip() for cmd, why in steps)
