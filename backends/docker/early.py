"""A docker run's first steps, taken before the supervisor loads asyncio.

The supervisor-to-be is forked at the client's start and handed its run a few ms later; loading
asyncio and the backend then would keep the daemon waiting 30-40 ms more. Instead, through the
blocking client (docker/sync.py), it checks the environment image is there, creates the
container and sends its start, and loads asyncio while the daemon starts the container (~200 ms,
bench/bench_docker_phases.py).
The backend's ``prepare`` and ``start`` then take up what was begun (``ctx.early``). Before the
run even arrives, ``warm`` connects to the daemon and finds the image (the CLI names the target
when it forks the supervisor-to-be).

Only the common case is begun early: a local daemon (the snapshot is mounted) and an environment
that needs no build. Anything else, or any failure here, begins nothing: the usual path then does
the whole start and reports what went wrong. (A daemon that cannot serve a GPU request says so
in the start's answer, which the backend reads and words like any other start error.)
"""

from __future__ import annotations

import socket

from ..base import EarlyWork, EnvRef, RunContext
from ..project import Project, Target
from .client import docker_url
from .env import EnvSpec
from .http import APIError
from .plan import ContainerPlan, container_name, is_pyspark
from .sync import SyncDockerAPI


class EarlyStart(EarlyWork):
    """A container created, attached to (its output's stream, when the daemon allowed it), its
    start sent and the answer not yet read."""

    def __init__(self, url: str, env: EnvRef, cid: str, start_socket: socket.socket,
                 attach_socket: socket.socket | None = None):
        self.url = url
        self.env = env
        self.cid = cid
        self.start_socket = start_socket
        self.attach_socket = attach_socket

    def discard(self) -> None:
        self.start_socket.close()
        attached = take_attached(self.cid)
        if attached is not None:
            attached.close()
        _remove(self.url, self.cid)


# The attach streams begun here, by container id, until the run's handle takes its own
# (docker/run.py): the backend's start hands the handle only the container id.
_attached: dict[str, socket.socket] = {}


def take_attached(cid: str) -> socket.socket | None:
    """The attach stream begun for this container before the event loop existed, once."""
    return _attached.pop(cid, None)


class Ready:
    """What ``warm`` found before the run arrived: a connection to the daemon and the image."""

    def __init__(self, compute_name: str, api: SyncDockerAPI, image: str):
        self.compute_name = compute_name
        self.api = api
        self.image = image


_ready: Ready | None = None


def warm(project: Project, target: Target) -> bool:
    """While the client still records the run: connect to the daemon and find the environment
    image. True when the run can be begun early (``begin``)."""
    global _ready
    plan = ContainerPlan(target.compute, docker_url())
    if not _eligible(plan):
        return False
    api = SyncDockerAPI(plan.url)
    try:
        image = _image(api, plan.env_spec_of(project, target))
    except BaseException:
        api.close()
        raise
    if image is None:
        api.close()
        return False
    _ready = Ready(target.compute.name, api, image)
    return True


def begin(ctx: RunContext) -> EarlyStart | None:
    global _ready
    ready, _ready = _ready, None
    plan = ContainerPlan(ctx.compute, docker_url())
    if ready is not None and ready.compute_name != ctx.compute.name:
        ready.api.close()
        ready = None
    if ready is None and not _eligible(plan):
        return None
    if plan.user() is not None and is_pyspark(ctx):  # its uid needs a name first (async path)
        if ready is not None:
            ready.api.close()
        return None
    api = ready.api if ready is not None else SyncDockerAPI(plan.url)
    cid = None
    creating = False
    try:
        image = ready.image if ready is not None else _image(api, plan.env_spec(ctx))
        if image is None:
            return None  # to be built (or reported missing) by prepare
        plan.prepare_folders(ctx)
        creating = True
        cid = api.create(plan.config(ctx, image), name=container_name(ctx.run_id))
        attached = _attach(api, cid)
        try:
            started = api.send_start(cid)
        except BaseException:
            if attached is not None:
                attached.close()
            raise
        if attached is not None:
            _attached[cid] = attached
        return EarlyStart(plan.url, EnvRef(image, cached=True), cid, started, attached)
    except BaseException:
        if creating:
            # Created (or maybe: the answer may be what failed), not started: remove it, so
            # the usual path can create its own under the same name.
            _remove(plan.url, cid or container_name(ctx.run_id))
        raise
    finally:
        api.close()


def _attach(api: SyncDockerAPI, cid: str) -> socket.socket | None:
    """The container's output stream, attached before its start: its lines come live through
    it (the logs endpoint replays the daemon's json-file, several times slower than the
    script writes: bench/proto_docker_attach.py). None if the daemon refuses: the handle
    then follows the logs endpoint, as a reattached one does."""
    try:
        return api.attach(cid)
    except (OSError, APIError):
        return None


def _remove(url: str, ref: str) -> None:
    """Remove a container (by id or name) if it is there; blocking, errors are not ours to
    report (the usual path, or the run's record, says what went wrong)."""
    api = SyncDockerAPI(url)
    try:
        api.remove(ref)
    except (OSError, APIError):
        pass
    finally:
        api.close()


def _eligible(plan: ContainerPlan) -> bool:
    return plan.mounts()  # the snapshot is mounted: nothing to copy in before the start


def _image(api: SyncDockerAPI, spec: EnvSpec) -> str | None:
    """The environment image when it needs no build, else None."""
    base = api.image(spec.base)
    if base is None:
        return None
    tag = spec.env_tag(str(base["Id"]))
    if tag is not None and api.image(tag) is None:
        return None
    return tag or spec.base
