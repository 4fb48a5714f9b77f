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
from ..config import entry_line
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
    await check_pip_locations(spec)
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


def _spark(spec: EnvSpec) -> bool:
    """Whether the environment is a Framework PySpark one (``EnvSpec.spark``, read so that this
    module also works with an env.py that predates it: then never)."""
    return bool(getattr(spec, "spark", False))


def _pip_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9_.\-]+", requirement.strip())
    return match.group(0).lower().replace("_", "-") if match else ""


def _summary(spec: EnvSpec) -> str:
    parts = ["Java and pyspark for Framework PySpark"] if _spark(spec) else []
    if spec.pip:
        parts.append(f"pip: {' '.join(spec.pip)}")
    if spec.conda:
        parts.append(f"conda: {' '.join(spec.conda)}")
    if spec.offline:
        parts.append("offline wheels")
    return "; ".join(parts) or "no dependencies"


# Framework PySpark (spark-submit in the container): a Java runtime from the image's apt (apt
# reaches its mirrors in builds here; dpkg fails to install a JRE without man1/ in slim images),
# skipped when the image has java already; pyspark from the wheel cache of this machine, sent in
# the build context (pip in a container cannot reach an index here; PyPI has pyspark only as a
# 456 MB source distribution, built once into the cache by scripts/start-spark.sh).
SPARK_STEPS = [
    "RUN if ! command -v java >/dev/null 2>&1; then "
    "command -v apt-get >/dev/null 2>&1 || { echo 'labdeck: Framework PySpark needs Java 17+ "
    "in the image, which has no java and no apt-get' >&2; exit 1; }; "
    "mkdir -p /usr/share/man/man1 && apt-get update && DEBIAN_FRONTEND=noninteractive "
    "apt-get install -y --no-install-recommends openjdk-17-jre-headless && "
    "rm -rf /var/lib/apt/lists/*; fi",
    "COPY labdeck-env/spark/ /labdeck/spark/",
    "RUN python3 -m pip install --no-cache-dir --disable-pip-version-check --no-index "
    "--find-links /labdeck/spark pyspark",
]


def spark_wheels(progress: Progress) -> list[Path]:
    """pyspark's and py4j's wheels from the wheel cache (LABDECK_WHEEL_CACHE, default
    ~/.cache/labdeck/wheels), built into it first when missing (pip wheel: needs the index)."""
    import subprocess

    from ..spark.pyenv import cache_dir

    cache = cache_dir()

    def found() -> list[Path]:
        picked = []
        for name in ("pyspark", "py4j"):
            wheels = sorted(cache.glob(f"{name}-*.whl"))
            if wheels:
                picked.append(wheels[-1])
        return picked

    if len(found()) < 2:
        progress(f"pyspark's wheel is not in {cache}: building it (a 456 MB source "
                 "distribution: about a minute)")
        cache.mkdir(parents=True, exist_ok=True)
        res = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "-w", str(cache),
                              "pyspark"], capture_output=True, text=True, timeout=1800)
        if res.returncode != 0 or len(found()) < 2:
            last = (res.stderr.strip().splitlines() or ["pip wheel failed"])[-1]
            raise PrepareError(f"Framework PySpark needs pyspark's wheel for the image and "
                               f"{cache} has none: {last} (put pyspark-*.whl and py4j-*.whl "
                               "there, e.g. with bash scripts/start-spark.sh)")
    return found()


SPARK_LAYER_REPOSITORY = "labdeck-spark"


def spark_layer_tag(base_id: str, wheels: list[Path]) -> str:
    """The tag of base image + Java + pyspark: one per base image, recipe and wheels (a wheel's
    name carries its version; its size tells a rebuilt one apart)."""
    import hashlib

    digest = hashlib.sha256("\n".join([base_id, *SPARK_STEPS]).encode())
    for wheel in wheels:
        digest.update(f"\n{wheel.name}:{wheel.stat().st_size}".encode())
    return f"{SPARK_LAYER_REPOSITORY}:{digest.hexdigest()[:16]}"


def spark_layer_context(base_id: str, wheels: list[Path]) -> bytes:
    import gzip

    lines = [f"FROM {base_id}", *SPARK_STEPS]
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        _add_bytes(tar, "Dockerfile", ("\n".join(lines) + "\n").encode())
        for wheel in wheels:
            tar.add(wheel, arcname=f"labdeck-env/spark/{wheel.name}", recursive=False)
    return gzip.compress(raw.getvalue(), compresslevel=1)


