"""A docker run's first steps, taken before the supervisor loads asyncio.

The supervisor-to-be is forked at the client's start and handed its run ~15 ms later; loading
asyncio and the backend would then keep the daemon waiting ~40 ms more. Instead, through the
blocking client (docker_sync.py), it checks the environment image is there, creates the
container and sends its start, and loads asyncio while the daemon starts the container (~170 ms).
The backend's ``prepare`` and ``start`` then take up what was begun (``ctx.early``).

Only the common case is begun early: a local daemon (the snapshot is mounted), no GPU request
(whose preflight is async), an environment that needs no build. Anything else, or any failure
here, begins nothing: the usual path then does the whole start and reports what went wrong.
"""

from __future__ import annotations

import socket

from ._records import dataclass
from .base import EnvRef, RunContext
from .docker_client import docker_url
from .docker_plan import ContainerPlan, container_name
from .docker_sync import SyncDockerAPI


@dataclass(frozen=True)
class EarlyStart:
    """A container created, its start sent and the answer not yet read."""

    env: EnvRef
    cid: str
    start_socket: socket.socket


def begin(ctx: RunContext) -> EarlyStart | None:
    compute = ctx.compute
    plan = ContainerPlan(compute, docker_url())
    if compute.gpus is not None or not plan.mounts():
        return None
    api = SyncDockerAPI(plan.url)
    cid = None
    try:
        spec = plan.env_spec(ctx)
        base = api.image(spec.base)
        if base is None:
            return None
        tag = spec.env_tag(str(base["Id"]))
        if tag is not None and api.image(tag) is None:
            return None  # to be built (or reported missing) by prepare
        image = tag or spec.base
        plan.prepare_folders(ctx)
        cid = api.create(plan.config(ctx, image), name=container_name(ctx.run_id))
        return EarlyStart(EnvRef(image, cached=True), cid, api.send_start(cid))
    except BaseException:
        if cid is not None:
            try:
                api.remove(cid)
            except Exception:  # the usual path reports what is wrong
                pass
        raise
    finally:
        api.close()
