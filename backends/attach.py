"""``target attach|detach``: write and remove .compute/.runconfig files as Workbench did."""

from __future__ import annotations

import os
import re
from pathlib import Path

from .config import DEFAULT_BASE_IMAGE, Warning_, load_compute
from .errors import LabdeckError, UsageError
from .project import Project

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
REMOTE_KINDS = {"remotedocker", "virtualmachine", "cluster"}  # remotedocker: docker/remote_attach


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def attach(
    project: Project,
    kind: str,
    name: str,
    *,
    base_image: str | None = None,
    address: str | None = None,
    username: str | None = None,
    gpus: str | None = None,
    shared_volumes: bool = False,
    force: bool = False,
) -> list[Path]:
    if not NAME_RE.match(name):
        raise UsageError(f"target name {name!r}: use letters, digits, '-', '_' and '.'")
    if kind in REMOTE_KINDS:
        raise UsageError(
            f"attaching {kind} targets is not supported by this labdeck yet; "
            f"write aml_config/{name}.compute by hand"
        )
    compute_path = project.config_dir / f"{name}.compute"
    runconfig_path = project.config_dir / f"{name}.runconfig"
    if compute_path.exists() and not force:
        raise UsageError(f"target {name!r} exists ({compute_path}); pass --force to overwrite")
    lines = [f"type: {_quote(kind)}"]
    if kind == "docker":
        lines += [
            f"baseDockerImage: {_quote(base_image or DEFAULT_BASE_IMAGE)}",
            f"sharedVolumes: {'true' if shared_volumes else 'false'}",
            'nativeSharedDirectory: "~/.azureml/share/"',
        ]
        if gpus:
            lines += ["nvidiaDocker: true", f"gpus: {_quote(gpus)}"]
    elif base_image or gpus or address:
        raise UsageError("--base-image, --gpus and --address apply to docker targets only")
    if username:
        lines.append(f"username: {_quote(username)}")
    compute_text = "\n".join(sorted(lines)) + "\n"  # the attach command sorted its keys
    project.config_dir.mkdir(exist_ok=True)
    _write_atomic(compute_path, compute_text)
    load_compute(compute_path, [])  # what we wrote must read back
    written = [compute_path]
    if force or not runconfig_path.exists():
        _write_atomic(runconfig_path, runconfig_text(name, kind))
        written.append(runconfig_path)
    written += write_dependencies_if_missing(project)
    return written


CONDA_DEPENDENCIES = "conda_dependencies.yml"
MINIMAL_CONDA_DEPENDENCIES = """\
# The run environment's packages (the runconfig's CondaDependenciesFile), as Workbench's
# project template had it: conda packages as list entries, pip ones under '- pip:'. For example:
#   dependencies:
#     - scikit-learn
#     - pip:
#       - matplotlib
# Empty: the target's base image is the environment as it is.
name: project_environment
dependencies: []
"""


def write_dependencies_if_missing(project: Project) -> list[Path]:
    """The runconfig an attach writes names aml_config/conda_dependencies.yml: a project
    without one gets a minimal one (an existing file is never touched)."""
    path = project.config_dir / CONDA_DEPENDENCIES
    if path.exists():
        return []
    _write_atomic(path, MINIMAL_CONDA_DEPENDENCIES)
    return [path]


def runconfig_text(name: str, kind: str, framework: str = "Python") -> str:
    """The .runconfig Workbench's attach wrote beside the .compute (a cluster's says PySpark:
    spark-submit on the head node is all it runs)."""
    return (
        "\n".join(
            [
                "# The script and its arguments; $file is the script named when submitting.",
                "ArgumentVector:",
                '  - "$file"',
                f"Target: {_quote(name)}",
                "EnvironmentVariables:",
                '  "EXAMPLE_ENV_VAR": "Example Value"',
                f"Framework: {_quote(framework)}",
                'CondaDependenciesFile: "aml_config/conda_dependencies.yml"',
                'SparkDependenciesFile: "aml_config/spark_dependencies.yml"',
                f"PrepareEnvironment: {'true' if kind != 'local' else 'false'}",
                "TrackedRun: true",
                "UseSampling: true",
            ]
        )
        + "\n"
    )


def login_lines(username: str | None, identity_file: str | None,
                password_ref: str | None) -> list[str]:
    """A remote target's login keys, as its .compute holds them (never the password itself)."""
    lines = []
    if username:
        lines.append(f"username: {_quote(username)}")
    if identity_file:
        lines.append(f"privateKeyFile: {_quote(str(Path(identity_file).expanduser()))}")
    if password_ref:
        lines.append(f"password: {_quote(password_ref)}")
    return lines


def accept_hint(kind: str, name: str, address: str, username: str | None,
                identity_file: str | None, with_password: bool, force: bool) -> str:
    """The attach command that accepts an unknown host key, as the refusal prints it."""
    return (f"labdeck target attach {kind} --name {name} --address {address}"
            + (f" --username {username}" if username else "")
            + (f" --identity-file {identity_file}" if identity_file else "")
            + (" --password-stdin" if with_password else "")
            + (" --force" if force else "") + " --accept-new-host-key")


def detach(project: Project, name: str) -> list[Path]:
    compute_path = project.config_dir / f"{name}.compute"
    if not compute_path.is_file():
        raise UsageError(f"no target {name!r} (no {compute_path})")
    removed = [compute_path]
    runconfig_path = project.config_dir / f"{name}.runconfig"
    if runconfig_path.is_file():
        removed.append(runconfig_path)
    _forget_password(compute_path)
    for path in removed:
        path.unlink()
    return removed


def _forget_password(compute_path: Path) -> None:
    """The password a remote target kept outside the project goes with it."""
    try:
        compute = load_compute(compute_path, [])
    except LabdeckError:
        return  # a file that does not load refers to nothing we can find
    if compute.password is not None:
        from .ssh import secrets

        secrets.forget(compute.password.value)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


__all__ = ["Warning_", "attach", "detach"]