async def spark_layer(docker: Any, spec: EnvSpec, base_id: str, wheels: list[Path],
                      progress: Progress) -> str:
    """The id of base image + Java + pyspark on this daemon, built there once: a PySpark
    environment starts FROM it, so pyspark's 457 MB wheel travels to a daemon (a remote one
    over SSH) once per base image and wheel, not with each environment's build."""
    from aiodocker.exceptions import DockerError

    tag = spark_layer_tag(base_id, wheels)
    try:
        return str((await docker.images.inspect(tag))["Id"])
    except DockerError:
        pass
    size = sum(wheel.stat().st_size for wheel in wheels) // 1_000_000
    progress(f"building {tag}: Java and pyspark over {spec.base}, once per base image and "
             f"pyspark wheel ({size} MB sent this time only)")
    context = await asyncio.to_thread(spark_layer_context, base_id, wheels)
    await _build(docker, context, tag, spec, tag.partition(":")[2], progress)
    return str((await docker.images.inspect(tag))["Id"])


def dockerfile(spec: EnvSpec, base_id: str, facts: BaseFacts | None,
               spark_steps: bool = True) -> str:
    """``spark_steps``: False when ``base_id`` is a Spark layer (spark_layer) already."""
    lines = [f"FROM {base_id}"]
    lines += [f"ARG {name}" for name in PIP_BUILD_ARGS if os.environ.get(name)]
    if _spark(spec) and spark_steps:  # first: its layers stay cached whatever the dependencies
        lines += SPARK_STEPS
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


def build_context(spec: EnvSpec, base_id: str, facts: BaseFacts | None, wheels: Path,
                  requirements: tuple[str, ...] | None = None,
                  spark: list[Path] | None = None, spark_steps: bool = True) -> bytes:
    """``requirements``: what the image's pip installs (default: the pip list as written)."""
    import gzip  # builds only

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        _add_bytes(tar, "Dockerfile", dockerfile(spec, base_id, facts, spark_steps).encode())
        listed = spec.pip if requirements is None else requirements
        _add_bytes(tar, "labdeck-env/requirements.txt", "".join(f"{p}\n" for p in listed).encode())
        if wheels.is_dir():
            for wheel in sorted(wheels.iterdir()):
                tar.add(wheel, arcname=f"labdeck-env/wheels/{wheel.name}", recursive=False)
        for wheel in spark or []:
            tar.add(wheel, arcname=f"labdeck-env/spark/{wheel.name}", recursive=False)
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

    from_id = base_id
    if _spark(spec):  # pyspark comes from the cache's wheel, never from the conda file's pip list
        spark = await asyncio.to_thread(spark_wheels, progress)
        spec = spec.with_pip(tuple(p for p in spec.pip if _pip_name(p) != "pyspark"))
        from_id = await spark_layer(docker, spec, base_id, spark, progress)
    with tempfile.TemporaryDirectory(prefix="labdeck-build-") as tmp:
        wheels = Path(tmp) / "wheels"
        requirements = spec.pip
        if spec.offline and spec.pip:
            assert facts is not None
            requirements = await download_wheels(spec.pip, facts, wheels, progress,
                                                 Path(spec.project))
        context = await asyncio.to_thread(build_context, spec, from_id, facts, wheels,
                                          requirements, None, from_id == base_id)
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


def pip_download_argv(packages: tuple[str, ...], facts: BaseFacts, dest: Path,
                      built: Path | None = None, own_platform: bool = False) -> list[str]:
    """Wheels only, for the image's Python and platform; ``built``: wheels made here from
    source (``own_platform``: one of them is for this machine's ``linux_<arch>``)."""
    extra = _own_platform(facts) if own_platform else []
    return [*_pip_base("download"), "--dest", str(dest), "--only-binary=:all:",
            *_target_args(facts, extra),
            *(["--find-links", str(built)] if built is not None else []), *packages]


def _pip_base(command: str) -> list[str]:
    return [sys.executable, "-m", "pip", command, "--disable-pip-version-check"]


def _target_args(facts: BaseFacts, extra_platforms: list[str] | None = None) -> list[str]:
    major, minor = facts.python.split(".")
    return ["--python-version", f"{major}{minor}", "--implementation", "cp", "--abi",
            f"cp{major}{minor}",
            *[arg for tag in platforms(facts) + (extra_platforms or [])
              for arg in ("--platform", tag)]]


def platforms(facts: BaseFacts) -> list[str]:
    """Every manylinux tag the base image's glibc accepts (pip does not expand them itself)."""
    arch = facts.machine
    parts = facts.glibc.split(".")
    minor = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 17
    tags = [f"manylinux_2_{m}_{arch}" for m in range(max(minor, 17), 4, -1)]
    tags += [f"manylinux2014_{arch}", f"manylinux2010_{arch}", f"manylinux1_{arch}"]
    return tags


