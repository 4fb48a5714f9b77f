"""``runs/<id>/run.json``: the frozen facts of one submit (argv, env, workdir, target name).

Written by the client before the supervisor starts, read by every supervisor of that run, so a
restarted supervisor drives the very same run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ._records import as_dict, dataclass, field


@dataclass
class RunSpec:
    run_id: str
    target: str  # what -c named (runconfig or compute name)
    argv: list[str]
    env: dict[str, str]
    workdir: str
    snapshot: bool  # False when the project is used in place (sharedVolumes)
    trigger: list[str] = field(default_factory=list)
    # What the supervisor says in the run's log as it starts (a setting labdeck does not apply).
    notes: list[str] = field(default_factory=list)
    # The runconfig's Framework at submit: "PySpark" runs go through spark-submit.
    framework: str = "Python"

    def save(self, run_dir: Path) -> None:
        tmp = run_dir / "run.json.tmp"
        tmp.write_text(json.dumps(as_dict(self), indent=2))
        os.replace(tmp, run_dir / "run.json")  # never half-written

    @classmethod
    def load(cls, run_dir: Path) -> RunSpec:
        return cls(**json.loads((run_dir / "run.json").read_text()))
