"""The remote Docker target (``type: remotedocker``, older ``virtualmachine``): the docker
backend, with the Engine API reached through SSH (docker/remote_link.py) and the run's folder
synced to the daemon's host (ssh/sync.py) and bind-mounted there, instead of a local socket and
a local bind mount. Everything else (environment images, containers, logs, cancel, reattach by
label, outputs through the API archive) is the docker backend's own code.

A run's handle survives a dropped link: the container goes on on the host, the handle reconnects
with backoff and resumes the log from its last timestamps (docker/run.py's dedup), so nothing is
missing nor written twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shlex
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from .. import gpu, snapshot
from ..base import (
    Capability,
    EnvRef,
    Explanation,
    LogBatch,
    PrepareOptions,
    RunContext,
    RunHandle,
    TargetInfo,
    compute_line,
)
from ..config import Compute
from ..errors import ConfigError, TargetError
from ..linesplit import PROGRESS
from ..logfile import ResumePoint, format_ts
from ..metrics import SHIM_DIR
from ..ssh import secrets
from ..ssh.connection import SSHEndpoint, split_address
from ..ssh.sync import (
    PREVIEW_BYTES,
    REMOTE_BASE,
    Manifest,
    SyncResult,
    build_manifest,
    manifest_from_snapshot,
    release_remote,
    sync_run,
    upload_preview,
)
from .api import APIError, DockerAPI
from .backend import DockerBackend
from .client import docker_errors, refused
from .plan import SHARE, SHIM, WORKDIR, ContainerPlan
from .remote_image import ensure_base_image
from .remote_link import RemoteLink
from .run import DockerRunHandle

T = TypeVar("T")
HOME_PLACEHOLDER = "<remote-home>"
UID_PLACEHOLDER = "<remote-uid>"
GID_PLACEHOLDER = "<remote-gid>"


def endpoint_of(compute: Compute, accept_new_host_key: bool = False) -> SSHEndpoint:
    """How to log in to a remotedocker compute's host (``address`` may carry ``:PORT``)."""
    try:
        host, port = split_address(compute.address or "")
    except ValueError as err:
        raise TargetError(f"target {compute.name!r}: {err}") from err
    if port is None and compute.port != 22:
        port = compute.port
    return SSHEndpoint(host=host, port=port, username=compute.username,
                       identity_file=compute.private_key_file,
                       accept_new_host_key=accept_new_host_key)


def password_of(compute: Compute) -> Callable[[], str | None]:
    def read() -> str | None:
        if compute.password is None:
            return None
        return secrets.load(compute.password.value, compute.name, compute.address,
                            compute.username)
    return read


def project_folder(ctx: RunContext) -> str:
    """The project's folder on the host: its name and a hash of where it lives here."""
    digest = hashlib.sha256(str(ctx.project.root).encode()).hexdigest()[:8]
    safe = "".join(c if c.isalnum() or c in "_.-" else "-" for c in ctx.project.name)
    return f"runs/{safe}-{digest}"


class RemotePlan(ContainerPlan):
    """The docker plan with the run's folder on the daemon's host: the synced folder is
    bind-mounted (as the client's uid there), outputs come back through the API archive."""

    synced: SyncResult | None = None
    explaining: bool = False  # placeholders where the host's home and ids are not known

    def mounts(self) -> bool:
        return True

    def user(self) -> str | None:
        if self.synced is not None:
            return f"{self.synced.uid}:{self.synced.gid}"
        return f"{UID_PLACEHOLDER}:{GID_PLACEHOLDER}" if self.explaining else None

    def home(self) -> str | None:
        """The SSH user's home on the host: the daemon takes only absolute bind sources (it
        refuses '~/...' as a volume name), so '~' is resolved, or stands as a placeholder."""
        if self.synced is not None:
            return self.synced.home
        return HOME_PLACEHOLDER if self.explaining else None

    def remote_root(self, ctx: RunContext) -> str:
        if self.synced is not None:
            return self.synced.root
        root = f"{REMOTE_BASE}/{project_folder(ctx)}/{ctx.run_id}"
        home = self.home()
        return home + root[1:] if home is not None and root.startswith("~") else root

    def remote_share(self) -> str | None:
        raw = self.compute.native_shared_directory
        if not raw:
            return None
        home = self.home()
        if raw.startswith("~") and home is not None:
            return home + raw[1:]
        return raw

    def binds(self, ctx: RunContext) -> list[str]:
        root = self.remote_root(ctx)
        binds = [f"{root}/work:{WORKDIR}", f"{root}/shim:{SHIM}:ro"]
        share = self.remote_share()
        if share is not None:
            binds.insert(0, f"{share.rstrip('/')}:{SHARE}")
        return binds

    def prepare_folders(self, ctx: RunContext) -> None:
        """Nothing on this machine: the sync made the run's folders on the host."""

    def outputs(self, ctx: RunContext) -> tuple[str, Path] | None:
        return None