async def download_wheels(packages: tuple[str, ...], facts: BaseFacts, dest: Path,
                          progress: Progress, project: Path) -> tuple[str, ...]:
    """The wheels of ``packages`` and of their dependencies for the image's Python and platform,
    into ``dest``; returns the requirements as the image installs them (a URL or path entry
    becomes ``name==version`` of its wheel). A package published only as source is built into
    a wheel here (``pip wheel``), kept when the image can install it."""
    dest.mkdir(parents=True, exist_ok=True)
    built = dest.parent / "built"  # wheels made on this machine, found by pip as --find-links
    built.mkdir(exist_ok=True)
    progress(f"offline: downloading wheels for Python {facts.python} {facts.machine} "
             f"(glibc {facts.glibc}) on this machine")
    requirements = []
    for entry in packages:
        if pip_location(entry) is None:
            requirements.append(entry)
            continue
        # A URL or a path: there is no index to pick a wheel from; build (or fetch) it here.
        wheel = await wheel_from_source(entry, [_local(entry, project)], facts, built, progress)
        requirements.append(_pin_of(wheel))
    own_platform = False  # a C-extension wheel built here for this very platform
    tried: set[str] = set()
    while True:
        argv = pip_download_argv(tuple(requirements), facts, dest, built, own_platform)
        code, tail = await _pip(argv, progress)
        if code == 0:
            return tuple(requirements)
        missing = _no_wheel_for(tail)
        if missing is None or missing in tried:
            raise PrepareError("pip download failed for the offline build: "
                               + (_reason(tail) or f"exit code {code}"))
        tried.add(missing)
        progress(f"offline: {missing} has no wheel for Python {facts.python} {facts.machine}; "
                 "building it from source on this machine")
        sources = dest.parent / f"source-{len(tried)}"
        code, tail = await _pip([*_pip_base("download"), "--no-deps", "--dest", str(sources),
                                 *_target_args(facts), missing], progress)
        if code != 0 or not sources.is_dir() or not any(sources.iterdir()):
            raise PrepareError(f"pip download failed for the offline build: {missing}: "
                               + (_reason(tail) or f"exit code {code}"))
        source = next(iter(sorted(sources.iterdir())))
        wheel = await wheel_from_source(missing, [str(source)], facts, built, progress)
        own_platform = own_platform or not _is_pure(wheel)


async def wheel_from_source(what: str, args: list[str], facts: BaseFacts, built: Path,
                            progress: Progress) -> Path:
    """``pip wheel --no-deps`` of a source (sdist, URL, path) into ``built``: the wheel, when
    the image's Python and platform can install it."""
    before = set(built.iterdir())
    code, tail = await _pip([*_pip_base("wheel"), "--no-deps", "--wheel-dir", str(built),
                             *args], progress)
    made = sorted(set(built.iterdir()) - before)
    if code != 0 or not made:
        raise PrepareError(f"cannot build {what} into a wheel on this machine for the offline "
                           "build: " + (_reason(tail) or f"pip wheel exit code {code}"))
    wheel = made[0]
    if not wheel_fits(wheel.name, facts):
        for stale in made:
            stale.unlink()
        raise PrepareError(
            f"{what} is published only as source and has compiled extensions: the wheel built "
            f"on this machine ({wheel.name}) does not fit the image's Python {facts.python} "
            f"{facts.machine} (glibc {facts.glibc}); prepare without --offline from a base image "
            "with a compiler (gcc and the Python headers) so the build compiles it there, or "
            f"run the offline prepare on a machine with Python {facts.python} {facts.machine}")
    progress(f"offline: built {wheel.name} from source on this machine")
    return wheel


def wheel_fits(filename: str, facts: BaseFacts) -> bool:
    """Whether a wheel's tags are ones the image's pip installs (cf. packaging.tags)."""
    parts = filename.removesuffix(".whl").split("-")
    if len(parts) < 5:
        return False
    pythons, abis, plats = (set(p.split(".")) for p in parts[-3:])
    major, minor = facts.python.split(".")
    if "any" in plats:
        return "none" in abis and any(
            t in {f"py{major}", f"cp{major}{minor}"} or
            (t.startswith(f"py{major}") and t[len(f"py{major}"):].isdigit()
             and int(t[len(f"py{major}"):]) <= int(minor)) for t in pythons)
    own = f"cp{major}{minor}"
    if not plats & set(platforms(facts) + _own_platform(facts)):
        return False
    if own in pythons and abis & {own, "abi3", "none"}:
        return True
    # abi3: built for an older CPython 3, loads on later ones
    start = len(f"cp{major}")
    return "abi3" in abis and any(t.startswith(f"cp{major}") and t[start:].isdigit()
                                  and int(t[start:]) <= int(minor) for t in pythons)


def _own_platform(facts: BaseFacts) -> list[str]:
    """``linux_<arch>`` (what pip wheel tags a build here) when this machine's platform and
    glibc can stand in for the image's: same arch, a glibc no newer than the image's."""
    import platform

    host_glibc = platform.libc_ver()[1] or ""
    if platform.machine() != facts.machine or not host_glibc:
        return []
    def key(text: str) -> tuple[int, ...]:
        return tuple(int(p) for p in text.split(".") if p.isdigit())
    return [f"linux_{facts.machine}"] if key(host_glibc) <= key(facts.glibc) else []


