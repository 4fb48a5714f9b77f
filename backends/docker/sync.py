"""A blocking Engine API client for the first calls of a run, made before asyncio is loaded.

A fresh supervisor spends 30-40 ms importing asyncio and the backend; the daemon then spends
~200 ms starting the container (bench/bench_docker_phases.py). With this client the supervisor
looks up the image, creates the container and sends its start first, and loads asyncio while the
daemon works (docker/early.py); the event loop then reads the start's answer
(``DockerAPI.finish``). Plain sockets, one kept-alive connection.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Mapping

from .http import (
    HEADER_LIMIT,
    APIError,
    BlockingReader,
    Response,
    attach_request,
    encode_request,
    error_message,
    parse_status,
    parse_url,
    read_response,
    run_blocking,
)

TYPE_CHECKING = False  # importing typing costs ~3 ms of a submit; annotations need none
if TYPE_CHECKING:
    from typing import Any

TIMEOUT_S = 30.0  # a daemon that hangs must not hold a run's start forever


class SyncDockerAPI:
    def __init__(self, url: str):
        self.scheme, self.address, self.port = parse_url(url)
        self._sock: socket.socket | None = None
        self._reader: BlockingReader | None = None

    def _connect(self) -> socket.socket:
        if self.scheme == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(TIMEOUT_S)
            try:
                sock.connect(self.address)
            except BaseException:
                sock.close()
                raise
            return sock
        return socket.create_connection((self.address, self.port), TIMEOUT_S)

    def _connection(self) -> BlockingReader:
        if self._sock is None or self._reader is None:
            sock = self._connect()
            self._sock, self._reader = sock, BlockingReader(sock.makefile("rb"))
        return self._reader

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
        if self._sock is not None:
            self._sock.close()
        self._sock, self._reader = None, None

    def call(self, method: str, path: str, params: Mapping[str, Any] | None = None,
             body: Any = None) -> Any:
        """One request; its JSON answer (None when empty), or APIError for a status >= 400."""
        request = encode_request(method, path, params,
                                 json.dumps(body).encode() if body is not None else None)
        reused = self._sock is not None
        try:
            response = self._exchange(request)
        except (ConnectionError, EOFError):
            if not reused:
                raise
            self.close()  # the daemon closed the idle connection: once more on a new one
            response = self._exchange(request)
        payload = run_blocking(response.read())
        if not response.keep_alive:
            self.close()
        if response.status >= 400:
            raise APIError(response.status, error_message(payload))
        return json.loads(payload) if payload.strip() else None

    def _exchange(self, request: bytes) -> Response:
        reader = self._connection()
        assert self._sock is not None
        self._sock.sendall(request)
        return run_blocking(read_response(reader))

    # ------------------------------------------------------------------ the calls it makes

    def image(self, ref: str) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = self.call("GET", f"/images/{ref}/json")
        except APIError as err:
            if err.status == 404:
                return None
            raise
        return result

    def create(self, config: dict[str, Any], name: str | None = None) -> str:
        return str(self.call("POST", "/containers/create", {"name": name}, config)["Id"])

    def remove(self, cid: str) -> None:
        self.call("DELETE", f"/containers/{cid}", {"force": True, "v": True})

    def attach(self, cid: str) -> socket.socket:
        """Attach to a created container's output on a connection of its own and hand it
        over, its answer read and nothing after it (the daemon attaches before it answers, and
        the container has not started: the stream is read later, ``DockerAPI.adopt_attached``).
        The head is read a byte at a time (~200 bytes), so no byte of the stream is taken into
        a buffer here."""
        sock = self._connect()
        try:
            sock.sendall(attach_request(cid))
            head = bytearray()
            while not head.endswith(b"\r\n\r\n"):
                byte = sock.recv(1)
                if not byte:
                    raise ConnectionResetError("the Docker daemon closed the connection")
                if len(head) > HEADER_LIMIT:
                    raise ConnectionError("the Docker daemon's answer to attach is too long")
                head += byte
            status = parse_status(bytes(head).split(b"\r\n", 1)[0])
            if status >= 400:
                raise APIError(status, "attach refused")
        except BaseException:
            sock.close()
            raise
        sock.settimeout(None)
        return sock

    def send_start(self, cid: str) -> socket.socket:
        """Send ``start`` and hand over the connection, its answer unread: the caller reads it
        later (``DockerAPI.finish``), once its event loop runs. This client is spent after."""
        self._connection()
        sock, reader = self._sock, self._reader
        assert sock is not None and reader is not None
        self._sock, self._reader = None, None
        reader.close()  # the socket stays open: makefile's file only drops its reference
        try:
            sock.sendall(encode_request("POST", f"/containers/{cid}/start"))
        except BaseException:
            sock.close()
            raise
        sock.settimeout(None)
        return sock
