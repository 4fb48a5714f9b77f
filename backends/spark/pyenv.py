"""A Spark run's Python packages (its conda file) on a head node that cannot reach a package
index: wheels for the head node's Python are resolved HERE, from a wheel cache
($LABDECK_WHEEL_CACHE, default ~/.cache/labdeck/wheels) and, only for what the cache lacks, from
the index this machine reaches; they travel with the run's sync (content-addressed: once per
head node), are installed there with ``pip --no-index --no-deps --target`` into a venv
(``--without-pip --system-site-packages``: the head node's own pyspark stays visible) under
``~/.labdeck/envs/<hash of the wheels>``, kept for later runs, and packed once as
``<env>.tar.gz`` for YARN (``--archives <it>#environment``, PYSPARK_PYTHON
./environment/bin/python in its containers).

Why a venv built on the head node and not a packed environment from here, nor ``--py-files``:
an environment packed here carries this machine's interpreter (another path, maybe another
Python) and conda-pack is not available offline; ``--py-files`` carries only pure-Python code,
and the packages Spark scripts need (numpy, pandas, scikit-learn) are compiled. Binary wheels
built for the head node's Python and platform install anywhere without a compiler or an index.
The packed venv relies on the nodes having the head node's Python at the same path, as the
nodes of one HDInsight cluster do (venv-pack's assumption too)."""

from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import TargetError

if TYPE_CHECKING:
    from ..base import RunContext
    from .head import HeadLink, PythonEnv
    from .remote import HeadFacts

PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64")


def cache_dir() -> Path:
    return Path(os.environ.get("LABDECK_WHEEL_CACHE")
                or os.path.expanduser("~/.cache/labdeck/wheels"))


def _pip_download(specs: list[str], python: str, dest: Path, offline: bool,
                  cache: Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check",
           "--only-binary", ":all:", "--python-version", python, "--dest", str(dest)]
    for platform in PLATFORMS:
        cmd += ["--platform", platform]
    cmd += ["--no-index", "--find-links", str(cache)] if offline else ["--find-links", str(cache)]
    # stdin closed: pip must never wait on a prompt (an index's credentials) nobody sees.
    return subprocess.run([*cmd, *specs], capture_output=True, stdin=subprocess.DEVNULL,
                          text=True, timeout=600)


def wheels_for(specs: list[str], python: str, progress: Callable[[str], None]) -> list[Path]:
    """The wheels (with their dependencies) that install ``specs`` on the head node's Python
    (``X.Y``), from the cache; what the cache lacks is downloaded into it first."""
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(f"{python}\n{sorted(specs)}".encode()).hexdigest()[:16]
    memo = cache / ".sets" / key
    try:
        names = memo.read_text().split()
        if names and all((cache / n).is_file() for n in names):
            return [cache / n for n in names]
    except OSError:
        pass
    import tempfile

    with tempfile.TemporaryDirectory(prefix="labdeck-wheels-") as tmp:
        res = _pip_download(specs, python, Path(tmp), True, cache)
        if res.returncode != 0:
            progress(f"wheels for {', '.join(specs)} (Python {python}) are not all in {cache}: "
                     "downloading what is missing")
            fetched = _pip_download(specs, python, cache, False, cache)
            if fetched.returncode != 0:
                last = (fetched.stderr.strip().splitlines() or ["pip download failed"])[-1]
                raise TargetError(f"cannot get wheels of {', '.join(specs)} for the head node's "
                                  f"Python {python}: {last} (put them in {cache})")
            res = _pip_download(specs, python, Path(tmp), True, cache)
            if res.returncode != 0:
                last = (res.stderr.strip().splitlines() or ["pip download failed"])[-1]
                raise TargetError(f"wheels for {', '.join(specs)}: {last}")
        names = sorted(p.name for p in Path(tmp).glob("*.whl"))
    for name in names:  # a resolved wheel not yet in the cache (pip copied it from elsewhere)
        if not (cache / name).is_file():
            raise TargetError(f"wheel {name} was resolved but is not in {cache}")
    memo.parent.mkdir(exist_ok=True)
    memo.write_text("\n".join(names) + "\n")
    return [cache / name for name in names]


def env_name(wheels: list[Path], python: str) -> str:
    digest = hashlib.sha256(("\n".join([python, *sorted(w.name for w in wheels)])).encode())
    return digest.hexdigest()[:16]


def install_script(env: str, wheel_dir: str, python_version: str, pack: bool) -> str:
    """Make the venv ``env`` from the wheels in ``wheel_dir`` when it is missing (built beside
    it, then renamed: a half-made one is never used); pack it for YARN when asked."""
    q_env, q_wheels = shlex.quote(env), shlex.quote(wheel_dir)
    site = f"{q_env}.tmp/lib/python{python_version}/site-packages"
    lines = [
        "set -e",
        f"if [ ! -x {q_env}/bin/python ]; then",
        f"  rm -rf {q_env}.tmp",
        f"  python3 -m venv --without-pip --system-site-packages {q_env}.tmp",
        f"  python3 -m pip install -q --disable-pip-version-check --no-index --no-deps "
        f"--no-compile --target {site} {q_wheels}/*.whl",
        f"  mv {q_env}.tmp {q_env}",
        "fi",
    ]
    if pack:
        lines += [
            f"if [ ! -f {q_env}.tar.gz ]; then",
            f"  tar czf {q_env}.tar.gz.tmp -C {q_env} .",
            f"  mv {q_env}.tar.gz.tmp {q_env}.tar.gz",
            "fi",
        ]
    return "\n".join(lines)


async def install_remote(link: HeadLink, ctx: RunContext, wheels: list[Path], facts: HeadFacts,
                         root: str, pack: bool) -> PythonEnv:
    from .head import PythonEnv

    python = facts.python or "3"
    home = facts.home or "~"
    env = f"{home}/.labdeck/envs/{env_name(wheels, python)}"
    began = __import__("time").monotonic()
    code, _, err = await link.run(
        install_script(env, f"{root}/wheels", python, pack))
    if code != 0:
        last = (err.strip().splitlines() or [f"exit status {code}"])[-1]
        raise TargetError(f"installing the conda file's packages on the head node failed: {last}")
    ctx.progress(f"python packages: {', '.join(w.name.split('-')[0] for w in wheels)} in {env} "
                 f"on the head node ({__import__('time').monotonic() - began:.1f} s)")
    return PythonEnv(f"{env}/bin/python", f"{env}.tar.gz" if pack else None)
