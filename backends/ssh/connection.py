"""One SSH connection to a host, as OpenSSH would make it, with one-line errors.

asyncssh (imported here, lazily for everything above) reads ~/.ssh/config (Host aliases,
HostName, Port, User, IdentityFile, ProxyJump), uses the agent and verifies the host key
against known_hosts. What labdeck adds: an unknown host key is refused with its fingerprint and
the command that accepts it (or accepted, when asked, like StrictHostKeyChecking=accept-new); a
CHANGED key is always refused; keepalive is on (a paused host is otherwise never noticed); and
every failure is a TargetError naming what failed.
"""

from __future__ import annotations

import asyncio
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import TargetError

if TYPE_CHECKING:
    import asyncssh

KEEPALIVE_INTERVAL = 2.0  # seconds; with KEEPALIVE_COUNT, a silent host is lost in ~6 s
KEEPALIVE_COUNT = 2
CONNECT_TIMEOUT = 15.0


@dataclass(frozen=True)
class SSHEndpoint:
    """Where and as whom to log in. ``host`` may be a ~/.ssh/config alias; None fields are
    left to ~/.ssh/config and then to OpenSSH's defaults."""

    host: str
    port: int | None = None
    username: str | None = None
    identity_file: str | None = None
    password: str | None = None
    accept_new_host_key: bool = False
    accept_hint: str = ""  # the command that accepts an unknown key (shown when refused)

    def __repr__(self) -> str:  # never print a password by accident
        return f"SSHEndpoint({self.where})"

    @property
    def where(self) -> str:
        user = f"{self.username}@" if self.username else ""
        port = f":{self.port}" if self.port else ""
        return f"{user}{self.host}{port}"


def split_address(address: str) -> tuple[str, int | None]:
    """``HOST[:PORT]`` (``[v6]:PORT`` too) -> (host, port or None)."""
    text = address.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, ""
    if not host or any(c.isspace() for c in host) or host.startswith("-"):
        raise ValueError(f"not a host name: {address!r}")
    if not port_text:
        return host, None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"port must be a number 1-65535 in {address!r}")
    return host, int(port_text)


def _options(endpoint: SSHEndpoint) -> asyncssh.SSHClientConnectionOptions:
    import asyncssh

    kwargs: dict[str, object] = {
        "keepalive_interval": KEEPALIVE_INTERVAL,
        "keepalive_count_max": KEEPALIVE_COUNT,
        "connect_timeout": CONNECT_TIMEOUT,
    }
    if endpoint.port is not None:
        kwargs["port"] = endpoint.port
    if endpoint.username:
        kwargs["username"] = endpoint.username
    if endpoint.identity_file:
        path = Path(endpoint.identity_file).expanduser()
        if not path.is_file():
            raise TargetError(f"identity file {path} does not exist")
        kwargs["client_keys"] = [str(path)]
    if endpoint.password is not None:
        kwargs["password"] = endpoint.password
    else:
        kwargs["password_auth"] = False  # nothing to answer with: never prompt
    # Options built apart from connect() read no config unless told to (connect() would).
    config = Path("~", ".ssh", "config").expanduser()
    kwargs["config"] = [str(config)] if os.access(config, os.R_OK) else []
    try:
        options = asyncssh.SSHClientConnectionOptions(host=endpoint.host, **kwargs)
        if options.encryption_algs == _default_ciphers():  # no Ciphers in ~/.ssh/config
            options = asyncssh.SSHClientConnectionOptions(options=options,
                                                          encryption_algs=list(CIPHERS))
        return options
    except (OSError, ValueError, asyncssh.Error) as err:
        raise TargetError(f"cannot use the SSH settings for {endpoint.where}: {err}") from err


# AES-GCM first (OpenSSH and asyncssh put ChaCha20 first): AES-NI makes it about twice as fast
# in asyncssh, whose ChaCha20-Poly1305 is assembled in Python per packet (bench_remote_rig.py:
# the sync's bulk); every cipher stays on offer. Ciphers in ~/.ssh/config are kept as written.
CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com",
           "chacha20-poly1305@openssh.com", "aes256-ctr", "aes192-ctr", "aes128-ctr")


def _default_ciphers() -> list[bytes]:
    import asyncssh

    return list(asyncssh.encryption.get_default_encryption_algs())


def _known_hosts_files(options: asyncssh.SSHClientConnectionOptions) -> list[Path]:
    files = options.known_hosts
    if isinstance(files, list | tuple) and files and all(isinstance(f, str) for f in files):
        return [Path(str(f)).expanduser() for f in files]
    return [Path("~", ".ssh", "known_hosts").expanduser(), Path("/etc/ssh/ssh_known_hosts")]