def refuse_shared_volumes(compute: Compute) -> None:
    """``sharedVolumes: true`` mounts the project folder itself, which is not on the remote
    host: refused (file:line) rather than silently replaced by a synced copy."""
    if compute.shared_volumes:
        raise ConfigError("sharedVolumes: true is not possible on a remotedocker target (the "
                          "project folder is not on the remote host; each run gets a synced "
                          "copy): remove it or set it to false",
                          compute.path, compute_line(compute, "sharedVolumes"))


class RemoteDockerBackend(DockerBackend):
    capabilities: ClassVar[frozenset[Capability]] = DockerBackend.capabilities
    LIVE_ATTACH = False  # RemoteRunHandle resumes by the logs endpoint's timestamps

    @classmethod
    def validate(cls, compute: Compute) -> None:
        super().validate(compute)
        refuse_shared_volumes(compute)

    def __init__(self, compute: Compute, link: RemoteLink | None = None):
        refuse_shared_volumes(compute)  # also here: nothing is built for such a compute
        self.link = link or RemoteLink(endpoint_of(compute), password_of(compute))
        super().__init__(compute, self.link.url)
        self.plan: RemotePlan = RemotePlan(compute, self.url)
        self.plan_root: str | None = None

    @property
    def where(self) -> str:
        return self.link.endpoint.where

    def _docker_host(self) -> str:
        ep = self.link.endpoint
        user = f"{ep.username}@" if ep.username else ""
        port = f":{ep.port}" if ep.port else ""
        return f"ssh://{user}{ep.host}{port}"

    def explain(self, ctx: RunContext) -> Explanation:
        root = self.plan.remote_root(ctx)  # '~/...': the remote shell of ssh expands it
        self.plan.explaining = True
        try:
            base = super().explain(ctx)
        finally:
            self.plan.explaining = False
        ep = self.link.endpoint
        ssh = ["ssh"] + (["-p", str(ep.port)] if ep.port else [])
        ssh += (["-i", ep.identity_file] if ep.identity_file else [])
        login = f"{ep.username}@{ep.host}" if ep.username else ep.host
        commands = [
            [*ssh, login, "mkdir", "-p", f"{root}/work/outputs", f"{root}/shim"],
            ["sh", "-c", f"tar czf - -C {shlex.quote(str(ctx.workdir))} . | "
                         f"{shlex.join([*ssh, login])} tar xzf - -C {root}/work"],
            ["sh", "-c", f"tar czf - -C {shlex.quote(str(SHIM_DIR))} . | "
                         f"{shlex.join([*ssh, login])} tar xzf - -C {root}/shim"],
        ]
        for cmd in base.commands:
            commands.append([cmd[0], "-H", self._docker_host(), *cmd[1:]])
        notes = [f"remotedocker target {self.compute.name!r} on {self.where} over SSH "
                 "(one connection: the daemon's socket forwarded, or docker system dial-stdio "
                 "where sshd refuses it)",
                 f"the snapshot is synced to {root} on the host (only files whose content the "
                 f"host's cache {REMOTE_BASE}/cache lacks travel) and bind-mounted at "
                 f"{WORKDIR}; outputs/ is copied back through the Docker API"]
        notes.append(f"{HOME_PLACEHOLDER}, {UID_PLACEHOLDER}, {GID_PLACEHOLDER}: the SSH "
                     "user's home folder and ids on the host (" + shlex.join([*ssh, login])
                     + " 'echo $HOME; id -u; id -g'); the daemon needs absolute bind paths, "
                     "and the container runs as that user, as a run does")
        notes += [n for n in base.notes if not n.startswith(("docker target", "the snapshot"))]
        files = snapshot.list_files(ctx.project.root)
        notes.append(f"upload: the snapshot is {upload_preview((f.rel, f.size) for f in files)}"
                     f"; a first sync to {self.where} sends all of it, later ones only the "
                     "files whose content the host's cache lacks")
        return Explanation(commands=commands, workdir=base.workdir, env={}, notes=notes)

    # ------------------------------------------------------------------ the run's life

    async def prepare(self, ctx: RunContext, options: PrepareOptions) -> EnvRef:
        """The docker prepare on the remote daemon (built there, cached by the same input
        hash), its base image first pulled there or sent from here when missing. A run keeps
        the link for its start; an explicit prepare closes it."""
        await self.link.open()
        try:
            async with DockerAPI(self.url) as api:
                with docker_errors(self.url):
                    try:
                        await ensure_base_image(api, self.plan.env_spec(ctx).base, ctx.progress)
                    except APIError as err:
                        raise refused(err) from err
            return await super().prepare(ctx, options)
        finally:
            if options.explicit:
                await self.link.close()

    async def start(self, ctx: RunContext, env: EnvRef) -> RunHandle:
        # The files are hashed while the SSH handshake goes on.
        hashing = asyncio.ensure_future(asyncio.to_thread(self._manifest, ctx))
        try:
            await self.link.open()
        except BaseException:
            hashing.cancel()
            raise
        try:
            synced = await self._sync(ctx, hashing)
            self.plan.synced = synced
            try:
                handle = await super().start(ctx, env)
            except BaseException:
                await self._remove_folder(synced.root)
                raise
        except BaseException:
            await self.link.close()
            raise
        assert isinstance(handle, DockerRunHandle)
        self.link.report = ctx.progress  # drops and reconnections go to the run's log
        return RemoteRunHandle(handle, self.link, synced.root, None)

    @staticmethod
    def _manifest(ctx: RunContext) -> Manifest:
        """The snapshot's hashes from the run's content-addressed manifest when it has one (a
        checkout of it is the run's folder), else each file hashed; the shim hashed (stamps
        keep that to a stat a file)."""
        stamps = ctx.project.state_dir / "sync" / "stamps.json"
        work = None
        if ctx.workdir == ctx.run_dir / "snapshot":
            work = manifest_from_snapshot(ctx.run_dir, ctx.workdir)
        if work is None:
            return build_manifest([("work", ctx.workdir), ("shim", SHIM_DIR)],
                                  ["work/outputs"], stamps)
        work.extend(build_manifest([("shim", SHIM_DIR)], ["work/outputs"], stamps))
        return work

    async def _sync(self, ctx: RunContext, hashing: Awaitable[Manifest]) -> SyncResult:
        assert self.link.conn is not None
        started = time.monotonic()
        share = self.compute.native_shared_directory
        manifest: Manifest | None = None

        async def hashed() -> Manifest:  # the host's program starts while the hashing ends
            nonlocal manifest
            manifest = await hashing
            return manifest

        def preview(missing: list[str]) -> None:
            """A large upload (a project's first sync, mostly) is said before it goes."""
            assert manifest is not None
            wanted = set(missing)
            sizes = []
            for rel, key in manifest.files:
                if key in wanted:  # each blob once, named by its first path
                    wanted.remove(key)
                    sizes.append((rel.removeprefix("work/"), manifest.blobs[key][1]))
            if sum(size for _, size in sizes) >= PREVIEW_BYTES:
                ctx.progress(f"sync: uploading {upload_preview(sizes)} to {self.where} (files "
                             "its cache lacks; later runs send only what changed)")

        folder = project_folder(ctx)
        mine = hashlib.sha256(f"{self.where}\0{REMOTE_BASE}\0{folder}".encode()).hexdigest()
        result = await sync_run(self.link.conn, f"{folder}/{ctx.run_id}",
                                hashed(), [share] if share else [], before_send=preview,
                                progress=ctx.progress,
                                record=ctx.project.state_dir / "sync" / f"{mine[:16]}.json")
        took = time.monotonic() - started
        assert manifest is not None
        ctx.progress(f"sync: {result.sent_files} of {len(manifest.blobs)} distinct files sent "
                     f"({result.bytes_sent} bytes) to {self.where}:{result.root} in {took:.2f} s")
        record = {"files": result.files, "sent_files": result.sent_files,
                  "kept_files": result.kept_files,
                  "bytes_sent": result.bytes_sent, "payload_bytes": result.payload_bytes,
                  "root": result.root,
                  "seconds": round(took, 3)}
        try:
            (ctx.run_dir / "sync.json").write_text(json.dumps(record) + "\n")
        except OSError as err:
            ctx.progress(f"sync: cannot record the bytes sent: {err.strerror}")
        return result

    async def _remove_folder(self, root: str) -> None:
        if self.link.conn is not None and not self.link.lost:
            try:
                await release_remote(self.link.conn, root)
            except Exception:
                pass

    async def reattach(self, ctx: RunContext, durable_ref: str, resume: ResumePoint) -> RunHandle:
        await self.link.open()
        handle = await super().reattach(ctx, durable_ref, resume)
        assert isinstance(handle, DockerRunHandle)
        self.link.report = ctx.progress
        return RemoteRunHandle(handle, self.link, self.plan_root, resume)

    def _outputs_of(self, ctx: RunContext, info: dict[str, Any]) -> tuple[str, Path] | None:
        """Outputs always come through the API archive; the mount says where the run's folder
        is on the host (removed at the end)."""
        for mount in info.get("Mounts") or []:
            if mount.get("Destination") == WORKDIR:
                self.plan_root = str(Path(str(mount.get("Source", ""))).parent)
        return None

    async def describe(self) -> TargetInfo:
        try:
            await self.link.open()
            async with DockerAPI(self.url) as api:
                try:
                    version = await api.version()
                    info: dict[str, Any] = await api.json("GET", "/info")
                    pings = []
                    for _ in range(3):
                        began = time.perf_counter()
                        await api.call("GET", "/_ping")
                        pings.append(time.perf_counter() - began)
                except (APIError, OSError, EOFError) as err:
                    raise TargetError(f"the Docker daemon on {self.where} failed: {err}") from err
            code, out, _ = await self.link.run(
                f"nvidia-smi --query-gpu={gpu.NVIDIA_SMI_QUERY} --format=csv,noheader,nounits")
        except TargetError as err:
            return TargetInfo(False, str(err))
        finally:
            await self.link.close()
        runtimes = sorted((info.get("Runtimes") or {}).keys())
        latency = sorted(pings)[1] * 1000
        route = ("socket forwarded" if self.link.route == "forward"
                 else "docker system dial-stdio (sshd refuses stream-local forwarding)")
        detail = (f"docker {version.get('Version', '?')} (API {version.get('ApiVersion', '?')}) "
                  f"on {self.where} via SSH, {route}; runtimes: {', '.join(runtimes) or '-'}; "
                  f"latency {latency:.1f} ms")
        gpus = gpu.parse_nvidia_smi(out) if code == 0 else []
        note = "" if code == 0 else "no nvidia-smi on the host"
        if "nvidia" not in runtimes:
            note = (note + "; " if note else "") + "no NVIDIA runtime in the daemon"
        return TargetInfo(True, detail, gpus, note)


