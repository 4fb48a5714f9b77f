"""A project: a folder holding ``aml_config/``; its state lives under ``<project>/.labdeck/``."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from ._records import dataclass, field
from .config import (
    Compute,
    CondaDeps,
    RunConfig,
    SparkDeps,
    Warning_,
    builtin_local,
    load_compute,
    load_conda_deps,
    load_runconfig,
    load_spark_deps,
)
from .errors import ConfigError, LabdeckError, ProjectNotFound, UsageError
from .yamlfile import cached_mappings

TYPE_CHECKING = False  # importing typing costs ~3 ms of a submit; annotations need none
if TYPE_CHECKING:
    from typing import TypeVar

    D = TypeVar("D")

_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-")
CONFIG_DIR = "aml_config"
STATE_DIR = ".labdeck"
CONFIG_CACHE = "config-cache.json"  # parsed aml_config files (yamlfile.MappingCache)


@dataclass
class Target:
    """What ``-c NAME`` resolved to: a compute, the runconfig for it and its dependency files."""

    compute: Compute
    runconfig: RunConfig
    conda: CondaDeps | None
    spark: SparkDeps | None
    warnings: list[Warning_] = field(default_factory=list)


@dataclass
class TargetView:
    """What ``target show`` and ``target list`` tell of one target: its compute even when the
    runconfig of the same name is broken or names another target (that becomes a note)."""

    name: str
    compute: Compute | None
    runconfig: RunConfig | None
    warnings: list[str] = field(default_factory=list)
    error: str | None = None  # the compute's file does not load: one line


class Project:
    def __init__(self, root: Path):
        self.root = root.resolve()
        self.config_dir = self.root / CONFIG_DIR
        self.state_dir = self.root / STATE_DIR

    @property
    def name(self) -> str:
        # Run ids are "<project>_<epoch-ms>"; keep the name safe for file and container names:
        # each run of other characters becomes one "-" (as re.sub(r"[^A-Za-z0-9.-]+", "-")
        # would, without compiling a pattern at every submit's start).
        out: list[str] = []
        gap = False
        for char in self.root.name:
            if char in _NAME_CHARS:
                out.append(char)
                gap = False
            elif not gap:
                out.append("-")
                gap = True
        return "".join(out).strip("-") or "project"

    @property
    def runs_dir(self) -> Path:
        return self.state_dir / "runs"

    @property
    def db_path(self) -> Path:
        return self.state_dir / "runs.db"

    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / run_id

    def ensure_state(self) -> None:
        self.runs_dir.mkdir(parents=True, exist_ok=True)

    # ---------------------------------------------------------------- config files

    def compute_names(self) -> list[str]:
        names = {p.stem for p in self.config_dir.glob("*.compute")}
        names.add("local")
        return sorted(names)

    def runconfig_names(self) -> list[str]:
        return sorted(p.stem for p in self.config_dir.glob("*.runconfig"))

    def load_compute(self, name: str, warnings: list[Warning_]) -> Compute:
        path = self.config_dir / f"{name}.compute"
        if path.is_file():
            return load_compute(path, warnings)
        if name == "local":
            return builtin_local()
        raise UsageError(f"unknown target {name!r} (known: {', '.join(self.compute_names())})")

    def resolve(self, name: str) -> Target:
        """``-c NAME``: a runconfig name or a compute name, as Workbench accepted both. The
        target is to be used: a template's placeholder in its compute is an error now."""
        with cached_mappings(self.state_dir / CONFIG_CACHE):
            target = self._resolve(name)
        target.compute.check_usable()
        return target

    def view(self, name: str) -> TargetView:
        """``target show NAME``: the compute NAME (else the one NAME.runconfig names); a broken
        NAME.runconfig, or one naming another target, is a warning; errors of the compute's own
        file are raised."""
        with cached_mappings(self.state_dir / CONFIG_CACHE):
            return self._view(name)

    def views(self) -> list[TargetView]:
        """``target list``: every compute, each loaded on its own (a bad file is its row)."""
        out = []
        with cached_mappings(self.state_dir / CONFIG_CACHE):
            for name in self.compute_names():
                try:
                    out.append(self._view(name))
                except LabdeckError as err:
                    out.append(TargetView(name, None, None, error=str(err)))
        return out

    def _view(self, name: str) -> TargetView:
        has_compute = (self.config_dir / f"{name}.compute").is_file() or name == "local"
        rc_path = self.config_dir / f"{name}.runconfig"
        if not has_compute:
            target = self._resolve(name)  # via the runconfig: its errors are the target's
            told = [str(w) for w in target.warnings]
            if target.compute.problem:
                told.append(_problem_line(target.compute))
            return TargetView(name, target.compute, target.runconfig, told)
        warnings: list[Warning_] = []
        compute = self.load_compute(name, warnings)
        runconfig: RunConfig | None = None
        notes: list[str] = []
        if rc_path.is_file():
            try:
                rc_warnings: list[Warning_] = []
                runconfig = load_runconfig(rc_path, rc_warnings)
                warnings += rc_warnings
                if runconfig.target != name:
                    notes.append(f"{rc_path}:{_line(rc_path, 'Target')}: runs on target "
                                 f"{runconfig.target!r}, not {name!r}")
            except ConfigError as err:
                notes.append(f"{err} (the runconfig is not used until fixed)")
        notes = [str(w) for w in warnings] + notes
        if compute.problem:
            notes.append(_problem_line(compute))
        return TargetView(name, compute, runconfig, notes)

    def _resolve(self, name: str) -> Target:
        warnings: list[Warning_] = []
        rc_path = self.config_dir / f"{name}.runconfig"
        if rc_path.is_file():
            runconfig = load_runconfig(rc_path, warnings)
            if not (self.config_dir / f"{runconfig.target}.compute").is_file() and (
                runconfig.target != "local"
            ):
                raise ConfigError(
                    f"Target {runconfig.target!r} has no {runconfig.target}.compute "
                    f"in {CONFIG_DIR}/",
                    rc_path,
                    _line(rc_path, "Target"),
                )
            compute = self.load_compute(runconfig.target, warnings)
        else:
            compute = self.load_compute(name, warnings)
            runconfig = self._default_runconfig(compute)
        conda = self._dependency(
            runconfig.conda_dependencies_file,
            "conda_dependencies.yml",
            runconfig,
            warnings,
            load_conda_deps,
        )
        spark = None
        if runconfig.framework == "PySpark" or compute.type == "cluster":  # Spark runs only
            spark = self._dependency(
                runconfig.spark_dependencies_file,
                "spark_dependencies.yml",
                runconfig,
                warnings,
                load_spark_deps,
            )
        return Target(compute, runconfig, conda, spark, warnings)

    def _default_runconfig(self, compute: Compute) -> RunConfig:
        framework = "PySpark" if compute.type == "cluster" else "Python"
        return RunConfig(
            name=compute.name,
            target=compute.name,
            framework=framework,
            prepare_environment=compute.type != "local",
        )

    def _dependency(
        self,
        named: str | None,
        default_name: str,
        runconfig: RunConfig,
        warnings: list[Warning_],
        loader: Callable[[Path, list[Warning_]], D],
    ) -> D | None:
        if named:
            path = self.root / named.strip()
            if not path.is_file():
                key = ("CondaDependenciesFile" if loader is load_conda_deps
                       else "SparkDependenciesFile")
                line = _line(runconfig.path, key) if runconfig.path else None
                raise ConfigError(f"dependency file {named!r} not found", runconfig.path, line)
            return loader(path, warnings)
        path = self.config_dir / default_name
        return loader(path, warnings) if path.is_file() else None


def _line(path: Path, key: str) -> int | None:
    """The line of a top-level key (the file is parsed already: the cache or the parser's
    answer again)."""
    from .yamlfile import load_mapping

    try:
        return load_mapping(path, allow_json=path.suffix == ".runconfig").line_of(key)
    except ConfigError:
        return None


def _problem_line(compute: Compute) -> str:
    where = f"{compute.path}:{compute.problem_line}" if compute.problem_line else str(compute.path)
    return f"{where}: {compute.problem} (an error when the target is used)"


def find_project(start: Path | None = None, explicit: Path | None = None) -> Project:
    """The folder with ``aml_config/`` from ``start`` upwards, or ``explicit`` (``--project``)."""
    if explicit is not None:
        root = explicit.expanduser()
        if not root.is_dir():
            raise ProjectNotFound(f"--project {explicit}: no such folder")
        if not (root / CONFIG_DIR).is_dir():
            raise ProjectNotFound(f"--project {explicit}: no {CONFIG_DIR}/ folder in it")
        return Project(root)
    here = (start or Path(os.getcwd())).resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_DIR).is_dir():
            return Project(folder)
    raise ProjectNotFound(
        f"no {CONFIG_DIR}/ folder in {here} or above; run inside a project or pass --project DIR"
    )
