"""A blocking Engine API client for the first calls of a run, made before asyncio is loaded.

A fresh supervisor spends ~45 ms importing asyncio; the daemon then spends ~170 ms starting the
container. With this client the supervisor looks up the image, creates the container and sends
its start first, and loads asyncio while the daemon works (docker_early.py); the event loop then
reads the start's answer (``DockerAPI.finish``). Plain sockets, one kept-alive connection.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Mapping

from .docker_http import (
    HEADER_LIMIT,
    APIError,
    add_header,
    body_kind,
    chunk_size,
    encode_request,
    error_message,
    is_end_of_head,
    parse_status,
    parse_url,
)

TYPE_CHECKING = False  # importing typing costs ~3 ms of a submit; annotations need none
if TYPE_CHECKING:
    from typing import Any

TIMEOUT_S = 30.0  # a daemon that hangs must not hold a run's start forever


class SyncDockerAPI:
    def __init__(self, url: str):
        self.scheme, self.address, self.port = parse_url(url)
        self._sock: socket.socket | None = None
        self._file: Any = None

    def _connection(self) -> Any:
        if self._sock is None:
            if self.scheme == "unix":
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(TIMEOUT_S)
                try:
                    sock.connect(self.address)
                except BaseException:
                    sock.close()
                    raise
            else:
                sock = socket.create_connection((self.address, self.port), TIMEOUT_S)
            self._sock, self._file = sock, sock.makefile("rb")
        return self._file

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._sock is not None:
            self._sock.close()
        self._sock = self._file = None

    def call(self, method: str, path: str, params: Mapping[str, Any] | None = None,
             body: Any = None) -> Any:
        """One request; its JSON answer (None when empty), or APIError for a status >= 400."""
        request = encode_request(method, path, params,
                                 json.dumps(body).encode() if body is not None else None)
        reused = self._sock is not None
        try:
            status, reader = self._send(request)
        except (ConnectionError, EOFError):
            if not reused:
                raise
            self.close()  # the daemon closed the idle connection: once more on a new one
            status, reader = self._send(request)
        headers: dict[str, str] = {}
        while not is_end_of_head(line := reader.readline(HEADER_LIMIT)):
            add_header(headers, line)
        payload = self._body(reader, status, headers)
        if headers.get("connection", "").lower() == "close":
            self.close()
        if status >= 400:
            raise APIError(status, error_message(payload))
        return json.loads(payload) if payload.strip() else None

    def _send(self, request: bytes) -> tuple[int, Any]:
        reader = self._connection()
        assert self._sock is not None
        self._sock.sendall(request)
        return parse_status(reader.readline(HEADER_LIMIT)), reader

    def _body(self, reader: Any, status: int, headers: dict[str, str]) -> bytes:
        kind = body_kind(status, headers)
        if kind == "chunked":
            parts = []
            while size := chunk_size(reader.readline(HEADER_LIMIT)):
                parts.append(self._exactly(reader, size))
                self._exactly(reader, 2)
            while not is_end_of_head(reader.readline(HEADER_LIMIT)):
                pass  # trailers
            return b"".join(parts)
        if kind == "length":
            return self._exactly(reader, int(headers["content-length"]))
        if kind == "close":
            headers["connection"] = "close"
            return bytes(reader.read())
        return b""

    @staticmethod
    def _exactly(reader: Any, size: int) -> bytes:
        data = reader.read(size)
        if len(data) < size:
            raise ConnectionResetError("the Docker daemon closed the connection")
        return bytes(data)

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

    def send_start(self, cid: str) -> socket.socket:
        """Send ``start`` and hand over the connection, its answer unread: the caller reads it
        later (``DockerAPI.finish``), once its event loop runs. This client is spent after."""
        self._connection()
        sock, self._sock = self._sock, None
        assert sock is not None
        self._file.close()  # the socket stays open: makefile's file only drops its reference
        self._file = None
        try:
            sock.sendall(encode_request("POST", f"/containers/{cid}/start"))
        except BaseException:
            sock.close()
            raise
        sock.settimeout(None)
        return sock
