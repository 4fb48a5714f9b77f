"""What a docker target's environment image is made of, and the tag that names it.

The tag is ``labdeck-env/shared:<hash12>``, the hash covering the base image's id, the
dependencies (as parsed, so comments do not rebuild) and the recipe's version, and nothing of
the project: two projects with the same inputs share one image. A dependency that names a path
(``./lib``, ``file:...``, ``-e ...``) is the project's own content, so such an environment keeps a
per-project tag, ``labdeck-env/<project>:<hash12>`` (also what every image was tagged before;
those older images are not looked up: the first prepare builds the shared one, or
``docker tag labdeck-env/<project>:<hash12> labdeck-env/shared:<hash12>`` reuses one). Kept apart
from the build (docker/image.py) so a run's start can find its image without loading asyncio.
"""

from __future__ import annotations

import json
import re

from .._records import dataclass
from .._sha256 import sha256
from ..config import CondaDeps, conda_name
from ..errors import PrepareError

RECIPE_VERSION = "1"
# What a PySpark environment adds (docker/image.py): bump when that recipe changes.
SPARK_RECIPE = "openjdk-17-jre-headless+pyspark-wheel-1"
SHARED_REPOSITORY = "labdeck-env/shared"
_LOCAL_PREFIXES = (".", "/", "~", "file:", "-e", "--editable", "-r", "--requirement")


def names_a_path(requirement: str) -> bool:
    """A pip entry that installs from the project's (or this machine's) files."""
    text = requirement.strip()
    if text.startswith(_LOCAL_PREFIXES):
        return True
    return "://" not in text and ("/" in text or "\\" in text)


@dataclass(frozen=True)
class EnvSpec:
    """What goes into the image, as parsed from the project."""

    project: str  # the project's root path (a label) ...
    project_name: str  # ... and its short name (the tag's repository)
    base: str
    pip: tuple[str, ...] = ()
    conda: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    offline: bool = False
    python_pin: str | None = None  # "python=3.5.2" of the conda file (the image's Python wins)
    conda_file: str | None = None  # conda_dependencies.yml's path: errors about an entry cite it
    spark: bool = False  # Framework PySpark: a Java runtime and pyspark go in (docker/image.py)

    def digest(self, base_id: str) -> str:
        inputs: dict[str, object] = {"recipe": RECIPE_VERSION, "base": base_id,
                                     "pip": list(self.pip), "conda": list(self.conda),
                                     "channels": list(self.channels)}
        if self.spark:  # only then: the other environments keep their tags
            inputs["spark"] = SPARK_RECIPE
        return sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()

    @property
    def repository(self) -> str:
        """Shared between projects, unless a dependency is a path (the project's content)."""
        if any(names_a_path(p) for p in self.pip):
            return self.project_repository
        return SHARED_REPOSITORY

    @property
    def project_repository(self) -> str:
        repo = re.sub(r"[^a-z0-9._-]+", "-", self.project_name.lower()).strip("-._") or "project"
        return f"labdeck-env/{repo}"

    def tag(self, digest: str) -> str:
        return f"{self.repository}:{digest[:12]}"

    def env_tag(self, base_id: str) -> str | None:
        """The environment image's tag; None when there is nothing to install (the base image
        is the environment)."""
        if not self.pip and not self.conda and not self.spark:
            return None
        return self.tag(self.digest(base_id))

    def offline_copy(self) -> EnvSpec:
        return EnvSpec(self.project, self.project_name, self.base, self.pip, self.conda,
                       self.channels, offline=True, python_pin=self.python_pin,
                       conda_file=self.conda_file, spark=self.spark)

    def with_pip(self, pip: tuple[str, ...]) -> EnvSpec:
        """The conda section installed with pip (a base image without conda)."""
        return EnvSpec(self.project, self.project_name, self.base, pip, (), self.channels,
                       self.offline, self.python_pin, self.conda_file, self.spark)


def spec_for(project_root: object, project_name: str, base: str,
             conda: CondaDeps | None, spark: bool = False) -> EnvSpec:
    return EnvSpec(
        project=str(project_root), project_name=project_name, base=base,
        pip=conda.pip_packages if conda else (),
        conda=conda.installable_conda_packages if conda else (),
        channels=conda.channels if conda else (),
        python_pin=next((p.strip() for p in conda.conda_packages if conda_name(p) == "python"),
                        None) if conda else None,
        conda_file=str(conda.path) if conda else None,
        spark=spark,
    )


# conda package names whose PyPI name differs (the common ones in Workbench-era files).
CONDA_TO_PIP = {"pytorch": "torch", "py-xgboost": "xgboost", "pytables": "tables",
                "msgpack-python": "msgpack", "python-graphviz": "graphviz"}


def conda_as_pip(spec: str) -> tuple[str, str, str | None]:
    """A conda match spec as (pip name, pip requirement, exact version asked or None):
    ``scikit-learn=0.18.1`` -> ``("scikit-learn", "scikit-learn==0.18.1", "0.18.1")``."""
    text = spec.strip().rpartition("::")[2].split("[", 1)[0].strip()
    match = re.match(r"([A-Za-z0-9_.\-]+)\s*(.*)$", text)
    name, rest = (match.group(1), match.group(2).strip()) if match else (text, "")
    name = CONDA_TO_PIP.get(name.lower(), name)
    rest = rest.split()[0] if rest else ""  # "1.2 py35_0": the build string is conda's own
    if not rest:
        return name, name, None
    if rest[0] == "=":  # conda's "=1.2" / "==1.2": a pip pin
        rest = rest.lstrip("=")
    if rest and rest[0].isdigit():
        return name, f"{name}=={rest}", rest.removesuffix(".*")
    return name, name + rest, None



def missing_base(base: str) -> PrepareError:
    return PrepareError(f"base image {base!r} not found on the Docker daemon: pull it (docker "
                        f"pull {base}) or build it (scripts/build-base-image.sh builds the "
                        "default)")
