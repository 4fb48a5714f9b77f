"""Typed model of a Workbench ``aml_config/`` folder: .compute, .runconfig and dependency files.

Unknown keys become warnings naming file and line; malformed files, wrong types and missing required
keys raise ConfigError naming file and line.
"""

from __future__ import annotations

import os
from pathlib import Path

from ._records import dataclass, field
from .errors import ConfigError, TargetError
from .yamlfile import MappingFile, load_mapping

TYPE_CHECKING = False  # importing typing costs ~3 ms of a submit; annotations need none
if TYPE_CHECKING:
    from typing import Any

SECRET_PREFIX = "AzureMlSecret="
LABDECK_SECRET_PREFIX = "LabdeckSecret="  # backends/ssh/secrets.py writes these
COMPUTE_TYPES = {
    "local", "remote", "docker", "localdocker", "remotedocker", "virtualmachine", "cluster",
}
# Older Workbench files said "localdocker" (the local Docker Engine) and, until mid-2017,
# "virtualmachine" (Docker on a VM over SSH, later "remotedocker").
TYPE_ALIASES = {"localdocker": "docker", "virtualmachine": "remotedocker"}
REMOTE_TYPES = {"remote", "remotedocker", "cluster"}
DEFAULT_BASE_IMAGE = "labdeck/python-base:bookworm"


@dataclass(frozen=True)
class Warning_:
    """A problem worth telling but not worth stopping for."""

    path: Path
    line: int | None
    message: str

    def __str__(self) -> str:
        where = str(self.path) if self.line is None else f"{self.path}:{self.line}"
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class Secret:
    """A password: in clear text (warned about) or a Workbench key-store reference to re-enter."""

    value: str

    @property
    def is_reference(self) -> bool:
        """A Workbench key-store reference, which labdeck cannot read."""
        return self.value.startswith(SECRET_PREFIX)

    @property
    def is_stored(self) -> bool:
        """A reference to a password labdeck keeps outside the project (backends/ssh/secrets)."""
        return self.value.startswith(LABDECK_SECRET_PREFIX)

    def __repr__(self) -> str:  # never print a password by accident
        kind = "reference" if self.is_reference or self.is_stored else "clear text"
        return f"Secret(<{kind}>)"


