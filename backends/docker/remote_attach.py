"""``target attach remotedocker``: check the host first, then write the files.

Every input is checked before anything is touched (a bad one is one UsageError line); then the
host is reached exactly as a run will reach it (SSH as OpenSSH would, the Docker socket through
the link), and only when that worked are the password (kept outside the project, see
ssh/secrets.py), the .compute and the .runconfig written.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from ..attach import (
    NAME_RE,
    _forget_password,
    _quote,
    _write_atomic,
    accept_hint,
    login_lines,
    runconfig_text,
    write_dependencies_if_missing,
)
from ..base import TargetInfo
from ..config import DEFAULT_BASE_IMAGE, Compute, Warning_, load_compute
from ..errors import ConfigError, TargetError, UsageError
from ..project import Project
from ..ssh import secrets
from ..ssh.connection import split_address
from .remote import RemoteDockerBackend, endpoint_of
from .remote_link import RemoteLink

IMAGE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/@-]*$")
USER_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


@dataclass
class RemoteAttach:
    written: list[Path]
    password_kept_in: str | None
    info: TargetInfo


def check_inputs(project: Project, name: str, address: str | None, username: str | None,
                 identity_file: str | None, password: str | None, base_image: str | None,
                 force: bool) -> tuple[str, int | None]:
    """Every input of the attach, before any I/O with the host: one line for the first bad."""
    if not NAME_RE.match(name):
        raise UsageError(f"target name {name!r}: use letters, digits, '-', '_' and '.'")
    if not address:
        raise UsageError("remotedocker needs --address HOST[:PORT]")
    if "://" in address or "@" in address or "/" in address:
        raise UsageError(f"--address {address!r}: give HOST[:PORT] (the user with --username)")
    try:
        host, port = split_address(address)
    except ValueError as err:
        raise UsageError(f"--address: {err}") from err
    if username is not None and not USER_RE.match(username):
        raise UsageError(f"--username {username!r} is not a user name")
    if identity_file is not None and password is not None:
        raise UsageError("give --identity-file or --password-stdin, not both")
    if identity_file is not None:
        check_identity_file(identity_file)
    if password is not None and not password:
        raise UsageError("--password-stdin: the password read from stdin is empty")
    if base_image is not None and not IMAGE_RE.match(base_image):
        raise UsageError(f"--base-image {base_image!r} is not an image reference")
    compute_path = project.config_dir / f"{name}.compute"
    if compute_path.exists() and not force:
        raise UsageError(f"target {name!r} exists ({compute_path}); pass --force to overwrite")
    return host, port


def split_login(address: str, username: str | None) -> tuple[str, str | None]:
    """``[ssh://][USER@]HOST[:PORT]``, as ssh and ``docker -H`` take it, as (HOST[:PORT], user):
    the user in the address was taken for part of the host name ("cannot resolve the host name
    'user@host'")."""
    text = address.strip()
    if text.startswith("ssh://"):
        text = text[len("ssh://"):].rstrip("/")
    if "@" in text and "://" not in text:
        user, _, text = text.rpartition("@")
        if username is not None and username != user:
            raise UsageError(f"--address names the user {user!r} and --username {username!r}: "
                             "give one of them")
        username = user
    return text, username


def check_identity_file(identity_file: str) -> None:
    """The key must be a private key asyncssh can use without asking: a new user often gives
    the .pub file, and a passphrase is never prompted for (the agent holds such keys)."""
    import asyncssh

    path = Path(identity_file).expanduser()
    if not path.is_file():
        raise UsageError(f"--identity-file {identity_file}: no such file")
    try:
        asyncssh.read_private_key(str(path))
        return
    except (OSError, ValueError, asyncssh.Error) as err:
        reason = str(err)
    if "passphrase" in reason.lower():
        raise UsageError(f"--identity-file {identity_file} is protected by a passphrase, which "
                         f"labdeck does not ask for: add it to the agent (ssh-add "
                         f"{identity_file}) and attach without --identity-file")
    try:
        asyncssh.read_public_key(str(path))
    except (OSError, ValueError, asyncssh.Error):
        raise UsageError(f"--identity-file {identity_file} is not a private key "
                         f"({reason})") from None
    private = identity_file.removesuffix(".pub")
    raise UsageError(f"--identity-file {identity_file} is a public key: give the private key "
                     f"({private if private != identity_file else 'the file without .pub'})")


def compute_text(address: str, username: str | None, identity_file: str | None,
                 password_ref: str | None, base_image: str | None, gpus: str | None) -> str:
    lines = ['type: "remotedocker"', f"address: {_quote(address)}",
             f"baseDockerImage: {_quote(base_image or DEFAULT_BASE_IMAGE)}",
             'nativeSharedDirectory: "~/.azureml/share/"']
    lines += login_lines(username, identity_file, password_ref)
    if gpus:
        lines += ["nvidiaDocker: true", f"gpus: {_quote(gpus)}"]
    return "\n".join(sorted(lines)) + "\n"


def _validated(name: str, text: str) -> Compute:
    """The compute the text reads back as, or the config's own one-line error (exit 2)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{name}.compute"
        path.write_text(text, encoding="utf-8")
        warnings: list[Warning_] = []
        try:
            return load_compute(path, warnings)
        except ConfigError as err:
            raise UsageError(err.message) from err


async def attach_remotedocker(project: Project, name: str, *, address: str | None,
                              username: str | None = None, identity_file: str | None = None,
                              password: str | None = None, accept_new_host_key: bool = False,
                              base_image: str | None = None, gpus: str | None = None,
                              force: bool = False) -> RemoteAttach:
    if address:
        address, username = split_login(address, username)
    check_inputs(project, name, address, username, identity_file, password, base_image, force)
    assert address is not None
    sid = secrets.secret_id(project.root, name)
    ref = secrets.reference(sid) if password is not None else None
    text = compute_text(address, username, identity_file, ref, base_image, gpus)
    compute = _validated(name, text)

    hint = accept_hint("remotedocker", name, address, username, identity_file,
                       password is not None, force)
    endpoint = replace(endpoint_of(compute, accept_new_host_key), password=password,
                       accept_hint=hint)
    link = RemoteLink(endpoint)
    try:
        await link.open()  # every failure here is the one line that names it
    except TargetError:
        await link.close()
        raise
    info = await RemoteDockerBackend(compute, link).describe()  # closes the link
    if not info.reachable:
        raise TargetError(info.detail)

    compute_path = project.config_dir / f"{name}.compute"
    if compute_path.exists():  # --force: the password the old file named goes with it
        _forget_password(compute_path)
    kept = secrets.store(sid, password) if password is not None else None
    runconfig_path = project.config_dir / f"{name}.runconfig"
    project.config_dir.mkdir(exist_ok=True)
    _write_atomic(compute_path, text)
    written = [compute_path]
    if force or not runconfig_path.exists():
        _write_atomic(runconfig_path, runconfig_text(name, "remotedocker"))
        written.append(runconfig_path)
    written += write_dependencies_if_missing(project)
    return RemoteAttach(written, kept, info)
