"""Opening the Docker Engine API, and turning its failures into one-line TargetErrors.

The backend is parameterised by the daemon's URL (``DOCKER_HOST`` or the local socket). aiodocker
(and aiohttp under it) is used for image builds only, imported lazily (here, and for its error
type in docker/image.py): runs and ``target show`` use the lean client of docker/api.py
(aiodocker's import alone cost ~0.4 s).
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

from ..errors import TargetError

TYPE_CHECKING = False  # importing typing costs ~3 ms of a submit; annotations need none
if TYPE_CHECKING:
    from typing import Any

DEFAULT_SOCKET = "/var/run/docker.sock"
LABEL_RUN = "org.labdeck.run"
LABEL_PROJECT = "org.labdeck.project"
LABEL_ENV = "org.labdeck.env"


def docker_url(explicit: str | None = None) -> str:
    """The daemon's address: an explicit one, else ``DOCKER_HOST``, else the local socket."""
    return explicit or os.environ.get("DOCKER_HOST") or f"unix://{DEFAULT_SOCKET}"


def _where(url: str) -> str:
    return url[len("unix://"):] if url.startswith("unix://") else url


def _os_error(err: BaseException) -> BaseException:
    """The OSError under a connection failure (aiodocker wraps aiohttp's in a DockerError 900)."""
    seen: BaseException | None = err
    for _ in range(5):
        if seen is None:
            break
        inner = getattr(seen, "os_error", None)
        if isinstance(inner, OSError):
            return inner
        if isinstance(seen, OSError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return err


def unreachable(url: str, err: BaseException) -> TargetError:
    """Why the daemon at ``url`` cannot be used, with the fix, on one line."""
    os_err = _os_error(err)
    code = getattr(os_err, "errno", None)
    where = _where(url)
    if code in (errno.EACCES, errno.EPERM):
        return TargetError(
            f"permission denied on the Docker socket {where}: add your user to the 'docker' "
            "group (sudo usermod -aG docker $USER, then log in again) or run as root")
    if code == errno.ENOENT:
        return TargetError(
            f"the Docker daemon is not running (no socket at {where}): start it "
            "(sudo systemctl start docker) or set DOCKER_HOST")
    if code == errno.ECONNREFUSED:
        return TargetError(
            f"the Docker daemon is not running at {where} (connection refused): start it "
            "(sudo systemctl start docker) or set DOCKER_HOST")
    reason = (getattr(os_err, "strerror", None) or api_message(os_err))
    return TargetError(f"cannot reach the Docker daemon at {where}: {reason}")


def api_message(err: BaseException) -> str:
    """The daemon's own message of a DockerError, first line only."""
    message = getattr(err, "message", None) or str(err)
    if isinstance(message, dict):
        message = message.get("message", str(message))
    text = str(message).strip()
    return text.splitlines()[0] if text else type(err).__name__


def is_not_found(err: BaseException) -> bool:
    return getattr(err, "status", None) == 404


def is_connection_error(err: BaseException) -> bool:
    if isinstance(err, OSError | EOFError):  # docker/api's failures are the OSErrors themselves
        return True
    if getattr(err, "status", None) == 900:  # aiodocker: "Cannot connect to Docker Engine"
        return True
    aiohttp = sys.modules.get("aiohttp")  # only aiodocker's errors can be aiohttp's
    return aiohttp is not None and isinstance(err, aiohttp.ClientConnectionError)


def connect(url: str | None = None) -> Any:
    """A new aiodocker client on ``url`` (no I/O yet); the caller closes it."""
    import aiodocker

    where = docker_url(url)
    try:
        return aiodocker.Docker(url=where)
    except ValueError as err:
        raise TargetError(f"cannot use DOCKER_HOST={where!r}: {err}") from err


@contextmanager
def docker_errors(url: str | None = None) -> Iterator[None]:
    """Connection failures inside become the one-line TargetError that names the fix."""
    try:
        yield
    except TargetError:
        raise
    except Exception as err:
        if is_connection_error(err):
            raise unreachable(docker_url(url), err) from err
        raise


@asynccontextmanager
async def open_docker(url: str | None = None) -> AsyncIterator[Any]:
    """An aiodocker client on ``url``, closed on exit; connection failures become TargetError."""
    client = connect(url)
    try:
        with docker_errors(url):
            yield client
    finally:
        await client.close()


def refused(err: BaseException) -> TargetError:
    """A daemon that answered with an error the caller has no better words for."""
    return TargetError(f"the Docker daemon refused the request: {api_message(err)}")