class _Reader:
    """Reads typed keys out of a MappingFile, recording which keys it understood."""

    def __init__(self, mf: MappingFile, warnings: list[Warning_]):
        self.mf = mf
        self.warnings = warnings
        self.seen: set[str] = set()

    def _fail(self, key: str, message: str) -> ConfigError:
        return ConfigError(message, self.mf.path, self.mf.line_of(key))

    def raw(self, key: str) -> Any:
        self.seen.add(key)
        return self.mf.data.get(key)

    def string(self, key: str, default: str | None = None, *, required: bool = False) -> str | None:
        value = self.raw(key)
        if value is None:
            if required:
                raise ConfigError(f"missing required key {key!r}", self.mf.path, 1)
            return default
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self._fail(key, f"{key} must be a string, got {_describe(value)}")
        return str(value)

    def boolean(self, key: str, default: bool) -> bool:
        value = self.raw(key)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"true", "false"}:
            return value.lower() == "true"  # Workbench sometimes quoted booleans
        raise self._fail(key, f"{key} must be true or false, got {_describe(value)}")

    def str_list(self, key: str) -> list[str] | None:
        value = self.raw(key)
        if value is None:
            return None
        if not isinstance(value, list):
            raise self._fail(key, f"{key} must be a list, got {_describe(value)}")
        out = []
        for item in value:
            if isinstance(item, bool) or not isinstance(item, str | int | float):
                raise self._fail(key, f"{key} items must be strings, got {_describe(item)}")
            out.append(str(item))
        return out

    def str_map(self, key: str) -> dict[str, str]:
        value = self.raw(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self._fail(key, f"{key} must be a mapping, got {_describe(value)}")
        out = {}
        for k, v in value.items():
            if isinstance(v, dict | list) or v is None:
                raise self._fail(key, f"{key}.{k} must be a plain value, got {_describe(v)}")
            out[str(k)] = _scalar_text(v)
        return out

    def warn_unknown(self, known: set[str]) -> None:
        for key in self.mf.data:
            if key not in known:
                self.warnings.append(
                    Warning_(self.mf.path, self.mf.line_of(key), f"unknown key {key!r} ignored")
                )


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _describe(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if value is None:
        return "nothing"
    return repr(value)


# --------------------------------------------------------------------------- compute targets

COMPUTE_KEYS = {
    "type",
    "address",
    "username",
    "password",
    "baseDockerImage",
    "sharedVolumes",
    "nvidiaDocker",
    "nativeSharedDirectory",
    "yarnDeployMode",
    "pythonLocation",
    "sparkSubmitLocation",
    "userManagedEnvironment",
    # A standalone Spark master reached directly (type cluster; backends/spark/backend.py).
    "sparkMaster",
    "deployMode",
    "sparkRestUrl",
    "sparkMasterUi",
    "gpus",
    "port",
    "privateKeyFile",
    "Description",
    "description",
}


def is_placeholder(value: str) -> bool:
    """A template's stand-in rather than a value: ``[AzureML Secret here]``, ``<password>``."""
    text = value.strip()
    return (text.startswith("[") and text.endswith("]")) or (
        text.startswith("<") and text.endswith(">")
    )


@dataclass(frozen=True)
class GpuRequest:
    """What ``gpus:`` (or ``nvidiaDocker: true``) asks for: all GPUs, a count, or device ids."""

    count: int | None = None  # -1 means all
    device_ids: tuple[str, ...] = ()

    @property
    def is_all(self) -> bool:
        return self.count == -1

    def cli_value(self) -> str:
        if self.device_ids:
            return '"device=' + ",".join(self.device_ids) + '"'
        return "all" if self.is_all else str(self.count)


@dataclass(frozen=True)
class Compute:
    name: str
    type: str
    path: Path | None = None
    address: str | None = None
    username: str | None = None
    password: Secret | None = None
    base_docker_image: str = DEFAULT_BASE_IMAGE
    shared_volumes: bool = False
    nvidia_docker: bool = False
    native_shared_directory: str = "~/.azureml/share/"
    yarn_deploy_mode: str = "cluster"
    python_location: str | None = None
    spark_submit_location: str | None = None
    spark_master: str | None = None  # spark://host:port: a standalone cluster, no SSH
    deploy_mode: str = "client"  # where that cluster's driver runs (checked by its backend)
    spark_rest_url: str | None = None
    spark_master_ui: str | None = None
    user_managed_environment: bool = False
    gpus: GpuRequest | None = None
    port: int = 22
    private_key_file: str | None = None
    description: str | None = None
    # A value a template left as a stand-in (an empty address, "[AzureML Secret here]"): the
    # file still lists and shows, the error comes when the target is used (check_usable).
    problem: str | None = None
    problem_line: int | None = None

    @property
    def is_remote(self) -> bool:
        return self.type in REMOTE_TYPES

    def check_usable(self) -> None:
        if self.problem is not None:
            raise ConfigError(self.problem, self.path, self.problem_line)

    def share_dir(self, project_name: str) -> Path | None:
        """The run's ``AZUREML_NATIVE_SHARE_DIRECTORY`` on this machine: a folder per project
        under ``nativeSharedDirectory``, as Workbench made (``<base>/<...>/<project>/``); None
        when the compute sets it empty. Never the base itself, so a compute naming a system
        folder as its share never gets that folder mounted whole."""
        raw = self.native_shared_directory.strip()
        if not raw:
            return None
        return Path(os.path.expanduser(raw)).resolve() / project_name

    def make_share_dir(self, project_name: str) -> None:
        share = self.share_dir(project_name)
        if share is None:
            return
        try:
            share.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise TargetError(f"cannot create nativeSharedDirectory {share}: "
                              f"{err.strerror or err}") from err


def builtin_local() -> Compute:
    """Workbench always offered ``local`` even without a file; so do we."""
    return Compute(name="local", type="local")


def load_compute(path: Path, warnings: list[Warning_]) -> Compute:
    mf = load_mapping(path)
    r = _Reader(mf, warnings)
    raw_type = r.string("type", required=True)
    assert raw_type is not None
    if raw_type not in COMPUTE_TYPES:
        allowed = ", ".join(sorted(COMPUTE_TYPES))
        raise ConfigError(
            f"unknown type {raw_type!r} (one of: {allowed})", path, mf.line_of("type")
        )
    ctype = TYPE_ALIASES.get(raw_type, raw_type)
    address = r.string("address")
    problem: tuple[str, int | None] | None = None
    direct = ctype == "cluster" and "sparkMaster" in mf.data  # a master reached without SSH
    if ctype in REMOTE_TYPES and "address" not in mf.data and not direct:
        raise ConfigError(f"missing required key 'address' for type {raw_type!r}", path, 1)
    if ctype in REMOTE_TYPES and not direct and (
        not (address or "").strip() or is_placeholder(address or "")
    ):
        address = None
        problem = (f"address is empty or a template's placeholder; set the host of target "
                   f"{path.stem!r}", mf.line_of("address"))
    password = _read_password(r, warnings)
    if password is not None and is_placeholder(password.value):
        password = None
        problem = problem or (
            "password is a template's placeholder; re-enter it with 'labdeck target attach' or "
            "use an SSH key", mf.line_of("password"))
    deploy = r.string("yarnDeployMode", "cluster") or "cluster"
    if deploy not in {"cluster", "client"}:
        raise ConfigError(
            f"yarnDeployMode must be 'cluster' or 'client', got {deploy!r}",
            path,
            mf.line_of("yarnDeployMode"),
        )
    port_text = r.string("port", "22") or "22"
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(
            f"port must be a number 1-65535, got {port_text!r}", path, mf.line_of("port")
        )
    nvidia = r.boolean("nvidiaDocker", False)
    gpus = _read_gpus(r)
    if nvidia and gpus is None:
        gpus = GpuRequest(count=-1)  # nvidia-docker exposed every GPU
    if gpus is not None and ctype not in {"docker", "remotedocker"}:
        raise ConfigError(
            f"GPUs are requested but type {raw_type!r} does not run containers",
            path,
            mf.line_of("gpus") or mf.line_of("nvidiaDocker"),
        )
    compute = Compute(
        name=path.stem,
        type=ctype,
        path=path,
        address=address,
        username=r.string("username"),
        password=password,
        base_docker_image=(r.string("baseDockerImage", DEFAULT_BASE_IMAGE) or "").strip()
        or DEFAULT_BASE_IMAGE,
        shared_volumes=r.boolean("sharedVolumes", False),
        nvidia_docker=nvidia,
        native_shared_directory=r.string("nativeSharedDirectory", "~/.azureml/share/") or "",
        yarn_deploy_mode=deploy,
        python_location=r.string("pythonLocation"),
        spark_submit_location=r.string("sparkSubmitLocation"),
        spark_master=r.string("sparkMaster"),
        deploy_mode=r.string("deployMode", "client") or "client",
        spark_rest_url=r.string("sparkRestUrl"),
        spark_master_ui=r.string("sparkMasterUi"),
        user_managed_environment=r.boolean("userManagedEnvironment", ctype == "remote"),
        gpus=gpus,
        port=int(port_text),
        private_key_file=r.string("privateKeyFile"),
        description=r.string("Description") or r.string("description"),
        problem=problem[0] if problem else None,
        problem_line=problem[1] if problem else None,
    )
    r.warn_unknown(COMPUTE_KEYS)
    return compute


def _read_password(r: _Reader, warnings: list[Warning_]) -> Secret | None:
    value = r.string("password")
    if not value:
        return None
    secret = Secret(value)
    line = r.mf.line_of("password")
    if is_placeholder(value) or secret.is_stored:
        return secret  # a placeholder is the target's problem when used; a stored one is fine
    if secret.is_reference:
        warnings.append(
            Warning_(
                r.mf.path,
                line,
                "password is a Workbench key-store reference (AzureMlSecret=...), which labdeck "
                "cannot read; re-enter it with 'labdeck target attach' or use an SSH key",
            )
        )
    else:
        warnings.append(
            Warning_(
                r.mf.path,
                line,
                "clear-text password in a project file; prefer an SSH key or the system keyring",
            )
        )
    return secret


def _read_gpus(r: _Reader) -> GpuRequest | None:
    value = r.raw("gpus")
    line = r.mf.line_of("gpus")
    if value is None:
        return None
    if isinstance(value, bool):
        raise ConfigError("gpus must be 'all', a count or a list of device ids", r.mf.path, line)
    if isinstance(value, int):
        if value < 1:
            raise ConfigError(f"gpus count must be at least 1, got {value}", r.mf.path, line)
        return GpuRequest(count=value)
    if isinstance(value, str):
        text = value.strip()
        if text == "all":
            return GpuRequest(count=-1)
        if text.isdigit() and int(text) > 0:
            return GpuRequest(count=int(text))
        if text.startswith("device="):
            text = text[len("device=") :]
        ids = tuple(part.strip() for part in text.split(",") if part.strip())
        if ids and all(_is_device_id(i) for i in ids):
            return GpuRequest(count=0, device_ids=ids)
        raise ConfigError(f"gpus: cannot read {value!r} (use all, a count or ids)", r.mf.path, line)
    if isinstance(value, list) and value:
        ids = tuple(str(v) for v in value)
        if all(not isinstance(v, bool) and isinstance(v, int | str) for v in value) and all(
            _is_device_id(i) for i in ids
        ):
            return GpuRequest(count=0, device_ids=ids)
    raise ConfigError("gpus must be 'all', a count or a list of device ids", r.mf.path, line)


def _is_device_id(text: str) -> bool:
    # An index ("0") or a UUID ("GPU-2b8f...") as nvidia-smi prints them.
    return text.isdigit() or (text.startswith(("GPU-", "MIG-")) and len(text) > 4)


# --------------------------------------------------------------------------- run configurations

RUNCONFIG_KEYS = {
    "ArgumentVector",
    "Target",
    "Framework",
    "CondaDependenciesFile",
    "SparkDependenciesFile",
    "PrepareEnvironment",
    "TrackedRun",
    "UseSampling",
    "DataSourceSettings",
    "DataSourceSubstitutions",
    "EnvironmentVariables",
    # Real files of the time carry these beside the keys above.
    "ManagedEnvironment",
    "Description",
    "description",
    "userManagedEnvironment",
}
# The older JSON form used other spellings for two of them (used only when the newer key is
# absent: real files carry ManagedEnvironment beside PrepareEnvironment).
JSON_ALIASES = {"CondaFile": "CondaDependenciesFile", "ManagedEnvironment": "PrepareEnvironment"}
# Workbench's reference (Execution Configuration Files, 2017): "PrepareEnvironment: when set to
# true (which is the default value)"; it has no effect on local targets.
DEFAULT_PREPARE_ENVIRONMENT = True
FRAMEWORKS = {"PySpark", "Python"}


@dataclass(frozen=True)
class RunConfig:
    name: str
    target: str
    path: Path | None = None
    argument_vector: tuple[str, ...] = ("$file",)
    framework: str = "Python"
    conda_dependencies_file: str | None = None
    spark_dependencies_file: str | None = None
    prepare_environment: bool = DEFAULT_PREPARE_ENVIRONMENT
    tracked_run: bool = True
    use_sampling: bool = True
    environment_variables: dict[str, str] = field(default_factory=dict)
    data_source_settings: dict[str, Any] = field(default_factory=dict)
    data_source_substitutions: dict[str, Any] = field(default_factory=dict)
    description: str | None = None

    def argv_for(self, script: str | None, extra: list[str]) -> list[str]:
        """The script's argv: ``$file`` is the script named on the command line."""
        argv: list[str] = []
        for item in self.argument_vector:
            if item == "$file":
                if script is None:
                    raise ConfigError(
                        "ArgumentVector uses $file but no script was named", self.path, None
                    )
                argv.append(script)
            else:
                argv.append(item)
        if not argv:
            if script is None:
                raise ConfigError("no script named and ArgumentVector is empty", self.path, None)
            argv.append(script)
        return argv + list(extra)


def load_runconfig(path: Path, warnings: list[Warning_]) -> RunConfig:
    mf = load_mapping(path, allow_json=True)
    r = _Reader(mf, warnings)
    for old, new in JSON_ALIASES.items():
        if old in mf.data and new not in mf.data:
            mf.data[new] = mf.data[old]
            mf.lines[new] = mf.lines.get(old, 1)
        r.seen.add(old)
    target = r.string("Target", required=True)
    assert target is not None
    argv = r.str_list("ArgumentVector")
    framework = r.string("Framework", "PySpark") or "PySpark"
    if framework not in FRAMEWORKS:
        raise ConfigError(
            f"Framework must be PySpark or Python, got {framework!r}", path, mf.line_of("Framework")
        )
    config = RunConfig(
        name=path.stem,
        target=target,
        path=path,
        argument_vector=tuple(argv) if argv is not None else ("$file",),
        framework=framework,
        conda_dependencies_file=r.string("CondaDependenciesFile"),
        spark_dependencies_file=r.string("SparkDependenciesFile"),
        prepare_environment=r.boolean("PrepareEnvironment", DEFAULT_PREPARE_ENVIRONMENT),
        tracked_run=r.boolean("TrackedRun", True),
        use_sampling=r.boolean("UseSampling", True),
        environment_variables=r.str_map("EnvironmentVariables"),
        data_source_settings=_mapping(r, "DataSourceSettings"),
        data_source_substitutions=_mapping(r, "DataSourceSubstitutions"),
        description=r.string("Description") or r.string("description"),
    )
    r.boolean("userManagedEnvironment", False)  # checked, not used: labdeck builds no env there
    r.warn_unknown(RUNCONFIG_KEYS)
    return config


def _mapping(r: _Reader, key: str) -> dict[str, Any]:
    value = r.raw(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(
            f"{key} must be a mapping, got {_describe(value)}", r.mf.path, r.mf.line_of(key)
        )
    return value


# --------------------------------------------------------------------------- dependency files


@dataclass(frozen=True)
class CondaDeps:
    path: Path
    name: str | None
    channels: tuple[str, ...]
    conda_packages: tuple[str, ...]
    pip_packages: tuple[str, ...]

    @property
    def installable_conda_packages(self) -> tuple[str, ...]:
        """The conda section less the interpreter and pip themselves (the image has both),
        told apart by the parsed package name: ``python-dateutil`` is a package to install,
        ``python=3.5.2`` a pin."""
        return tuple(p for p in self.conda_packages if conda_name(p) not in {"python", "pip"})


def conda_name(spec: str) -> str:
    """The package name of a conda match spec: ``conda-forge::numpy>=1.2`` -> ``numpy``."""
    import re  # dependency files only: not on the submit path

    spec = spec.strip().rpartition("::")[2]
    match = re.match(r"[A-Za-z0-9_.\-]+", spec)
    return match.group(0).lower() if match else spec.lower()


def load_conda_deps(path: Path, warnings: list[Warning_]) -> CondaDeps:
    mf = load_mapping(path, allow_empty=True)
    r = _Reader(mf, warnings)
    name = r.string("name")
    channels = r.str_list("channels") or []
    deps = r.raw("dependencies") or []
    line = mf.line_of("dependencies")
    if not isinstance(deps, list):
        raise ConfigError(f"dependencies must be a list, got {_describe(deps)}", path, line)
    conda: list[str] = []
    pip: list[str] = []
    for item in deps:
        if isinstance(item, str):
            conda.append(item)
        elif isinstance(item, dict) and set(item) == {"pip"} and isinstance(item["pip"], list):
            for spec in item["pip"]:
                if not isinstance(spec, str):
                    raise ConfigError(
                        f"pip entries must be strings, got {_describe(spec)}", path, line
                    )
                if spec.strip().startswith("-"):
                    raise ConfigError(
                        f"pip entry {spec.strip()!r} is a pip option, not a package: labdeck's "
                        "build takes packages only (set PIP_INDEX_URL / PIP_EXTRA_INDEX_URL on "
                        "this machine: the build uses them)", path, entry_line(path, spec, line))
                pip.append(spec.strip())
        else:
            raise ConfigError(
                "dependencies entries must be package specs or '- pip: [...]', "
                f"got {_describe(item)}",
                path,
                line,
            )
    r.warn_unknown({"name", "channels", "dependencies", "prefix"})
    return CondaDeps(path, name, tuple(channels), tuple(conda), tuple(pip))


def entry_line(path: Path, entry: str, fallback: int | None = None) -> int | None:
    """The line of a list entry (mappings keep only their keys' lines)."""
    try:
        for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if entry.strip() in text and text.lstrip().startswith("-"):
                return number
    except OSError:
        pass
    return fallback


@dataclass(frozen=True)
class SparkPackage:
    group: str
    artifact: str
    version: str

    @property
    def coordinate(self) -> str:
        return f"{self.group}:{self.artifact}:{self.version}"


@dataclass(frozen=True)
class SparkDeps:
    path: Path
    configuration: dict[str, str]
    repositories: tuple[str, ...]
    packages: tuple[SparkPackage, ...]


def load_spark_deps(path: Path, warnings: list[Warning_]) -> SparkDeps:
    mf = load_mapping(path, allow_empty=True)
    r = _Reader(mf, warnings)
    configuration = r.str_map("configuration")
    repositories = r.str_list("repositories") or []
    raw_packages = r.raw("packages") or []
    line = mf.line_of("packages")
    if not isinstance(raw_packages, list):
        raise ConfigError(f"packages must be a list, got {_describe(raw_packages)}", path, line)
    packages = []
    for item in raw_packages:
        if not isinstance(item, dict):
            raise ConfigError(
                f"packages entries must be mappings, got {_describe(item)}", path, line
            )
        missing = [k for k in ("group", "artifact", "version") if not item.get(k)]
        if missing:
            raise ConfigError(f"package entry lacks {', '.join(missing)}", path, line)
        packages.append(
            SparkPackage(str(item["group"]), str(item["artifact"]), str(item["version"]))
        )
    r.warn_unknown({"configuration", "repositories", "packages"})
    return SparkDeps(path, configuration, tuple(repositories), tuple(packages))
