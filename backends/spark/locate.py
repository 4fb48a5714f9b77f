"""Where a target's spark-submit and Java are: one line saying how to get them when missing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from ..config import Compute
from ..errors import TargetError

HOW_TO_GET_SPARK = (
    "install pyspark in the target's Python (pip install pyspark: Spark 4 needs Java 17+), "
    "or set sparkSubmitLocation in the compute file"
)
_FIND_PYSPARK = (
    "import importlib.util as u; s = u.find_spec('pyspark'); "
    "print(s.submodule_search_locations[0] if s and s.submodule_search_locations else '')"
)


def pyspark_home(python: str) -> Path | None:
    """The pyspark package of ``python`` (pip's pyspark is a whole Spark: bin/spark-submit,
    jars/), found without importing it."""
    if os.path.realpath(python) == os.path.realpath(sys.executable):
        import importlib.util

        spec = importlib.util.find_spec("pyspark")
        found = spec.submodule_search_locations[0] if spec and spec.submodule_search_locations \
            else ""
    else:
        try:
            # stdin closed: the supervisor's (or a TUI's terminal) is not the probe's to read.
            found = subprocess.run([python, "-c", _FIND_PYSPARK], capture_output=True,
                                   stdin=subprocess.DEVNULL, text=True,
                                   timeout=30).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            found = ""
    return Path(found) if found else None


def spark_submit(compute: Compute, python: str) -> str:
    """``sparkSubmitLocation`` when the compute names one (it must exist), else the pyspark
    package's of the target's Python, else $SPARK_HOME's, else one on PATH."""
    where = f" ({compute.path})" if compute.path else ""
    if compute.spark_submit_location:
        found = shutil.which(os.path.expanduser(compute.spark_submit_location))
        if found is None:
            raise TargetError(f"sparkSubmitLocation {compute.spark_submit_location!r} not "
                              f"found{where}; {HOW_TO_GET_SPARK}")
        return found
    home = pyspark_home(python)
    candidates = [home / "bin" / "spark-submit"] if home is not None else []
    if os.environ.get("SPARK_HOME"):
        candidates.append(Path(os.environ["SPARK_HOME"]) / "bin" / "spark-submit")
    for candidate in candidates:
        if os.access(candidate, os.X_OK):
            return str(candidate)
    on_path = shutil.which("spark-submit")
    if on_path is not None:
        return on_path
    raise TargetError(f"Framework PySpark needs Spark: no spark-submit for {python}{where}; "
                      f"{HOW_TO_GET_SPARK}")


def check_java() -> None:
    """spark-submit without Java says "JAVA_HOME is not set" among its own lines: say it first."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and os.access(Path(java_home) / "bin" / "java", os.X_OK):
        return
    if shutil.which("java") is None:
        raise TargetError("Spark needs Java 17+: no java on PATH and JAVA_HOME is not set "
                          "(apt-get install openjdk-17-jre-headless)")


def app_resource(spark_submit_path: str) -> str:
    """A jar that exists where the driver runs, for the REST create request: Spark's own core
    jar of this installation (its workers use the same layout when they run this Spark)."""
    jars = Path(os.path.realpath(spark_submit_path)).parent.parent / "jars"
    for jar in sorted(jars.glob("spark-core_*.jar")):
        return f"file:{jar}"
    raise TargetError(f"no spark-core jar under {jars}: cluster mode's REST request needs one")
