"""The run environment of a docker target as an image: base image + conda_dependencies.yml.

The image is tagged from the hash of its inputs (docker/env.py); a tag that exists is reused, so
an unchanged prepare costs two API calls. Offline mode downloads the wheels
on the client (``pip download`` for the base image's Python and platform) and sends them in the
build context, for hosts that cannot reach a package index.
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import shlex
import sys
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..base import EnvRef
from ..errors import PrepareError
from .api import DockerAPI
from .client import LABEL_ENV, LABEL_PROJECT, api_message, is_connection_error
from .env import EnvSpec, missing_base

# Pip settings of the client that the build's pip uses too (private mirrors are common in labs).
PIP_BUILD_ARGS = ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_TRUSTED_HOST", "PIP_RETRIES",
                  "PIP_TIMEOUT", "PIP_DEFAULT_TIMEOUT")
CONDA_MISSING_EXIT = 97
PROBE = ("import sys, platform, shutil; print(sys.version_info[0], sys.version_info[1], "
         "platform.machine(), (platform.libc_ver()[1] or '0.0'), "
         "shutil.which('micromamba') or shutil.which('mamba') or shutil.which('conda') or '-')")
Progress = Callable[[str], None]
ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass(frozen=True)
class BaseFacts:
    """What a probe container found in the base image."""

    python: str  # "3.11"
    machine: str  # "x86_64"
    glibc: str  # "2.36"
    conda: str  # path of micromamba/mamba/conda, or "" when none


async def lean_base_image_id(api: DockerAPI, base: str) -> str:
    """The base image's id (an input of the environment's tag)."""
    info = await api.image(base)
    if info is None:
        raise missing_base(base)
    return str(info["Id"])


async def cached_env(api: DockerAPI, spec: EnvSpec, base_id: str,
                     force: bool = False) -> EnvRef | None:
    """The environment when nothing needs building (no dependencies, or its tag exists, unless
    ``force``); None when ``build_env`` must build it."""
    tag = spec.env_tag(base_id)
    if tag is None:
        return EnvRef(spec.base, cached=True)  # nothing to install: the base image is the env
    if not force and await api.image(tag) is not None:
        return EnvRef(tag, cached=True)
    return None


async def build_env(docker: Any, spec: EnvSpec, base_id: str, progress: Progress) -> EnvRef:
    """Build the environment image (``cached_env`` found none to reuse) and tag it."""
    digest = spec.digest(base_id)
    tag = spec.tag(digest)
    progress(f"building {tag} from {spec.base} ({_summary(spec)})")
    facts = await probe_base(docker, base_id) if (spec.conda or spec.offline
                                                   or spec.python_pin) else None
    if spec.python_pin and facts is not None:
        wanted = spec.python_pin.partition("=")[2].lstrip("=")
        if wanted and not (wanted + ".").startswith(facts.python + "."):
            progress(f"{spec.python_pin} is not honoured: base image {spec.base!r} has Python "
                     f"{facts.python} (the environment is built for that one)")
    if spec.conda and facts is not None and not facts.conda:
        # No conda in the image (Workbench's images had it): the conda section is installed
        # with pip, each package at the version asked or the nearest one published for the
        # image's Python.
        spec = spec.with_pip(await pip_for_conda(spec.conda, facts, progress) + spec.pip)
    try:
        await _build_with_context(docker, spec, base_id, digest, tag, facts, progress)
    except IndexUnreachable as err:
        if spec.offline or spec.conda:
            raise
        # Common in GPU labs and behind TLS-inspecting proxies: this machine reaches the index
        # but containers do not. Offline mode fetches the wheels here and sends them along.
        progress(f"the build could not reach the package index ({err.detail}); retrying in "
                 "offline mode: wheels downloaded on this machine, sent with the build")
        spec = spec.offline_copy()
        facts = await probe_base(docker, base_id)
        await _build_with_context(docker, spec, base_id, digest, tag, facts, progress)
    progress(f"built {tag}")
    return EnvRef(tag, cached=False)


def _summary(spec: EnvSpec) -> str:
    parts = []
    if spec.pip:
        parts.append(f"pip: {' '.join(spec.pip)}")
    if spec.conda:
        parts.append(f"conda: {' '.join(spec.conda)}")
    if spec.offline:
        parts.append("offline wheels")
    return "; ".join(parts) or "no dependencies"


def dockerfile(spec: EnvSpec, base_id: str, facts: BaseFacts | None) -> str:
    lines = [f"FROM {base_id}"]
    lines += [f"ARG {name}" for name in PIP_BUILD_ARGS if os.environ.get(name)]
    lines.append("COPY labdeck-env/ /labdeck/env/")
    if spec.conda:
        tool = facts.conda if facts and facts.conda else "conda"
        channels = " ".join(f"-c {shlex.quote(c)}" for c in spec.channels)
        pkgs = " ".join(shlex.quote(p) for p in spec.conda)
        name = tool.rsplit("/", 1)[-1]
        target = "-n base " if name == "micromamba" else ""
        lines.append(f"RUN {tool} install -y {target}{channels} {pkgs}".replace("  ", " "))
    if spec.pip:
        offline = " --no-index --find-links /labdeck/env/wheels" if spec.offline else ""
        lines.append("RUN python3 -m pip install --no-cache-dir --disable-pip-version-check"
                     f"{offline} -r /labdeck/env/requirements.txt")
    return "\n".join(lines) + "\n"


def build_context(spec: EnvSpec, base_id: str, facts: BaseFacts | None, wheels: Path) -> bytes:
    import gzip  # builds only

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        _add_bytes(tar, "Dockerfile", dockerfile(spec, base_id, facts).encode())
        requirements = "".join(f"{p}\n" for p in spec.pip).encode()
        _add_bytes(tar, "labdeck-env/requirements.txt", requirements)
        if wheels.is_dir():
            for wheel in sorted(wheels.iterdir()):
                tar.add(wheel, arcname=f"labdeck-env/wheels/{wheel.name}", recursive=False)
    return gzip.compress(raw.getvalue(), compresslevel=1)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


class IndexUnreachable(PrepareError):
    """pip inside the build could not reach the package index (network, proxy, certificate)."""

    def __init__(self, message: str, detail: str):
        super().__init__(message)
        self.detail = detail


NETWORK_MARKERS = ("CERTIFICATE_VERIFY_FAILED", "SSLError", "NewConnectionError",
                   "Temporary failure in name resolution", "ConnectTimeoutError", "ProxyError",
                   "Network is unreachable", "Connection refused")


async def _build_with_context(docker: Any, spec: EnvSpec, base_id: str, digest: str, tag: str,
                              facts: BaseFacts | None, progress: Progress) -> None:
    import tempfile  # builds only: a run's supervisor does not pay for it

    with tempfile.TemporaryDirectory(prefix="labdeck-build-") as tmp:
        wheels = Path(tmp) / "wheels"
        if spec.offline and spec.pip:
            assert facts is not None
            await download_wheels(spec.pip, facts, wheels, progress)
        context = build_context(spec, base_id, facts, wheels)
    await _build(docker, context, tag, spec, digest, progress)


async def _build(docker: Any, context: bytes, tag: str, spec: EnvSpec, digest: str,
                 progress: Progress) -> None:
    from aiodocker.exceptions import DockerError

    step = "the build"
    tail: list[str] = []
    layers: list[str] = []  # " ---> <id>" of each finished step
    buildargs = {k: os.environ[k] for k in PIP_BUILD_ARGS if os.environ.get(k)}
    try:
        stream = docker.images.build(
            fileobj=io.BytesIO(context), encoding="gzip", tag=tag, stream=True, rm=True,
            forcerm=True, buildargs=buildargs or None,
            labels={LABEL_ENV: digest, LABEL_PROJECT: spec.project})
        async for item in stream:
            for raw in str(item.get("stream", "")).splitlines():
                line = ANSI_RE.sub("", raw).rstrip()
                if not line:
                    continue
                if line.startswith("Step "):
                    step, tail = line, []
                elif line.startswith(" ---> ") and " " not in line[6:].strip():
                    layers.append(line[6:].strip())
                elif not line.startswith((" ---> ", "Removing intermediate container")):
                    tail.append(line)
                    del tail[:-40]
                progress(line)
    except DockerError as err:
        await _drop_layers(docker, layers[1:])  # the steps before the failing one: nothing stays
        raise build_failure(api_message(err), step, tail, spec) from err


async def _drop_layers(docker: Any, layers: list[str]) -> None:
    from aiodocker.exceptions import DockerError

    for layer in reversed(layers):
        try:
            await docker.images.delete(layer)
        except DockerError:
            return  # shared with another build's cache (or already gone): keep the rest too


def build_failure(message: str, step: str, tail: list[str], spec: EnvSpec) -> PrepareError:
    """One line: the failing step's command, its exit code and the output line that says why."""
    code = re.search(r"non-zero code: (\d+)", message)
    command = step.split(" : ", 1)[-1] if " : " in step else step
    if not code:
        return PrepareError(f"image build failed at {command!r}: {message}")
    reason = _reason(tail)
    network = next((line for line in tail if any(m in line for m in NETWORK_MARKERS)), None)
    if network is not None and not spec.offline:
        marker = next(m for m in NETWORK_MARKERS if m in network)
        return IndexUnreachable(f"image build failed at {command!r} (exit code {code.group(1)}): "
                                f"the package index is unreachable from the build ({marker})",
                                marker)
    return PrepareError(f"image build failed at {command!r} (exit code {code.group(1)})"
                        + (f": {reason}" if reason else ""))