class RemoteRunHandle(DockerRunHandle):
    """A container on a remote daemon whose log, wait, cancel and outputs outlive link drops."""

    def __init__(self, handle: DockerRunHandle, link: RemoteLink, root: str | None,
                 resume: ResumePoint | None):
        super().__init__(handle.api, handle.durable_ref, resume, None)
        self.link = link
        self.root = root

    async def _recovered(self, seen: int) -> bool:
        """After a failure: whether the link had dropped (it is back now), so the caller may try
        again; False when the link is fine and the failure was the daemon's own."""
        if self.link.generation != seen:
            return True
        if not self.link.lost:
            try:
                await asyncio.wait_for(self.api.call("GET", "/_ping"), 10)
                return False
            except APIError:
                return False
            except (OSError, EOFError, TimeoutError):
                pass
        await self.link.recover(seen)
        return True

    async def _again(self, call: Callable[[], Awaitable[T]]) -> T:
        while True:
            seen = self.link.generation
            try:
                return await call()
            except TargetError:
                if not await self._recovered(seen):
                    raise

    async def logs(self) -> AsyncIterator[LogBatch]:
        """The docker handle's log, resumed after each drop from the last line given out (its
        timestamp, and how many lines carried it), and checked once more at its end: a cut
        can look like an end when the reader was behind."""
        last = dict(self.resume.last_ts) if self.resume else {}
        count = dict(self.resume.count_at_last) if self.resume else {}
        checking = False
        while True:
            seen = self.link.generation
            fresh = 0
            try:
                async for batch in super().logs():
                    fresh += len(batch.lines)
                    stamps = batch.stamps or [batch.ts] * len(batch.lines)
                    for text, ts in zip(batch.lines, stamps, strict=True):
                        if ts is None or text[:1] == PROGRESS:
                            continue  # passing states are not in resume points
                        stamp, stream = format_ts(ts), batch.stream
                        if last.get(stream) == stamp:
                            count[stream] += 1
                        else:
                            last[stream], count[stream] = stamp, 1
                    yield batch
                if checking and fresh == 0:
                    return
                checking = True
            except TargetError:
                if not await self._recovered(seen):
                    raise
                checking = False
            self.resume = ResumePoint(dict(last), dict(count))

    async def wait(self) -> int:
        if self._wait is None:
            self._wait = asyncio.create_task(self._again(self._wait_once))
        return await asyncio.shield(self._wait)

    async def _signal(self, name: str) -> bool:
        return await self._again(lambda: DockerRunHandle._signal(self, name))

    async def collect_outputs(self, dest: Path) -> list[str]:
        return await self._again(lambda: DockerRunHandle.collect_outputs(self, dest))

    async def close(self) -> None:
        """Remove the container, then the run's folder on the host, then the link."""
        try:
            await self._again(lambda: DockerRunHandle.close(self))
        finally:
            try:
                if self.root and self.link.conn is not None and not self.link.lost:
                    await release_remote(self.link.conn, self.root)
            finally:
                await self.link.close()
