"""``target attach remotedocker``'s CLI side: read the password, run the check, print what
the host offers (engine, GPUs, latency)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from backends.errors import UsageError


def attach_remote(project, name: str, *, address: str | None, username: str | None,
                  identity_file: str | None, password_stdin: bool, password: str | None,
                  accept_new_host_key: bool, base_image: str | None, gpus: str | None,
                  shared_volumes: bool, force: bool) -> None:
    from backends.docker.remote_attach import attach_remotedocker

    if password is not None:
        raise UsageError("--password on the command line is refused (it would stay in the "
                         "shell history and the process list): use --password-stdin")
    if shared_volumes:
        raise UsageError("--shared-volumes applies to docker targets only (a remote run gets "
                         "a synced copy of the project)")
    secret = None
    if password_stdin:
        secret = _read_password(username, address)
    result = asyncio.run(attach_remotedocker(
        project, name, address=address, username=username, identity_file=identity_file,
        password=secret, accept_new_host_key=accept_new_host_key, base_image=base_image,
        gpus=gpus, force=force))
    for path in result.written:
        click.echo(f"wrote {_rel(path)}")
    if result.password_kept_in:
        click.echo(f"password kept in {result.password_kept_in} (not in the project)")
    info = result.info
    click.echo(f"connected: {info.detail}")
    if info.gpus:
        for g in info.gpus:
            click.echo(f"GPU {g.index}: {g.name}, {g.memory_total_mb} MiB")
    click.echo(f"GPUs: {len(info.gpus) or 'none'}" + (f" ({info.gpu_note})" if info.gpu_note
                                                       else ""))


def attach_cluster(project, name: str, *, address: str | None, username: str | None,
                   identity_file: str | None, password_stdin: bool, password: str | None,
                   accept_new_host_key: bool, yarn_deploy_mode: str, force: bool) -> None:
    """``target attach cluster``: the head node checked over SSH (spark-submit, Java), then
    the files written."""
    from backends.spark.attach import attach_cluster as attach

    if password is not None:
        raise UsageError("--password on the command line is refused (it would stay in the "
                         "shell history and the process list): use --password-stdin")
    secret = _read_password(username, address) if password_stdin else None
    result = asyncio.run(attach(
        project, name, address=address, username=username, identity_file=identity_file,
        password=secret, accept_new_host_key=accept_new_host_key,
        yarn_deploy_mode=yarn_deploy_mode, force=force))
    for path in result.written:
        click.echo(f"wrote {_rel(path)}")
    if result.password_kept_in:
        click.echo(f"password kept in {result.password_kept_in} (not in the project)")
    click.echo(f"connected: {result.info.detail}")


def _read_password(username: str | None, address: str | None) -> str:
    """One line from stdin; at a terminal, asked for without echo (a copy of the command the
    host-key refusal prints, run as it is, read the password with echo on)."""
    if sys.stdin.isatty():
        import getpass

        who = f"{username}@{address}" if username else str(address)
        return getpass.getpass(f"password for {who}: ")
    return sys.stdin.readline().rstrip("\r\n")


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
