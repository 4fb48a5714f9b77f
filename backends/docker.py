"""The docker target (``type: docker``, older ``localdocker``): each run is a labelled container
of the prepared environment image, with the run's snapshot copied in (or the project mounted with
``sharedVolumes``), driven through the Docker Engine API. Also the base of the remote docker
target, which reaches another daemon through ``url`` (an SSH-forwarded socket)."""

from __future__ import annotations

import asyncio
import io
import os
import tarfile
from pathlib import Path
from typing import Any, ClassVar

from . import gpu
from .base import (
    Backend,
    Capability,
    EnvRef,
    Explanation,
    RunContext,
    RunHandle,
    TargetInfo,
)
from .config import Compute
from .docker_client import (
    LABEL_PROJECT,
    LABEL_RUN,
    api_message,
    connect,
    docker_errors,
    docker_url,
    is_not_found,
    open_docker,
    ping,
)
from .docker_image import EnvSpec, base_image_id, ensure_image, spec_for
from .docker_run import WORKDIR, DockerRunHandle, resume_from_log
from .errors import PrepareError, TargetError
from .logfile import ResumePoint
from .metrics import SHIM_DIR

SHIM = "/labdeck/shim"
SHARE = "/azureml-share/"
PYTHON = "python3"


class DockerBackend(Backend):
    capabilities: ClassVar[frozenset[Capability]] = frozenset({
        Capability.PREPARE, Capability.CANCEL, Capability.REATTACH, Capability.GPU,
        Capability.LIVE_METRICS,
    })
    kind = "docker"

    def __init__(self, compute: Compute, url: str | None = None):
        super().__init__(compute)
        self.url = docker_url(url)

    # ------------------------------------------------------------------ what a run looks like

    def env_spec(self, ctx: RunContext) -> EnvSpec:
        return spec_for(ctx.project.root, ctx.project.name, self.compute.base_docker_image,
                        ctx.target.conda)

    def share_dir(self) -> Path | None:
        raw = self.compute.native_shared_directory
        return Path(os.path.expanduser(raw)).resolve() if raw else None

    def container_env(self, ctx: RunContext) -> dict[str, str]:
        env = dict(ctx.env)
        env["PYTHONPATH"] = SHIM
        if self.share_dir() is not None:
            env["AZUREML_NATIVE_SHARE_DIRECTORY"] = SHARE
        return env

    def binds(self, ctx: RunContext) -> list[str]:
        binds = []
        share = self.share_dir()
        if share is not None:
            binds.append(f"{share}:{SHARE}")
        if self.compute.shared_volumes:
            binds.append(f"{ctx.workdir}:{WORKDIR}")
        return binds

    def labels(self, ctx: RunContext) -> dict[str, str]:
        return {LABEL_RUN: ctx.run_id, LABEL_PROJECT: str(ctx.project.root)}

    def container_config(self, ctx: RunContext, image: str) -> dict[str, Any]:
        host: dict[str, Any] = {"Init": True, "Binds": self.binds(ctx)}
        requests = gpu.device_requests(self.compute.gpus)
        if requests:
            host["DeviceRequests"] = requests
        return {
            "Image": image,
            "Cmd": [PYTHON, *ctx.argv],
            "WorkingDir": WORKDIR,
            "Env": [f"{k}={v}" for k, v in self.container_env(ctx).items()],
            "Labels": self.labels(ctx),
            "AttachStdin": False, "AttachStdout": False, "AttachStderr": False,
            "Tty": False, "OpenStdin": False,
            "HostConfig": host,
        }

    def explain(self, ctx: RunContext) -> Explanation:
        spec = self.env_spec(ctx)
        image = f"{spec.repository}:<inputs-hash>"
        cmd = ["docker", "run", "--rm", "--init", "-w", WORKDIR]
        for key, value in self.labels(ctx).items():
            cmd += ["--label", f"{key}={value}"]
        for key, value in sorted(self.container_env(ctx).items()):
            cmd += ["-e", f"{key}={value}"]
        for bind in self.binds(ctx):
            cmd += ["-v", bind]
        cmd += gpu.gpus_flag(self.compute.gpus)
        cmd += [image, PYTHON, *ctx.argv]
        notes = [f"docker target {self.compute.name!r} on {self.url}",
                 f"environment image: {spec.base} + {_deps(spec)}, tagged by the hash of its "
                 "inputs (built by 'labdeck prepare' when missing)"]
        if not self.compute.shared_volumes:
            notes.append(f"the snapshot ({ctx.workdir}) and labdeck's shim are copied into the "
                         f"container at {WORKDIR} and {SHIM} before it starts; outputs/ is "
                         "copied back before it is removed")
        return Explanation(commands=[cmd], workdir=str(ctx.workdir), env={}, notes=notes)

    # ------------------------------------------------------------------ prepare, start, reattach

    async def prepare(self, ctx: RunContext, force: bool = False) -> EnvRef:
        spec = self.env_spec(ctx)
        explicit = force or ctx.run_id == "prepare"
        async with open_docker(self.url) as docker:
            await ping(docker, self.url)
            if self.compute.gpus is not None:
                await self._gpu_preflight(docker, spec.base)
            if explicit or ctx.target.runconfig.prepare_environment:
                return await ensure_image(docker, spec, ctx.progress, force)
            return await self._unprepared(docker, spec)

    async def _gpu_preflight(self, docker: Any, base: str) -> None:
        """Start a throwaway container with the run's GPU request, so a daemon that cannot serve
        GPUs fails the run in a second, not after a long environment build."""
        from aiodocker.exceptions import DockerError

        base_id = await base_image_id(docker, base)
        config = {"Image": base_id, "Cmd": ["true"], "Labels": {LABEL_RUN: "gpu-preflight"},
                  "HostConfig": {"NetworkMode": "none",
                                 "DeviceRequests": gpu.device_requests(self.compute.gpus)}}
        container = await docker.containers.create(config=config)
        try:
            await container.start()
            await container.wait()
        except DockerError as err:
            translated = gpu.translate_start_error(api_message(err), self.compute.gpus)
            if translated is not None:
                raise translated from err
        finally:
            await _remove(container)

    async def _unprepared(self, docker: Any, spec: EnvSpec) -> EnvRef:
        """PrepareEnvironment: false: the prepared image, or the base image when nothing is to
        be installed; never a build."""
        base_id = await base_image_id(docker, spec.base)
        tag = spec.tag(spec.digest(base_id))
        try:
            await docker.images.inspect(tag)
            return EnvRef(tag, cached=True)
        except Exception as err:
            if not is_not_found(err):
                raise
        if not spec.pip and not spec.conda:
            return EnvRef(spec.base, cached=True)
        raise PrepareError(f"the environment of {self.compute.name!r} is not prepared: run "
                           f"'labdeck prepare -c {self.compute.name}' (or set PrepareEnvironment: "
                           "true in the runconfig)")

    async def start(self, ctx: RunContext, env: EnvRef) -> RunHandle:
        from aiodocker.exceptions import DockerError

        snapshot = None if self.compute.shared_volumes else ctx.workdir
        archive = await asyncio.to_thread(_run_archive, snapshot)
        share = self.share_dir()
        if share is not None:
            share.mkdir(parents=True, exist_ok=True)
        docker = connect(self.url)
        container = None
        try:
            with docker_errors(self.url):
                try:
                    container = await docker.containers.create(
                        config=self.container_config(ctx, env.ref), name=_name(ctx.run_id))
                    await container.put_archive("/", archive)
                    await container.start()
                except DockerError as err:
                    raise self._start_error(err, env.ref) from err
        except BaseException:
            if container is not None:
                await _remove(container)
            await docker.close()
            raise
        shared = ctx.workdir / "outputs" if self.compute.shared_volumes else None
        return DockerRunHandle(docker, container, self.url, None, shared)

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
        docker = connect(self.url)
        try:
            with docker_errors(self.url):
                container = await self._find(docker, ctx.run_id, durable_ref)
        except BaseException:
            await docker.close()
            raise
        shared = ctx.workdir / "outputs" if self.compute.shared_volumes else None
        # The supervisor's resume point skips metric lines; ours counts them as stdout.
        own = await asyncio.to_thread(resume_from_log, ctx.run_dir / "log")
        return DockerRunHandle(docker, container, self.url, own if own.last_ts else resume, shared)

    async def _find(self, docker: Any, run_id: str, durable_ref: str) -> Any:
        try:
            return await docker.containers.get(durable_ref)
        except Exception as err:
            if not is_not_found(err):
                raise
        found = await docker.containers.list(
            all=True, filters={"label": [f"{LABEL_RUN}={run_id}"]})
        if found:
            return found[0]
        raise TargetError(f"the container of run {run_id} ({durable_ref[:12]}) is gone: it was "
                          "removed outside labdeck, so the run's end was not recorded")

    async def describe(self) -> TargetInfo:
        async with open_docker(self.url) as docker:
            version = await ping(docker, self.url)
            info = await docker.system.info()
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


def _deps(spec: EnvSpec) -> str:
    if not spec.pip and not spec.conda:
        return "no dependencies"
    return " ".join(spec.pip + spec.conda)


def _name(run_id: str) -> str:
    safe = "".join(c if c.isalnum() or c in "_.-" else "-" for c in run_id)
    return f"labdeck-{safe}"


async def _remove(container: Any) -> None:
    try:
        await container.delete(force=True, v=True)
    except Exception as err:  # the original error matters more; this one is only noted
        if not is_not_found(err):
            raise TargetError(f"cannot remove container {container.id[:12]}: "
                              f"{api_message(err)}") from err


def _run_archive(workdir: Path | None) -> bytes:
    """``labdeck/work/`` (the snapshot, plus an empty outputs/) and ``labdeck/shim/`` as one tar
    for ``put_archive('/')``."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
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
    return buf.getvalue()


def _dir_info(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    return info


__all__ = ["DockerBackend"]
