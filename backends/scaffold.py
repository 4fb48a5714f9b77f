"""``labdeck init``: a new project's ``aml_config/`` (local and docker targets, in the format
Workbench's project template wrote) and its ``.labdeckignore``.

Nothing existing is ever overwritten: without ``force`` a folder that has ``aml_config/`` is
refused; with it, only the files missing are written and the others are reported as kept.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .config import (
    DEFAULT_BASE_IMAGE,
    Warning_,
    load_compute,
    load_conda_deps,
    load_runconfig,
)
from .errors import StorageError, UsageError

CONFIG_DIR = "aml_config"

LOCAL_COMPUTE = """\
# Defines the type of compute target. For a local run, this is "local": the script runs on this
# machine, with the Python that runs labdeck unless pythonLocation names another.
type: "local"

# The default directory on the host for shared volumes (used by runs that
# opt into the shared directory).
nativeSharedDirectory: "~/.azureml/share/"
"""

DOCKER_COMPUTE = f"""\
# Defines the type of compute target. For local Docker, this is "docker".
type: "docker"

# The base image for the Docker container. This is used to provision the environment.
baseDockerImage: "{DEFAULT_BASE_IMAGE}"

# Whether or not to share volumes with the host (true: the run works in the project folder
# itself instead of a copy).
sharedVolumes: false

# The default directory on the host for shared volumes, if sharedVolumes is true.
nativeSharedDirectory: "~/.azureml/share/"
"""

RUNCONFIG = """\
# The arguments to the script; "$file" is replaced by the script to run.
ArgumentVector:
  - "$file"

# The name of the compute target to use for this run (aml_config/{name}.compute).
Target: "{name}"

# Environment variables set for the run.
EnvironmentVariables:
  "EXAMPLE_ENV_VAR": "Example Value"

# Framework to execute inside: "Python" or "PySpark".
Framework: "Python"

# Path to the Conda dependencies file to use for this run.
CondaDependenciesFile: "aml_config/conda_dependencies.yml"

# Automatically prepare the run environment as part of the run itself.
PrepareEnvironment: {prepare}

# Enable history tracking -- this allows status, logs, metrics and outputs
# to be collected for a run.
TrackedRun: true
"""

CONDA_DEPENDENCIES = """\
# Conda environment specification. The dependencies defined in this file will be
# provisioned for runs against docker targets (labdeck prepare -c docker builds them into an
# image, cached until this file changes). Conda packages are list entries, pip ones go under
# '- pip:', for example:
#   dependencies:
#     - scikit-learn
#     - pip:
#       - matplotlib
# Empty: the target's base image is the environment as it is.
name: project_environment
dependencies: []
"""

LABDECKIGNORE = """\
# Files matching these patterns (gitignore syntax) are left out of the project snapshot that
# each run gets; .git, outputs/ and .labdeck/ never travel. Patterns in .gitignore apply too,
# and a line here starting with ! brings a file back (for example !data/).
__pycache__/
*.py[cod]
.venv/
venv/
.ipynb_checkpoints/
downloads/
*.tmp
"""


def files() -> dict[str, str]:
    """What ``init`` writes, by path relative to the project folder, in writing order."""
    return {
        f"{CONFIG_DIR}/local.compute": LOCAL_COMPUTE,
        f"{CONFIG_DIR}/local.runconfig": RUNCONFIG.format(name="local", prepare="false"),
        f"{CONFIG_DIR}/docker.compute": DOCKER_COMPUTE,
        f"{CONFIG_DIR}/docker.runconfig": RUNCONFIG.format(name="docker", prepare="true"),
        f"{CONFIG_DIR}/conda_dependencies.yml": CONDA_DEPENDENCIES,
        ".labdeckignore": LABDECKIGNORE,
    }


@dataclass
class InitResult:
    root: Path
    written: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)  # existed already (--force): left as they are


def init_project(root: Path, force: bool = False) -> InitResult:
    """Write a new project's files into ``root`` (made if missing); see the module's docstring."""
    if root.exists() and not root.is_dir():
        raise UsageError(f"{root} is not a folder")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise StorageError(f"cannot make {root}: {err.strerror}") from None
    config_dir = root / CONFIG_DIR
    if (config_dir.exists() or config_dir.is_symlink()) and not force:
        raise UsageError(f"{config_dir} exists: this is a project already (--force writes only"
                         " the files it lacks)")
    if config_dir.exists() and not config_dir.is_dir():
        raise UsageError(f"{config_dir} exists and is not a folder")
    result = InitResult(root)
    config_dir.mkdir(exist_ok=True)
    for rel, text in files().items():
        path = root / rel
        if path.exists() or path.is_symlink():
            result.kept.append(path)
            continue
        _write_new(path, text)
        result.written.append(path)
    return result


def check_written(result: InitResult) -> list[Warning_]:
    """Read back what was written with the project's own parsers; their warnings (none
    expected: a test holds it)."""
    warnings: list[Warning_] = []
    for path in result.written:
        if path.suffix == ".compute":
            load_compute(path, warnings)
        elif path.suffix == ".runconfig":
            load_runconfig(path, warnings)
        elif path.name.endswith(".yml"):
            load_conda_deps(path, warnings)
    return warnings


def _write_new(path: Path, text: str) -> None:
    """Create ``path`` with ``text``; a file that appears meanwhile is not overwritten."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        raise UsageError(f"{path} appeared while writing; nothing overwritten") from None
    except OSError as err:
        raise StorageError(f"cannot write {path}: {err.strerror}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