def _reason(tail: list[str]) -> str:
    for line in reversed(tail):
        if line.startswith("ERROR") or "Error" in line or "error:" in line:
            return line.strip()
    return tail[-1].strip() if tail else ""


async def probe_base(docker: Any, base_id: str) -> BaseFacts:
    """Run the base image once to learn its Python, platform and conda (cache misses only)."""
    config = {"Image": base_id, "Cmd": ["python3", "-c", PROBE],
              "Labels": {LABEL_ENV: "probe"}, "HostConfig": {"NetworkMode": "none"}}
    container = None
    try:
        container = await docker.containers.create(config=config)
        await container.start()
        result = await container.wait()
        out = "".join(await container.log(stdout=True, stderr=True)).strip()
    except Exception as err:
        if is_connection_error(err):
            raise  # the daemon is gone: docker_errors says so
        raise PrepareError(f"cannot run python3 in the base image: {api_message(err)}") from err
    finally:
        if container is not None:
            await container.delete(force=True)
    fields = out.split()
    if result.get("StatusCode") != 0 or len(fields) != 5:
        raise PrepareError(f"the base image has no working python3 (probe said {out[:200]!r})")
    return BaseFacts(f"{fields[0]}.{fields[1]}", fields[2], fields[3],
                     "" if fields[4] == "-" else fields[4])


