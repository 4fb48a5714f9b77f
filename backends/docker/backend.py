"""The docker target (``type: docker``, older ``localdocker``): each run is a labelled container
of the prepared environment image, with the run's snapshot mounted (a daemon on this machine) or
copied in (or the project mounted with ``sharedVolumes``), driven through the Docker Engine API
of the daemon at ``DOCKER_HOST`` or the local socket."""

from __future__ import annotations

import tarfile
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

from .. import gpu
from ..base import (
    Backend,
    Capability,
    EnvRef,
    Explanation,
    PrepareOptions,
    RunContext,
    RunHandle,
    TargetInfo,
)
from ..config import Compute
from ..errors import PrepareError, TargetError
from ..logfile import ResumePoint
from ..metrics import SHIM_DIR
from .api import APIError, Attached, DockerAPI
from .client import (
    LABEL_RUN,
    api_message,
    docker_errors,
    docker_url,
    is_connection_error,
    is_not_found,
    open_docker,
    refused,
)
from .early import EarlyStart
from .env import EnvSpec
from .image import build_env, cached_env, lean_base_image_id
from .plan import PYTHON, SHIM, WORKDIR, ContainerPlan, container_name, is_pyspark
from .run import DockerRunHandle, remove_container


class DockerBackend(Backend):
    capabilities: ClassVar[frozenset[Capability]] = frozenset({
        Capability.PREPARE, Capability.CANCEL, Capability.REATTACH, Capability.GPU,
        Capability.LIVE_METRICS,
    })
    # A new run's output comes through the attach stream; a handle that must resume across
    # link drops (remote) follows the logs endpoint, whose timestamps say where to resume.
    LIVE_ATTACH: ClassVar[bool] = True

    def __init__(self, compute: Compute, url: str | None = None):
        super().__init__(compute)
        self.url = docker_url(url)
        self.plan = ContainerPlan(compute, self.url)

    def explain(self, ctx: RunContext) -> Explanation:
        spec = self.plan.env_spec(ctx)
        # The base image is the environment when there is nothing to install.
        image = (f"{spec.repository}:<inputs-hash>" if spec.pip or spec.conda or spec.spark
                 else spec.base)
        cmd = ["docker", "run", "--rm", "--init", "-w", WORKDIR]
        for key, value in self.plan.labels(ctx).items():
            cmd += ["--label", f"{key}={value}"]
        for key, value in sorted(self.plan.container_env(ctx).items()):
            cmd += ["-e", f"{key}={value}"]
        for bind in self.plan.binds(ctx):
            cmd += ["-v", bind]
        user = self.plan.user()
        if user is not None:
            cmd += ["--user", user]
        cmd += gpu.gpus_flag(self.compute.gpus)
        cmd += [image, *self.plan.command(ctx)]
        notes = [f"docker target {self.compute.name!r} on {self.url}",
                 f"environment image: {spec.base} + {_deps(spec)}, tagged by the hash of its "
                 "inputs (built by 'labdeck prepare' when missing)"]
        if self.plan.mounts() and not self.compute.shared_volumes:
            notes.append(f"the snapshot ({ctx.workdir}) is mounted at {WORKDIR} and labdeck's "
                         f"shim read-only at {SHIM}; outputs/ is moved from the snapshot into "
                         "the run's folder at the end")
        elif not self.compute.shared_volumes:
            notes.append(f"the snapshot ({ctx.workdir}) and labdeck's shim are copied into the "
                         f"container at {WORKDIR} and {SHIM} before it starts; outputs/ is "
                         "copied back before it is removed")
        return Explanation(commands=[cmd], workdir=str(ctx.workdir), env={}, notes=notes)

    # ------------------------------------------------------------------ prepare, start, reattach

    async def prepare(self, ctx: RunContext, options: PrepareOptions) -> EnvRef:
        """Through the lean client (docker/api.py); aiodocker only when an image must be built."""
        if isinstance(ctx.early, EarlyStart):
            return ctx.early.env  # found before the event loop existed (docker/early.py)
        spec = self.plan.env_spec(ctx)
        if options.offline:
            spec = spec.offline_copy()
        force = options.force
        explicit = options.explicit or force
        async with DockerAPI(self.url) as api:
            with docker_errors(self.url):
                try:
                    base_id = await lean_base_image_id(api, spec.base)
                    cached = await cached_env(api, spec, base_id, force)
                    build = cached is None and (explicit or
                                                ctx.target.runconfig.prepare_environment)
                    # A daemon that cannot serve GPUs fails now, not after a long build (or
                    # when asked to prepare); a run of a ready environment learns it at start.
                    if self.compute.gpus is not None and (build or explicit):
                        await self._gpu_preflight(api, base_id)
                except APIError as err:
                    raise refused(err) from err
        if cached is not None:
            return cached
        if build:
            async with open_docker(self.url) as docker:
                try:
                    return await build_env(docker, spec, base_id, ctx.progress)
                except (TargetError, PrepareError):
                    raise
                except Exception as err:  # aiodocker's DockerError: one line, the daemon's
                    if is_connection_error(err) or getattr(err, "status", None) is None:
                        raise
                    raise refused(err) from err
        raise PrepareError(f"the environment of {self.compute.name!r} is not prepared: run "
                           f"'labdeck prepare -c {self.compute.name}' (or set PrepareEnvironment: "
                           "true in the runconfig)")

    async def _gpu_preflight(self, api: DockerAPI, base_id: str) -> None:
        """Start a throwaway container with the run's GPU request, so a daemon that cannot serve
        GPUs fails the run in a second, not after a long environment build."""
        config = {"Image": base_id, "Cmd": ["true"], "Labels": {LABEL_RUN: "gpu-preflight"},
                  "HostConfig": {"NetworkMode": "none",
                                 "DeviceRequests": gpu.device_requests(self.compute.gpus)}}
        cid = await api.create(config)
        try:
            await api.start(cid)
            await api.wait(cid)
        except APIError as err:
            translated = gpu.translate_start_error(api_message(err), self.compute.gpus)
            if translated is not None:
                raise translated from err
        finally:
            await remove_container(api, cid)

    async def start(self, ctx: RunContext, env: EnvRef) -> RunHandle:
        early = ctx.early if isinstance(ctx.early, EarlyStart) else None
        if early is not None:
            return await self._finish_early(ctx, early)
        self.plan.prepare_folders(ctx)
        archive = None
        if not self.plan.mounts():
            workdir = None if self.compute.shared_volumes else ctx.workdir
            archive = partial(_run_archive, workdir)  # streamed as the upload goes
        api = DockerAPI(self.url)
        cid = None
        attached: Attached | None = None
        try:
            with docker_errors(self.url):
                try:
                    cid = await api.create(self.plan.config(ctx, env.ref),
                                           name=container_name(ctx.run_id))
                    if self.plan.user() is not None and is_pyspark(ctx):
                        # Java and Hadoop need the uid to have a name and a home.
                        from ..spark.container import name_the_user

                        await name_the_user(api, cid, self.plan.user())
                    if archive is not None:
                        await api.put_archive(cid, "/", archive)
                    if self.LIVE_ATTACH:  # before the start: nothing it writes is missed
                        attached = await self._attach(api, cid)
                    await api.start(cid)
                except APIError as err:
                    raise self._start_error(err, env.ref) from err
        except BaseException:
            if attached is not None:
                attached.close()
            await self._discard(ctx, api, cid)
            raise
        return DockerRunHandle(api, cid, None, self.plan.outputs(ctx), attached)

    @staticmethod
    async def _attach(api: DockerAPI, cid: str) -> Attached | None:
        """The container's output stream, the live path (the logs endpoint replays a chatty
        run's lines several times slower: bench/proto_docker_attach.py); None if refused, and
        the handle follows the logs endpoint instead."""
        try:
            return await api.attach(cid)
        except APIError:
            return None

    async def _finish_early(self, ctx: RunContext, early: EarlyStart) -> RunHandle:
        """The container the supervisor created and started before its event loop existed
        (docker/early.py): read the start's answer. From here it is this method's to finish
        or to remove, not the supervisor's to discard."""
        ctx.early = None
        api = DockerAPI(self.url)
        try:
            with docker_errors(self.url):
                try:
                    await api.finish(early.start_socket)
                except APIError as err:
                    raise self._start_error(err, early.env.ref) from err
        except BaseException:
            await self._discard(ctx, api, early.cid)
            raise
        return DockerRunHandle(api, early.cid, None, self.plan.outputs(ctx))

    async def _discard(self, ctx: RunContext, api: DockerAPI, cid: str | None) -> None:
        """A container that did not start is removed; the start's error matters more."""
        if cid is not None:
            try:
                await remove_container(api, cid)
            except Exception as cleanup:
                ctx.progress(f"cleanup: {cleanup}")
        await api.close()

    def _start_error(self, err: Exception, image: str) -> TargetError:
        message = api_message(err)
        translated = gpu.translate_start_error(message, self.compute.gpus)
        if translated is not None:
            return translated
        if is_not_found(err) and "image" in message.lower():
            return TargetError(f"image {image!r} not found on the Docker daemon: run "
                               f"'labdeck prepare -c {self.compute.name}'")
        if "executable file not found" in message:
            return TargetError(f"the container could not start: {PYTHON} is not in image "
                               f"{image!r} (its base image needs Python 3)")
        return TargetError(f"the container could not start: {message}")

    async def reattach(self, ctx: RunContext, durable_ref: str, resume: ResumePoint) -> RunHandle:
        api = DockerAPI(self.url)
        try:
            with docker_errors(self.url):
                info = await self._find(api, ctx.run_id, durable_ref)
                if _state(info) == "created":  # its supervisor died before starting it
                    await remove_container(api, str(info["Id"]))
                    raise TargetError(f"the supervisor of run {ctx.run_id} died before its "
                                      "container started; the container was removed")
        except BaseException:
            await api.close()
            raise
        return DockerRunHandle(api, str(info["Id"]), resume, self._outputs_of(ctx, info))

    def _outputs_of(self, ctx: RunContext, info: dict[str, Any]) -> tuple[str, Path] | None:
        """Where a found container's outputs/ is read back from (as ``start`` decided it)."""
        if self.compute.shared_volumes:
            return ("copy", ctx.workdir / "outputs")
        for mount in info.get("Mounts") or []:
            if mount.get("Destination") == WORKDIR and mount.get("Type") == "bind":
                source = Path(str(mount.get("Source", "")))
                if source.is_dir():
                    return ("move", source / "outputs")
        return None

    async def _find(self, api: DockerAPI, run_id: str, durable_ref: str) -> dict[str, Any]:
        """The run's container: by the id recorded, else by its label (a supervisor may die
        between creating it and recording its id)."""
        if durable_ref:
            try:
                return await api.inspect(durable_ref)
            except APIError as err:
                if not is_not_found(err):
                    raise TargetError(f"cannot look up container {durable_ref[:12]}: "
                                      f"{api_message(err)}") from err
        try:
            found = await api.containers([f"{LABEL_RUN}={run_id}"])
        except APIError as err:
            raise refused(err) from err
        if found:
            return found[0]
        if not durable_ref:
            raise TargetError(f"run {run_id} has no container: its supervisor died before "
                              "creating one")
        raise TargetError(f"the container of run {run_id} ({durable_ref[:12]}) is gone: it was "
                          "removed outside labdeck, so the run's end was not recorded")

    async def describe(self) -> TargetInfo:
        async with DockerAPI(self.url) as api:  # the lean client: no aiohttp import for this
            with docker_errors(self.url):
                try:
                    version = await api.version()
                    info: dict[str, Any] = await api.json("GET", "/info")
                except APIError as err:
                    raise refused(err) from err
        runtimes = sorted((info.get("Runtimes") or {}).keys())
        detail = (f"docker {version.get('Version', '?')} (API {version.get('ApiVersion', '?')}) "
                  f"at {self.url}; runtimes: {', '.join(runtimes) or '-'}")
        if self.url.startswith("unix://"):
            gpus, note = await gpu.local_inventory()
        else:
            gpus, note = [], "unknown (nvidia-smi runs only for the local daemon)"
        if self.compute.gpus is not None and "nvidia" not in runtimes and not gpus:
            note += f"; {gpu.NO_RUNTIME}"
        return TargetInfo(True, detail, gpus, note)


