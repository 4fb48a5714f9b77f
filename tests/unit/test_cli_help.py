"""Every verb of the CLI says what it does and shows examples, and every option has help text
(issue 12, item 8): a walk over the whole click tree, verbs of every module included."""

from __future__ import annotations

import click

from tui.cli import cli
from tui.cli_complete import walk


def commands() -> list[tuple[str, click.Command]]:
    return [(" ".join(("labdeck", *path)), cmd) for path, cmd in walk(cli)
            if not cmd.hidden]


def test_every_command_has_help_and_every_verb_examples() -> None:
    missing_help = [name for name, cmd in commands() if not (cmd.help or "").strip()]
    assert missing_help == []
    leaves = [(name, cmd) for name, cmd in commands() if not isinstance(cmd, click.Group)]
    assert len(leaves) > 30
    no_examples = [name for name, cmd in leaves
                   if "Examples:" not in (cmd.help or "") + (cmd.epilog or "")]
    assert no_examples == []


def test_every_option_has_help_text() -> None:
    bare = [f"{name} {'/'.join(param.opts)}" for name, cmd in commands()
            for param in cmd.params
            if isinstance(param, click.Option) and not param.hidden
            and not (param.help or "").strip()]
    assert bare == []


def test_help_prints_the_examples() -> None:
    from click.testing import CliRunner

    out = CliRunner().invoke(cli, ["runs", "show", "--help"]).output
    assert "Examples:" in out and "labdeck runs show" in out.split("Examples:")[1]
