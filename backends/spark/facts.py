"""What a run's Spark log tells about it (application id, driver id, UI address), read from
Spark's log4j lines as they pass, said once each in the run's log (``sys`` lines) and kept in
the run's folder as ``spark.json`` for details views and a later reattach."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from ..errors import ScriptFailed

FACTS_FILE = "spark.json"
_APP_ID = re.compile(r"Connected to Spark cluster with app ID (\S+)")
_UI_HOST = re.compile(r"Start Jetty (\S+):(\d+) for SparkUI")
_UI_PORT = re.compile(r"Successfully started service 'SparkUI' on port (\d+)")
_ANY_HOST = frozenset({"0.0.0.0", "::", "[::]", "*", ""})
# Cheap tests first: most of Spark's lines hold neither.
_HINTS = ("app ID", "SparkUI")


class SparkFacts:
    def __init__(self, run_dir: Path | None, initial: dict[str, str] | None = None,
                 ui_host: str = "localhost"):
        """``ui_host``: the driver's machine as this one reaches it, named in the UI's address
        when Spark binds every interface (0.0.0.0, which a browser will not open)."""
        self.run_dir = run_dir
        self.facts: dict[str, str] = dict(initial or {})
        self._default_host = ui_host
        self._ui_host = ui_host
        if initial:
            self._save()

    def scan(self, lines: list[str]) -> list[str]:
        """The notes worth a ``sys`` line among ``lines`` (stderr of spark-submit or of a
        driver): each fact once, saved as it is found."""
        notes: list[str] = []
        for line in lines:
            if not any(hint in line for hint in _HINTS):
                continue
            if (m := _APP_ID.search(line)) is not None:
                notes += self.add("app_id", m.group(1), f"spark application {m.group(1)}")
            elif (m := _UI_HOST.search(line)) is not None:
                host = m.group(1)
                self._ui_host = self._default_host if host in _ANY_HOST else host
            elif (m := _UI_PORT.search(line)) is not None:
                url = f"http://{self._ui_host}:{m.group(1)}"
                notes += self.add("ui_url", url, f"spark UI {url}")
        return notes

    def add(self, key: str, value: str, note: str) -> list[str]:
        if self.facts.get(key) == value:
            return []
        self.facts[key] = value
        self._save()
        return [note]

    def _save(self) -> None:
        if self.run_dir is None:
            return
        tmp = self.run_dir / (FACTS_FILE + ".tmp")
        tmp.write_text(json.dumps(self.facts, indent=2))
        os.replace(tmp, self.run_dir / FACTS_FILE)


def load_facts(run_dir: Path) -> dict[str, str]:
    try:
        data = json.loads((run_dir / FACTS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


# Why a Spark driver failed, when its output says it plainly: said as the run's one-line reason
# (the handle's wait raises it) instead of an exit code.
_SYSTEM_MEMORY = re.compile(r"System memory (\d+) must be at least (\d+)")
_OOM = re.compile(r"java\.lang\.OutOfMemoryError(?::\s*([^\"\n]*))?")
_UNRESOLVED = re.compile(r"unresolved dependency: ([^\s\]:]+(?:;[^\s\]:]+)?)(?::\s*([^\]]+))?")
_THREAD = re.compile(r'^Exception in thread "[^"]*" (\S.*)$')
_NO_MODULE = re.compile(r"(?:ModuleNotFoundError|ImportError): (No module named '?[\w.]+'?)")


def failure_hint(line: str) -> str | None:
    """The reason a line of a driver's output (either stream) gives for its failure."""
    if "must be at least" in line and (m := _SYSTEM_MEMORY.search(line)) is not None:
        return (f"the driver's memory is too small: {int(m.group(1)) >> 20} MB, Spark needs at "
                f"least {int(m.group(2)) >> 20} MB (raise spark.driver.memory in "
                "spark_dependencies.yml)")
    if "OutOfMemoryError" in line and (m := _OOM.search(line)) is not None:
        what = (m.group(1) or "").strip()
        return (f"the driver ran out of memory (java.lang.OutOfMemoryError"
                f"{': ' + what if what else ''}): raise spark.driver.memory in "
                "spark_dependencies.yml, or collect less to the driver")
    if "unresolved dependency" in line and (m := _UNRESOLVED.search(line)) is not None:
        what = f"{m.group(1)}: {m.group(2).strip()}" if m.group(2) else m.group(1)
        return (f"a Spark package could not be fetched ({what}): check packages and "
                "repositories in spark_dependencies.yml (where spark-submit runs must reach "
                "the repository)")
    if "No module named" in line and (m := _NO_MODULE.search(line)) is not None:
        return (f"a Python dependency is missing where the driver runs ({m.group(1)}): add it "
                "to the run's conda_dependencies.yml")
    return None


_EXCEPTION = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b(: .*)?$")


class FailureWatch:
    """Why a Spark driver failed, read from its output as it passes: the first plain hint (a
    driver's OOM wins over what follows it), else the last exception line (a PySpark driver's
    traceback comes on spark-submit's stdout, merged there by PythonRunner)."""

    def __init__(self) -> None:
        self.hint: str | None = None
        self.exception: str | None = None

    def feed(self, lines: list[str]) -> None:
        for line in lines:
            if line[:1].isalpha() and ("Error" in line or "Exception" in line):
                if _EXCEPTION.match(line):
                    self.exception = line.strip()
                elif (m := _THREAD.match(line)) is not None:  # the JVM's own end
                    self.exception = m.group(1).strip()
            if self.hint is None and ("must be" in line or "OutOfMemory" in line
                                      or "No module" in line or "unresolved" in line):
                self.hint = failure_hint(line)

    @property
    def reason(self) -> str | None:
        if self.hint is not None:
            return self.hint
        return f"the script failed: {self.exception}" if self.exception else None


class DriverFailed(ScriptFailed):
    """A driver that ran and failed for a reason its output names: the run's one-line error.
    ``run_exit_code`` is its exit code and ``outputs`` what its outputs/ held (collected before
    this is raised, so that a failed run keeps its files as on every other target)."""

    def __init__(self, reason: str, code: int, outputs: list[str]):
        super().__init__(f"{reason} (exit code {code})", code)
        self.outputs = outputs