async def pip_for_conda(conda: tuple[str, ...], facts: BaseFacts,
                        progress: Progress) -> tuple[str, ...]:
    """The conda section as pip requirements; an exact version with no wheel for the image's
    Python becomes the nearest published one (said, one line each)."""
    from .env import conda_as_pip

    out = []
    for spec in conda:
        name, requirement, version = conda_as_pip(spec)
        if version is not None:
            available = await published_versions(name, facts)
            if available and not any(v == version or v.startswith(version + ".")
                                     for v in available):
                nearest = nearest_version(version, available)
                progress(f"conda package {spec}: no {name} {version} for Python {facts.python}; "
                         f"installing {name}=={nearest} instead")
                requirement = f"{name}=={nearest}"
        if requirement != spec:
            progress(f"conda package {spec} installed with pip as {requirement}")
        out.append(requirement)
    return tuple(out)


async def published_versions(name: str, facts: BaseFacts) -> list[str]:
    """Versions of ``name`` with a wheel for the image's Python and platform, asked of the
    package index from this machine; [] when it cannot be asked (then the pin stays)."""
    major, minor = facts.python.split(".")
    argv = [sys.executable, "-m", "pip", "index", "versions", name, "--disable-pip-version-check",
            "--only-binary=:all:", "--python-version", f"{major}{minor}", "--implementation",
            "cp", "--abi", f"cp{major}{minor}",
            *[arg for tag in platforms(facts) for arg in ("--platform", tag)]]
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL)
        out, _ = await proc.communicate()
    except OSError:
        return []
    for line in out.decode(errors="replace").splitlines():
        if line.startswith("Available versions:"):
            return [v.strip() for v in line.split(":", 1)[1].split(",") if v.strip()]
    return []


def nearest_version(wanted: str, available: list[str]) -> str:
    """The lowest published version at or above ``wanted``, else the highest below it."""
    from packaging.version import InvalidVersion, Version

    def key(text: str) -> Version:
        try:
            return Version(text)
        except InvalidVersion:
            return Version("0")

    ordered = sorted(available, key=key)
    above = [v for v in ordered if key(v) >= key(wanted)]
    return above[0] if above else ordered[-1]


def pip_download_argv(packages: tuple[str, ...], facts: BaseFacts, dest: Path) -> list[str]:
    major, minor = facts.python.split(".")
    return [sys.executable, "-m", "pip", "download", "--disable-pip-version-check",
            "--dest", str(dest), "--only-binary=:all:", "--python-version", f"{major}{minor}",
            "--implementation", "cp", "--abi", f"cp{major}{minor}",
            *[arg for tag in platforms(facts) for arg in ("--platform", tag)], *packages]


def platforms(facts: BaseFacts) -> list[str]:
    """Every manylinux tag the base image's glibc accepts (pip does not expand them itself)."""
    arch = facts.machine
    parts = facts.glibc.split(".")
    minor = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 17
    tags = [f"manylinux_2_{m}_{arch}" for m in range(max(minor, 17), 4, -1)]
    tags += [f"manylinux2014_{arch}", f"manylinux2010_{arch}", f"manylinux1_{arch}"]
    return tags


async def download_wheels(packages: tuple[str, ...], facts: BaseFacts, dest: Path,
                          progress: Progress) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    argv = pip_download_argv(packages, facts, dest)
    progress(f"offline: downloading wheels for Python {facts.python} {facts.machine} "
             f"(glibc {facts.glibc}) on this machine")
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT)
    except OSError as err:
        raise PrepareError(f"cannot run pip on this machine: {err.strerror}") from err
    assert proc.stdout is not None
    tail: list[str] = []
    async for raw in proc.stdout:
        line = raw.decode(errors="replace").rstrip()
        if line:
            progress(line)
            tail.append(line)
            del tail[:-40]
    if await proc.wait() != 0:
        raise PrepareError("pip download failed for the offline build: "
                           + (_reason(tail) or f"exit code {proc.returncode}"))
