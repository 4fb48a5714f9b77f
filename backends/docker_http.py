"""The Engine API's HTTP/1.1 framing, without I/O: addresses, requests, response heads, errors.

Shared by the asyncio client (docker_api.py) and the blocking one that starts a container before
the supervisor's event loop exists (docker_sync.py); importing this module loads no asyncio.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from urllib.parse import quote, urlencode

from .errors import TargetError

TYPE_CHECKING = False  # importing typing costs ~3 ms of a submit; annotations need none
if TYPE_CHECKING:
    from typing import Any

HEADER_LIMIT = 1 << 16


class APIError(Exception):
    """The daemon answered with an error status; ``message`` is its own message."""

    def __init__(self, status: int, message: str):
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


def parse_url(url: str) -> tuple[str, str, int]:
    """``unix:///path`` -> ("unix", path, 0); ``tcp://host:port`` -> ("tcp", host, port)."""
    if url.startswith("unix://"):
        path = url[len("unix://"):]
        if not path:
            raise TargetError(f"cannot use DOCKER_HOST={url!r}: no socket path")
        return "unix", path, 0
    if url.startswith(("tcp://", "http://")):
        if os.environ.get("DOCKER_TLS_VERIFY"):
            raise TargetError(f"cannot use DOCKER_HOST={url!r} with DOCKER_TLS_VERIFY: labdeck "
                              "speaks plain TCP or a unix socket (forward the socket over SSH)")
        rest = url.split("://", 1)[1].rstrip("/")
        host, _, port = rest.rpartition(":")
        if not host:
            host, port = rest, "2375"
        try:
            return "tcp", host.strip("[]"), int(port)
        except ValueError:
            raise TargetError(f"cannot use DOCKER_HOST={url!r}: bad port {port!r}") from None
    raise TargetError(f"cannot use DOCKER_HOST={url!r}: labdeck reaches a daemon through "
                      "unix:///path/to/docker.sock or tcp://HOST:PORT (for ssh://, forward the "
                      "socket: ssh -L /tmp/docker.sock:/var/run/docker.sock HOST)")


def encode_request(method: str, path: str, params: Mapping[str, Any] | None = None,
                   body: bytes | None = None, content_type: str = "application/json") -> bytes:
    target = quote(path, safe="/:@!$&'()*+,;=-._~")
    if params:
        query = {k: _param(v) for k, v in params.items() if v is not None}
        target += "?" + urlencode(query)
    head = [f"{method} {target} HTTP/1.1", "Host: docker", "User-Agent: labdeck"]
    if body is not None:
        head += [f"Content-Type: {content_type}", f"Content-Length: {len(body)}"]
    elif method in ("POST", "PUT"):
        head.append("Content-Length: 0")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + (body or b"")


def parse_status(line: bytes) -> int:
    """The status code of ``HTTP/1.1 201 Created``."""
    if not line:
        raise ConnectionResetError("the Docker daemon closed the connection")
    parts = line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
        raise ConnectionError(f"not an HTTP answer from the Docker daemon: {line!r}")
    return int(parts[1])


def is_end_of_head(line: bytes) -> bool:
    return line in (b"\r\n", b"\n", b"")


def add_header(headers: dict[str, str], line: bytes) -> None:
    name, _, value = line.decode("latin-1").partition(":")
    headers[name.strip().lower()] = value.strip()


def chunk_size(line: bytes) -> int:
    """The size line of a chunked body (``1a3;ext``)."""
    if not line:
        raise ConnectionResetError("the Docker daemon closed the connection")
    return int(line.split(b";", 1)[0].strip() or b"0", 16)


def body_kind(status: int, headers: dict[str, str]) -> str:
    """How the body is framed: "chunked", "length", "none" or "close" (ends with the connection)."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return "chunked"
    if "content-length" in headers:
        return "length"
    if status in (204, 304) or 100 <= status < 200:
        return "none"
    return "close"


def error_message(payload: bytes) -> str:
    """The daemon's own message out of an error body (``{"message": ...}``), else the text."""
    text = payload.decode(errors="replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return text
    if isinstance(data, dict) and "message" in data:
        return str(data["message"])
    return text


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)
