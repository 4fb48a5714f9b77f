"""What YARN's tools say, without I/O: the application id and final state in spark-submit's
output (Spark's ``Client`` logs them on stderr in both deploy modes), the ``yarn`` commands a
head node runs (kill, logs), and ``yarn logs`` output split into each container's files, the
driver's (the ApplicationMaster's container in cluster mode) told apart.

Formats as Hadoop 2.x and 3.x print them (``Log Contents:`` / ``LogContents:``); the tests feed
recorded outputs (tests/spark/recorded/), since YARN itself cannot run on this machine kind."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_SUBMITTED = re.compile(r"Submitted application (application_\d+_\d+)")
_REPORT = re.compile(r"Application report for (application_\d+_\d+) \(state: (\w+)\)")
_FINAL = re.compile(r"^\s*final status: (\w+)")
_TRACKING = re.compile(r"^\s*tracking URL: (\S+)")
_CONTAINER = re.compile(r"^Container: (container_(?:e\d+_)?(\d+_\d+)_(\d+)_(\d+)) on (\S+)")
_LOGTYPE = re.compile(r"^LogType:\s*(\S+)")
_CONTENTS = ("Log Contents:", "LogContents:")
HINTS = ("application_", "final status", "tracking URL")
TERMINAL_STATES = {"FINISHED", "FAILED", "KILLED"}


def kill_command(app_id: str) -> list[str]:
    return ["yarn", "application", "-kill", app_id]


def logs_command(app_id: str) -> list[str]:
    return ["yarn", "logs", "-applicationId", app_id]


@dataclass
class ClientFacts:
    """What spark-submit's YARN client said so far, fed its stderr lines as they pass."""

    app_id: str | None = None
    state: str | None = None
    final_status: str | None = None
    tracking_url: str | None = None

    def feed(self, line: str) -> list[tuple[str, str]]:
        """The facts this line tells, as (key, value): app_id, yarn_state, final_status,
        tracking_url (a fact repeated in every report is returned each time)."""
        if not any(hint in line for hint in HINTS):
            return []
        if (m := _SUBMITTED.search(line)) is not None:
            self.app_id = m.group(1)
            return [("app_id", self.app_id)]
        if (m := _REPORT.search(line)) is not None:
            self.app_id = self.app_id or m.group(1)
            self.state = m.group(2)
            return [("yarn_state", self.state)]
        if (m := _FINAL.match(line)) is not None:
            self.final_status = m.group(1)
            return [("final_status", self.final_status)]
        if (m := _TRACKING.match(line)) is not None and m.group(1) != "N/A":
            self.tracking_url = m.group(1)
            return [("tracking_url", self.tracking_url)]
        return []


def app_id_in(text: str) -> str | None:
    """The first application id spark-submit's output names."""
    m = _SUBMITTED.search(text) or _REPORT.search(text)
    return m.group(1) if m else None


@dataclass
class ContainerLog:
    container: str
    attempt: int
    number: int
    host: str
    files: dict[str, str] = field(default_factory=dict)  # log type -> contents


def parse_logs(text: str) -> list[ContainerLog]:
    """``yarn logs -applicationId ID`` output: each container's log files, in order."""
    containers: dict[str, ContainerLog] = {}
    current: ContainerLog | None = None
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if (m := _CONTAINER.match(line)) is not None:
            current = containers.setdefault(
                m.group(1), ContainerLog(m.group(1), int(m.group(3)), int(m.group(4)),
                                         m.group(5)))
            i += 1
            continue
        if current is not None and (m := _LOGTYPE.match(line)) is not None:
            log_type = m.group(1)
            i += 1
            while i < len(lines) and lines[i].strip() not in _CONTENTS:
                i += 1  # LogLastModifiedTime, Log Upload Time, LogLength
            i += 1
            end_marker = f"End of LogType:{log_type}"
            body: list[str] = []
            while i < len(lines) and not lines[i].startswith(end_marker):
                body.append(lines[i])
                i += 1
            # The contents end with a newline of their own before the end marker's line.
            content = "\n".join(body)
            current.files[log_type] = content
            i += 1
            continue
        i += 1
    return list(containers.values())


def driver_log(containers: list[ContainerLog]) -> ContainerLog | None:
    """The ApplicationMaster's container of the last attempt: container number 1 (in cluster
    mode the driver runs there; its stdout holds the script's prints)."""
    masters = [c for c in containers if c.number == 1]
    return max(masters, key=lambda c: c.attempt) if masters else None
