"""The Docker Engine API of a remote host, reached through one SSH connection.

A local unix socket in a private temp folder stands for the remote ``/var/run/docker.sock``:
asyncssh's ``forward_local_path`` carries every API connection made to it over the one SSH
connection, so docker/api.py (and aiodocker for builds) work unchanged on ``unix://<it>``.
Where sshd refuses stream-local forwarding, each local connection is served by a
``docker system dial-stdio`` exec channel instead (one SSH session per API connection).

The socket is served by this process's event loop: a blocking call on it made from the loop's
thread would deadlock, so remote targets never use the blocking early start.

The link reconnects with backoff (``recover``); ``generation`` counts connections, so callers
that failed at once reconnect only once.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import tempfile
import time
import weakref
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from .. import procutil
from ..errors import TargetError
from ..ssh.connection import SSHEndpoint, connect

if TYPE_CHECKING:
    import asyncssh

REMOTE_SOCKET = "/var/run/docker.sock"
BACKOFF = (0.2, 0.5, 1.0, 2.0, 4.0, 8.0)  # then every 8 s until RECONNECT_FOR runs out
RECONNECT_FOR = 300.0
_serial = itertools.count()


def _none() -> str | None:
    return None


def _quiet(message: str) -> None:
    pass


class RemoteLink:
    def __init__(self, endpoint: SSHEndpoint, password: Callable[[], str | None] = _none):
        self.endpoint = endpoint
        self._password = password  # read when first connecting (from the keyring or file)
        name = f"labdeck-ssh-{os.getuid()}-{os.getpid()}-{next(_serial)}"
        self.folder = Path(tempfile.gettempdir()) / name
        self.socket_path = str(self.folder / "docker.sock")
        weakref.finalize(self, shutil.rmtree, self.folder, True)  # also at interpreter exit
        self.url = f"unix://{self.socket_path}"
        self.conn: asyncssh.SSHClientConnection | None = None
        self.route = ""  # "forward" or "dial-stdio"
        self.engine_version = ""
        self.generation = 0
        self.state = "disconnected"  # connected / reconnecting / lost
        self._listener: object = None
        self._lock = asyncio.Lock()
        self.report: Callable[[str], None] = _quiet  # a run's log, once the run has one

    # ------------------------------------------------------------------ connect

    async def open(self) -> None:
        """Connect (once; later calls return at once while the connection lives)."""
        async with self._lock:
            if self.conn is not None and not _closed(self.conn):
                return
            await self._connect()

    async def _connect(self) -> None:
        if self.endpoint.password is None:
            password = self._password()
            if password is not None:
                self.endpoint = replace(self.endpoint, password=password)
        conn = await connect(self.endpoint)
        try:
            route, version = await self._probe(conn)
            await self._serve(conn, route)
        except BaseException:
            conn.close()
            raise
        self.conn, self.route, self.engine_version = conn, route, version
        self.generation += 1
        self.state = "connected"

    async def _probe(self, conn: asyncssh.SSHClientConnection) -> tuple[str, str]:
        """How the daemon is reached: a stream to its socket, else dial-stdio; or why not."""
        import asyncssh

        try:
            reader, writer = await conn.open_unix_connection(REMOTE_SOCKET)
        except asyncssh.ChannelOpenError:
            route = "dial-stdio"  # unless the exec below says why the stream was refused
        else:
            # The daemon answers on the stream itself: no exec of the docker CLI there (it
            # cost ~90 ms, twice the SSH handshake, on every connection).
            try:
                version = await _version_over(reader, writer)
            finally:
                writer.close()
            if version:
                return "forward", version
            route = "forward"
        result = await conn.run("docker version --format '{{.Server.Version}}'", check=False)
        out = str(result.stdout or "").strip()
        err = str(result.stderr or "").strip()
        where = self.endpoint.where
        if result.exit_status == 127 or ("not found" in err.lower() and not out):
            raise TargetError(f"no docker on {where}: install the Docker Engine there")
        if "permission denied" in err.lower():
            user = self.endpoint.username or "the SSH user"
            raise TargetError(f"{user} may not use the Docker socket on {where} (permission "
                              f"denied on {REMOTE_SOCKET}): add it to the 'docker' group there "
                              "(sudo usermod -aG docker USER)")
        if result.exit_status != 0 or not out:
            line = err.splitlines()[-1] if err else f"exit status {result.exit_status}"
            raise TargetError(f"the Docker daemon on {where} does not answer: {line}")
        return route, out

    async def _serve(self, conn: asyncssh.SSHClientConnection, route: str) -> None:
        if self.generation == 0:
            clean_stale_folders(self.folder.parent, os.getuid())
        _private_folder(self.folder)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)
        if route == "forward":
            self._listener = await conn.forward_local_path(self.socket_path, REMOTE_SOCKET)
            return

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            proc = await conn.create_process("docker system dial-stdio", encoding=None)

            async def up() -> None:
                while data := await reader.read(1 << 16):
                    proc.stdin.write(data)
                    await proc.stdin.drain()
                proc.stdin.write_eof()

            async def down() -> None:
                while data := await proc.stdout.read(1 << 16):
                    writer.write(data)
                    await writer.drain()

            try:
                await asyncio.gather(up(), down())
            except (OSError, Exception):
                pass
            finally:
                proc.close()
                writer.close()

        self._listener = await asyncio.start_unix_server(pipe, self.socket_path)

    # ------------------------------------------------------------------ losing it

    @property
    def lost(self) -> bool:
        return self.conn is None or _closed(self.conn)

    async def recover(self, seen: int) -> None:
        """Reconnect with backoff unless someone did since ``seen`` (a generation); TargetError
        after RECONNECT_FOR seconds of failures."""
        async with self._lock:
            if self.generation != seen and not self.lost:
                return
            self._drop()
            self.state = "reconnecting"
            self.report(f"the SSH link to {self.endpoint.where} was lost; reconnecting (the "
                        "run goes on there)")
            began = time.monotonic()
            deadline = began + RECONNECT_FOR
            attempt = 0
            while True:
                try:
                    await self._connect()
                    self.report(f"the SSH link to {self.endpoint.where} is back after "
                                f"{time.monotonic() - began:.1f} s ({attempt + 1} "
                                f"attempt{'s' if attempt else ''})")
                    return
                except TargetError as err:
                    if time.monotonic() >= deadline:
                        self.state = "lost"
                        self.report(f"the SSH link to {self.endpoint.where} is lost: {err}")
                        raise TargetError(f"lost the SSH link to {self.endpoint.where} and "
                                          f"could not reconnect: {err}") from err
                    await asyncio.sleep(BACKOFF[min(attempt, len(BACKOFF) - 1)])
                    attempt += 1

    def _drop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()  # type: ignore[attr-defined]
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    async def run(self, command: str) -> tuple[int, str, str]:
        """A command on the host (exit status, stdout, stderr)."""
        await self.open()
        assert self.conn is not None
        result = await self.conn.run(command, check=False)
        return (int(result.exit_status or 0), str(result.stdout or ""),
                str(result.stderr or ""))

    async def close(self) -> None:
        self._drop()
        self.state = "disconnected"
        shutil.rmtree(self.folder, ignore_errors=True)


async def _version_over(reader: asyncssh.SSHReader[bytes],
                        writer: asyncssh.SSHWriter[bytes]) -> str:
    """The daemon's version from GET /version on a stream to its socket; "" when it did not
    answer so (the exec then says why)."""
    import json

    import asyncssh

    writer.write(b"GET /version HTTP/1.0\r\nHost: docker\r\n\r\n")
    try:
        raw = await asyncio.wait_for(reader.read(), 10)
    except (OSError, asyncssh.Error, TimeoutError):
        return ""
    head, _, body = raw.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.") or b" 200 " not in head.split(b"\r\n", 1)[0] + b" ":
        return ""
    try:
        return str(json.loads(body).get("Version", ""))
    except (ValueError, AttributeError):
        return ""


def clean_stale_folders(tmp: Path, uid: int) -> list[Path]:
    """Remove this user's socket folders whose process is gone (a supervisor killed with -9
    cannot clean up after itself); a live pid's folder stays, even if the pid was reused."""
    removed: list[Path] = []
    prefix = f"labdeck-ssh-{uid}-"
    try:
        names = [n for n in os.listdir(tmp) if n.startswith(prefix)]
    except OSError:
        return removed
    for name in names:
        pid_text = name[len(prefix):].partition("-")[0]
        if not pid_text.isdigit() or procutil.alive(int(pid_text)):
            continue
        folder = tmp / name
        try:
            if folder.lstat().st_uid != uid:
                continue
        except OSError:
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def _private_folder(folder: Path) -> None:
    """The socket's folder, only this user's (another user could otherwise use the daemon)."""
    try:
        os.mkdir(folder, 0o700)
    except FileExistsError:
        info = folder.lstat()
        if info.st_uid != os.getuid() or info.st_mode & 0o077 or not folder.is_dir():
            raise TargetError(f"{folder} exists and is not private to this user") from None


def _closed(conn: asyncssh.SSHClientConnection) -> bool:
    return conn.is_closed()
