"""Shared fixtures: a real project on disk and the real ``labdeck`` CLI in a subprocess."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "sample_project"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def need(condition: bool, reason: str) -> None:
    """A missing service FAILS in CI (CI=true) and skips elsewhere with the reason."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@dataclass
class Project:
    root: Path

    def write(self, rel: str, text: str) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        return path

    def cli(
        self,
        *args: str,
        timeout: float = 120,
        env: dict[str, str] | None = None,
        check: bool = False,
    ) -> Result:
        return run_cli(*args, cwd=self.root, timeout=timeout, env=env, check=check)

    def popen(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen(
            cli_argv(*args),
            cwd=self.root,
            env=cli_env(env),
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )


def cli_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "tui.entry", *args]


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (
        os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
    )
    env.pop("LABDECK_RUN_ID", None)
    env.update(extra or {})
    return env


def run_cli(
    *args: str,
    cwd: Path,
    timeout: float = 120,
    env: dict[str, str] | None = None,
    check: bool = False,
) -> Result:
    proc = subprocess.run(
        cli_argv(*args), cwd=cwd, env=cli_env(env), text=True, capture_output=True, timeout=timeout
    )
    result = Result(proc.returncode, proc.stdout, proc.stderr)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"labdeck {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
        )
    return result


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """An empty project with a local target and nothing else."""
    root = tmp_path / "proj"
    (root / "aml_config").mkdir(parents=True)
    (root / "aml_config" / "local.compute").write_text('type: "local"\n')
    return Project(root)


@pytest.fixture
def sample_copy(tmp_path: Path) -> Project:
    """A private copy of sample_project/ (tests never write into the repository)."""
    root = tmp_path / "sample_project"
    shutil.copytree(
        SAMPLE, root, ignore=shutil.ignore_patterns(".labdeck", "outputs", "__pycache__")
    )
    return Project(root)


MakeProject = Callable[[str], Project]


# A stand-in for nvidia-smi (tests only: no GPU here): the CSV the real one prints for the query
# labdeck sends, for two A100s.
NVIDIA_SMI_STAND_IN = """#!/bin/sh
case "$*" in
  *--query-gpu=index,name,memory.total,memory.used,utilization.gpu,uuid*)
    echo "0, NVIDIA A100-SXM4-80GB, 81920, 1024, 37, GPU-1111"
    echo "1, NVIDIA A100-SXM4-80GB, 81920, 0, 0, GPU-2222" ;;
  *) echo "unexpected arguments: $*" >&2; exit 2 ;;
esac
"""


def stand_in_nvidia_smi(folder: Path) -> Path:
    """Write the stand-in nvidia-smi into ``folder``; its path (for LABDECK_NVIDIA_SMI)."""
    path = folder / "nvidia-smi-stand-in"
    path.write_text(NVIDIA_SMI_STAND_IN)
    path.chmod(0o755)
    return path