def _is_pure(wheel: Path) -> bool:
    return wheel.name.removesuffix(".whl").endswith("-none-any")


def _pin_of(wheel: Path) -> str:
    name, version = wheel.name.split("-")[:2]
    return f"{name}=={version}"


def _no_wheel_for(tail: list[str]) -> str | None:
    """The requirement pip found no wheel for ("No matching distribution found for X")."""
    for line in reversed(tail):
        match = re.search(r"No matching distribution found for (\S+)", line)
        if match:
            return match.group(1)
    return None


async def _pip(argv: list[str], progress: Progress) -> tuple[int, list[str]]:
    """Run pip here, its lines as progress (its ERROR lines only in the tail: the caller
    decides whether they are the end); (exit code, last lines)."""
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
            if not line.startswith("ERROR:"):
                progress(line)
            tail.append(line)
            del tail[:-40]
    return await proc.wait(), tail


# ------------------------------------------------------------------ pip entries that are places
SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
DIRECT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]*\s*(\[[^\]]*\])?\s*@\s*(\S+)")


def pip_location(entry: str) -> str | None:
    """The URL or path a pip entry installs from (``git+https://...``, ``name @ https://...``,
    ``./pkg``, ``/abs/pkg.tar.gz``); None for a requirement an index answers."""
    text = entry.split(";", 1)[0].strip()
    if SCHEME_RE.match(text):
        return text.split()[0]
    direct = DIRECT_RE.match(text)
    if direct:
        return direct.group(2)
    if text.startswith(("/", "./", "../", "~/")) or text in {".", ".."}:
        return text
    return None


def _local(entry: str, project: Path) -> str:
    """A path entry made absolute against the project (pip runs elsewhere); others as is."""
    location = pip_location(entry)
    if location is None or SCHEME_RE.match(location) or location != entry.strip():
        return entry
    return str(project / os.path.expanduser(location))


async def check_pip_locations(spec: EnvSpec) -> None:
    """A pip entry naming a URL that cannot serve it (no such host, refused, HTTP 404/410) or a
    path that does not exist is a file:line error before anything is built, instead of pip's
    page of retries and tracebacks inside the build."""
    from ..errors import ConfigError

    for entry in spec.pip:
        location = pip_location(entry)
        if location is None:
            continue
        why = await asyncio.to_thread(dead_location, location, Path(spec.project))
        if why is not None:
            path = Path(spec.conda_file) if spec.conda_file else None
            raise ConfigError(f"pip entry {entry!r} cannot be installed: {why}", path,
                              entry_line(path, entry) if path else None)


def dead_location(location: str, project: Path) -> str | None:
    """Why ``location`` certainly cannot be fetched from here; None when it can or when the
    answer is unsure (a timeout, a TLS or proxy problem: the build's pip reports those)."""
    from urllib.parse import urlsplit

    if not SCHEME_RE.match(location):
        path = project / os.path.expanduser(location)
        return None if path.exists() else f"no such file or directory ({path})"
    scheme = location.split("://", 1)[0].lower()
    if scheme == "file":
        path = Path(urlsplit(location).path)
        return None if path.exists() else f"no such file or directory ({path})"
    if scheme in {"git+http", "git+https"}:
        # git's smart HTTP: the repository's refs, at the URL less "git+", "@ref" and "#...".
        parts = urlsplit(location[len("git+"):])
        repo = parts.path.rsplit("@", 1)[0] if "@" in parts.path else parts.path
        return _dead_http(f"{parts.scheme}://{parts.netloc}{repo.rstrip('/')}"
                          "/info/refs?service=git-upload-pack")
    if scheme in {"http", "https"}:
        return _dead_http(location.split("#", 1)[0])
    return None


def _dead_http(url: str) -> str | None:
    import errno
    import socket
    import urllib.error
    import urllib.request
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    request = urllib.request.Request(url, headers={"User-Agent": "labdeck"})
    try:
        with urllib.request.urlopen(request, timeout=15):
            return None
    except urllib.error.HTTPError as err:
        return f"{parts.netloc} answered HTTP {err.code} {err.reason}" \
            if err.code in (404, 410) else None
    except urllib.error.URLError as err:
        reason = err.reason
        if isinstance(reason, ConnectionRefusedError):
            return f"connection refused by {parts.netloc} (nothing listens there)"
        if isinstance(reason, socket.gaierror) and reason.errno in (
                socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)):
            return f"host {parts.hostname!r} not found"
        if isinstance(reason, OSError) and reason.errno == errno.ECONNREFUSED:
            return f"connection refused by {parts.netloc} (nothing listens there)"
        return None
    except (OSError, ValueError):
        return None


