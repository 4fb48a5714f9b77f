"""A remote target's base image, when the remote daemon lacks it: the remote daemon pulls it,
and a host that cannot pull gets it from this machine's daemon (``docker save | docker load``
as two Engine API streams: GET /images/get here piped into POST /images/load there, never held
whole, with progress). Only when missing there: a present image costs one API call. The image
id travels with it, so the environment built from it has the same input hash as locally.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable

from ..errors import PrepareError
from .api import APIError, DockerAPI
from .client import api_message, docker_url
from .http import encode_request

Progress = Callable[[str], None]
REPORT_EVERY = 2.0  # seconds between progress lines of a transfer
MB = 1_000_000


async def ensure_base_image(remote: DockerAPI, base: str, progress: Progress,
                            local_url: str | None = None) -> str:
    """The base image's id on the remote daemon, pulled there or sent from this machine when
    it is missing; PrepareError when neither can provide it."""
    found = await remote.image(base)
    if found is not None:
        return str(found["Id"])
    progress(f"base image {base} is not on the remote host: asking its daemon to pull it")
    why = await _pull(remote, base)
    if why is None:
        return await _id_after(remote, base, "pulled")
    local = DockerAPI(docker_url(local_url))
    try:
        try:
            info = await local.image(base)
        except (OSError, APIError):
            info = None  # no daemon here, or it cannot answer: as good as not having it
        if info is None:
            raise PrepareError(f"base image {base!r} is on neither the remote host (its daemon "
                               f"cannot pull it: {why}) nor this machine: pull or build it "
                               "here (labdeck sends it) or there")
        progress(f"the remote daemon cannot pull it ({why}); sending it from this machine's "
                 f"daemon (docker save | docker load, ~{_mb(int(info.get('Size') or 0))})")
        await send_image(local, remote, base, int(info.get("Size") or 0), progress)
    finally:
        await local.close()
    return await _id_after(remote, base, "loaded")


async def _id_after(remote: DockerAPI, base: str, how: str) -> str:
    found = await remote.image(base)
    if found is None:
        raise PrepareError(f"base image {base!r} was {how} on the remote host but its daemon "
                           "does not list it")
    return str(found["Id"])


async def _pull(remote: DockerAPI, base: str) -> str | None:
    """None when the remote daemon pulled ``base``; else why not (one line)."""
    try:
        body = await remote.call("POST", "/images/create", {"fromImage": base})
    except APIError as err:
        return api_message(err)
    return _stream_error(body)


def _stream_error(body: bytes) -> str | None:
    """The error a progress stream (pull, load) ends with, if any."""
    for line in body.splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item, dict) and (item.get("errorDetail") or item.get("error")):
            detail = item.get("errorDetail") or {}
            message = detail.get("message") if isinstance(detail, dict) else None
            return str(message or item.get("error")).strip().splitlines()[0]
    return None


async def send_image(local: DockerAPI, remote: DockerAPI, ref: str, size: int,
                     progress: Progress) -> int:
    """``docker save ref`` here streamed into ``docker load`` there; bytes sent."""
    began = time.monotonic()
    sent = 0

    async def counted(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        nonlocal sent
        said = began
        async for chunk in chunks:
            sent += len(chunk)
            now = time.monotonic()
            if now - said >= REPORT_EVERY:
                said = now
                share = f" of ~{_mb(size)}" if size else ""
                progress(f"sending {ref}: {_mb(sent)}{share} ({_mb(sent / (now - began))}/s)")
            yield chunk

    request = encode_request("POST", "/images/load", {"quiet": "1"},
                             content_type="application/x-tar", chunked=True)
    try:
        async with local.stream("GET", "/images/get", {"names": ref}) as saved:
            body = await remote.send_chunks(request, counted(saved.chunks()))
    except APIError as err:
        raise PrepareError(f"sending base image {ref!r} to the remote host failed: "
                           f"{api_message(err)}") from err
    error = _stream_error(body)
    if error is not None:
        raise PrepareError(f"the remote daemon could not load base image {ref!r}: {error}")
    took = time.monotonic() - began
    progress(f"sent {ref} to the remote host: {_mb(sent)} in {took:.1f} s")
    return sent


def _mb(n: float) -> str:
    return f"{n / MB:.0f} MB" if n >= 10 * MB else f"{n / MB:.1f} MB"