def _state(info: dict[str, Any]) -> str:
    """"created", "running", "exited"... from an inspect answer or a container list entry."""
    state = info.get("State")
    return str(state.get("Status", "") if isinstance(state, dict) else state or "")


def _deps(spec: EnvSpec) -> str:
    extra = ("a Java runtime and pyspark (Framework PySpark)",) if spec.spark else ()
    if not spec.pip and not spec.conda and not extra:
        return "no dependencies"
    return " ".join(spec.pip + spec.conda + extra)


def _run_archive(workdir: Path | None, out: BinaryIO) -> None:
    """``labdeck/work/`` (the snapshot, plus an empty outputs/) and ``labdeck/shim/`` as one tar
    for ``put_archive('/')``, written to ``out`` as a stream (a big snapshot file is read in
    blocks as it is sent, never held whole)."""
    with tarfile.open(fileobj=out, mode="w|") as tar:
        for folder in ("labdeck", "labdeck/work"):
            tar.addfile(_dir_info(folder))
        if workdir is not None:
            for path in sorted(workdir.rglob("*")):
                rel = path.relative_to(workdir).as_posix()
                tar.add(path, arcname=f"labdeck/work/{rel}", recursive=False)
            if not (workdir / "outputs").exists():
                tar.addfile(_dir_info("labdeck/work/outputs"))
        for path in sorted(SHIM_DIR.rglob("*")):
            if "__pycache__" in path.parts:
                continue
            tar.add(path, arcname=f"labdeck/shim/{path.relative_to(SHIM_DIR).as_posix()}",
                    recursive=False)


def _dir_info(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    return info


__all__ = ["DockerBackend"]