def _known_keys(files: list[Path], host: str, port: int) -> list[asyncssh.SSHKey]:
    """The keys known_hosts holds for the host (any key: a different one means CHANGED)."""
    import asyncssh

    found: list[asyncssh.SSHKey] = []
    for path in files:
        if not path.is_file():
            continue
        try:
            known = asyncssh.read_known_hosts(str(path))
        except (OSError, ValueError, asyncssh.Error):
            continue
        keys = known.match(host, "", port if port != 22 else None)[0]
        found += [key for key in keys if key is not None]
    return found


def known_hosts_name(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


async def _server_key(endpoint: SSHEndpoint,
                      options: asyncssh.SSHClientConnectionOptions) -> asyncssh.SSHKey:
    import asyncssh

    try:
        # The same route as the connection: ~/.ssh/config's ProxyJump or ProxyCommand too.
        key = await asyncssh.get_server_host_key(endpoint.host, options.port)
    except (OSError, asyncssh.Error, TimeoutError) as err:
        raise _mapped(endpoint, options, err) from err
    if key is None:
        raise TargetError(f"{endpoint.where} presented no host key")
    return key


async def _check_host_key(endpoint: SSHEndpoint,
                          options: asyncssh.SSHClientConnectionOptions) -> None:
    """Before connecting: a host whose key known_hosts lacks is refused (or, when asked, its
    key is added, as OpenSSH's accept-new does); a known host goes on to asyncssh's own strict
    check, which refuses a changed key (classified by ``_host_key_error``)."""
    host, port = options.host, options.port
    files = _known_hosts_files(options)
    if _known_keys(files, host, port):
        return
    key = await _server_key(endpoint, options)
    fingerprint = key.get_fingerprint("sha256")
    if not endpoint.accept_new_host_key:
        hint = endpoint.accept_hint or "pass --accept-new-host-key"
        raise TargetError(f"unknown host key for {known_hosts_name(host, port)} "
                          f"({key.get_algorithm()} {fingerprint}): check it with the host's "
                          f"owner, then accept it with: {hint}")
    target = files[0]
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    line = f"{known_hosts_name(host, port)} {key.export_public_key().decode().strip()}\n"
    with open(target, "a", encoding="ascii") as out:
        out.write(line)


def _host_key_error(endpoint: SSHEndpoint,
                    options: asyncssh.SSHClientConnectionOptions) -> TargetError:
    name = known_hosts_name(options.host, options.port)
    files = _known_hosts_files(options)
    return TargetError(f"the host key of {name} has CHANGED since it was recorded in "
                       f"{files[0]}: refused (it may be an attack; if the host was "
                       f"reinstalled, remove the old key with: ssh-keygen -R '{name}')")


def _mapped(endpoint: SSHEndpoint, options: asyncssh.SSHClientConnectionOptions | None,
            err: BaseException) -> TargetError:
    """A connection failure as one line naming what failed."""
    import asyncssh

    where = endpoint.where
    if isinstance(err, socket.gaierror):
        return TargetError(f"cannot resolve the host name {endpoint.host!r}: {err.strerror}")
    if isinstance(err, ConnectionRefusedError):
        return TargetError(f"connection to {where} refused (is sshd running, is the port "
                           "right?)")
    if isinstance(err, TimeoutError | asyncio.TimeoutError):
        return TargetError(f"connection to {where} timed out after {CONNECT_TIMEOUT:g} s")
    if isinstance(err, asyncssh.HostKeyNotVerifiable) and options is not None:
        return _host_key_error(endpoint, options)
    if isinstance(err, asyncssh.PermissionDenied):
        tried = []
        if endpoint.identity_file:
            tried.append(f"publickey ({endpoint.identity_file})")
        else:
            tried.append("publickey (agent, ~/.ssh/config and default keys)")
        if endpoint.password is not None:
            tried.append("password")
        user = options.username if options is not None else endpoint.username
        return TargetError(f"authentication failed for {user}@{endpoint.host}: tried "
                           f"{', '.join(tried)}")
    if isinstance(err, OSError):
        return TargetError(f"cannot connect to {where}: {err.strerror or err}")
    reason = getattr(err, "reason", "") or str(err) or type(err).__name__
    return TargetError(f"SSH connection to {where} failed: {reason}")


async def connect(endpoint: SSHEndpoint) -> asyncssh.SSHClientConnection:
    """A verified, authenticated connection with keepalive on; TargetError otherwise."""
    import asyncssh

    options = await asyncio.to_thread(_options, endpoint)  # reads config and key files
    await _check_host_key(endpoint, options)
    try:
        return await asyncssh.connect(endpoint.host, options=options)
    except (OSError, asyncssh.Error, TimeoutError) as err:
        raise _mapped(endpoint, options, err) from err

