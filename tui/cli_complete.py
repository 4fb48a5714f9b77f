"""Shell completion for ``labdeck`` (click's protocol: ``_LABDECK_COMPLETE=bash_source labdeck``
prints the script a shell sources).

Completers are given by parameter name across the whole command tree (``install``), so verbs
in other modules get them too: a target (``-c/--target``, ``target show NAME``), a run (any
``run_id``, ``run_ids``, ``run_a``, ``run_b``, ``-r/--run``: ids and names, newest first, with
status and script as the description), a sweep, and a script (``.py``/``.ipynb`` files and
folders). They read the project's files and its store directly (read-only, no migration, no
engine): a completion never writes, never fails loudly, and answers in milliseconds.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from .submitting import Ctx

TYPE_CHECKING = False
if TYPE_CHECKING:
    from click.shell_completion import CompletionItem

INSTALL = {
    "bash": ('eval "$(_LABDECK_COMPLETE=bash_source labdeck)"', "~/.bashrc"),
    "zsh": ('eval "$(_LABDECK_COMPLETE=zsh_source labdeck)"', "~/.zshrc"),
    "fish": ("_LABDECK_COMPLETE=fish_source labdeck | source",
             "~/.config/fish/completions/labdeck.fish"),
}
SCRIPT_SUFFIXES = (".py", ".ipynb")
MAX_RUNS = 200


def _project_root(ctx: click.Context) -> Path | None:
    root_ctx = ctx.find_root()
    explicit = root_ctx.params.get("project_dir")
    if explicit is not None:
        path = Path(explicit).expanduser()
        return path if (path / "aml_config").is_dir() else None
    here = Path(os.getcwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "aml_config").is_dir():
            return folder
    return None


def complete_target(ctx: click.Context, param: click.Parameter,
                    incomplete: str) -> list[CompletionItem]:
    from click.shell_completion import CompletionItem

    root = _project_root(ctx)
    names = {"local"}
    if root is not None:
        for pattern in ("*.compute", "*.runconfig"):
            names.update(p.stem for p in (root / "aml_config").glob(pattern))
    return [CompletionItem(n) for n in sorted(names) if n.startswith(incomplete)]


def _store_rows(ctx: click.Context, sql: str, args: tuple[object, ...]) -> list[tuple[str, ...]]:
    import sqlite3

    root = _project_root(ctx)
    if root is None:
        return []
    db = root / ".labdeck" / "runs.db"
    if not db.is_file():
        return []
    try:
        conn = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True, timeout=1)
        try:
            return list(conn.execute(sql, args).fetchall())
        finally:
            conn.close()
    except sqlite3.Error:
        return []  # a locked or damaged store: no candidates, never an error mid-typing


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def complete_run(ctx: click.Context, param: click.Parameter,
                 incomplete: str) -> list[CompletionItem]:
    """Run names and ids starting with what is typed, newest first."""
    from click.shell_completion import CompletionItem

    rows = _store_rows(
        ctx,
        "SELECT id, name, status, script FROM runs WHERE id LIKE ? ESCAPE '\\'"
        " OR name LIKE ? ESCAPE '\\' ORDER BY created DESC LIMIT ?",
        (_like(incomplete), _like(incomplete), MAX_RUNS),
    )
    out: list[CompletionItem] = []
    for run_id, name, status, script in rows:
        about = f"{status} {script or ''}".strip()
        if name and name.startswith(incomplete):
            out.append(CompletionItem(name, help=f"{run_id} {about}"))
        if run_id.startswith(incomplete):
            out.append(CompletionItem(run_id, help=(f"{name} " if name else "") + about))
    return out


def complete_sweep(ctx: click.Context, param: click.Parameter,
                   incomplete: str) -> list[CompletionItem]:
    from click.shell_completion import CompletionItem

    rows = _store_rows(ctx, "SELECT id, script, total FROM sweeps WHERE id LIKE ? ESCAPE '\\'"
                            " ORDER BY created DESC LIMIT ?", (_like(incomplete), MAX_RUNS))
    return [CompletionItem(i, help=f"{script}, {total} run(s)") for i, script, total in rows]


def complete_script(ctx: click.Context, param: click.Parameter,
                    incomplete: str) -> list[CompletionItem]:
    """Scripts (.py, .ipynb) and folders (ending in /) under what is typed."""
    from click.shell_completion import CompletionItem

    head, _, stem = incomplete.rpartition("/")
    folder = Path(head or ".") if not incomplete.startswith("/") or head else Path("/")
    prefix = f"{head}/" if head or incomplete.startswith("/") else ""
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return []
    out: list[CompletionItem] = []
    for entry in entries:
        name = entry.name
        if not name.startswith(stem) or (name.startswith(".") and not stem.startswith(".")):
            continue
        if entry.is_dir():
            if name not in ("__pycache__", ".labdeck", "outputs"):
                out.append(CompletionItem(f"{prefix}{name}/", type="plain"))
        elif name.endswith(SCRIPT_SUFFIXES):
            out.append(CompletionItem(f"{prefix}{name}"))
    return out


RUN_PARAMS = {"run_id", "run_ids", "run_a", "run_b", "more_ids"}
COMPLETERS = {
    "target": complete_target,
    "targets": complete_target,
    "sweep_id": complete_sweep,
    "sweep": complete_sweep,
    "script": complete_script,
    "submit_script": complete_script,
    **dict.fromkeys(RUN_PARAMS, complete_run),
}


def install(group: click.Group) -> None:
    """Give every parameter of the tree its completer by name (and ``target show NAME`` and
    ``target detach NAME`` a target's)."""
    for path, command in walk(group):
        for param in command.params:
            name = param.name or ""
            completer = COMPLETERS.get(name)
            if path[-2:] in (("target", "show"), ("target", "detach")) and name == "name":
                completer = complete_target
            if completer is not None and param._custom_shell_complete is None:
                param._custom_shell_complete = completer


def walk(command: click.Command, path: tuple[str, ...] = ()) -> list[
        tuple[tuple[str, ...], click.Command]]:
    """Every command of the tree with its path of names (each once: aliases are skipped)."""
    out = [(path, command)]
    if isinstance(command, click.Group):
        seen: set[int] = set()
        for name, sub in sorted(command.commands.items()):
            if id(sub) in seen:
                continue
            seen.add(id(sub))
            out += walk(sub, (*path, name))
    return out


def register(cli: click.Group) -> None:
    @cli.command("completion")
    @click.argument("shell", type=click.Choice(sorted(INSTALL)))
    @click.pass_obj
    def completion(obj: Ctx, shell: str) -> None:
        """Print the completion script for SHELL (targets, runs, sweeps and scripts complete).

        \b
        Install (then open a new shell):
          bash:  echo 'eval "$(_LABDECK_COMPLETE=bash_source labdeck)"' >> ~/.bashrc
          zsh:   echo 'eval "$(_LABDECK_COMPLETE=zsh_source labdeck)"' >> ~/.zshrc
          fish:  _LABDECK_COMPLETE=fish_source labdeck > ~/.config/fish/completions/labdeck.fish

        \b
        Examples:
          labdeck completion bash > ~/.local/share/bash-completion/completions/labdeck
          eval "$(labdeck completion zsh)"
        """
        from click.shell_completion import get_completion_class

        cls = get_completion_class(shell)
        assert cls is not None  # every SHELL the choice allows has one
        root = click.get_current_context().find_root()
        click.echo(cls(root.command, {}, "labdeck", "_LABDECK_COMPLETE").source())
