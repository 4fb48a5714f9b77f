"""Why a run failed, in one line: the reason the engine recorded (a run that failed before its
script started, a lost supervisor), else the last error line of its log (the exception); and what
an exit code means (-9 / 137: killed; out of memory when Docker says so). Plain Python: the CLI's
``runs show`` uses it too."""

from __future__ import annotations

import re
import signal
from pathlib import Path

from backends.logfile import LogEntry, last_lines
from backends.status import RunStatus
from backends.store import RunRecord

TAIL_LINES = 200  # how far back from the log's end the exception is looked for
EXCEPTION = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Fault|Failure)\b")
OOM_WORDS = ("oom", "out of memory")


def last_error_line(log_path: Path) -> str | None:
    """The last ``err`` line that names an exception (``ValueError: ...``), else the last
    non-blank ``err`` line, else the last ``sys`` line saying ``error:``."""
    try:
        lines, _end = last_lines(log_path, TAIL_LINES)
    except OSError:
        return None
    errs: list[str] = []
    sys_errors: list[str] = []
    for raw in lines:
        entry = LogEntry.parse(raw)
        text = entry.text.strip()
        if entry.stream == "err" and text:
            errs.append(text)
        elif entry.stream == "sys" and text.startswith("error:"):
            sys_errors.append(text[len("error:"):].strip())
    named = [t for t in errs if EXCEPTION.match(t)]
    for found in (named, errs, sys_errors):
        if found:
            return found[-1]
    return None


def failure_reason(record: RunRecord, log_path: Path) -> str | None:
    """One line saying why a failed run failed; None for a run that did not fail."""
    if record.status is not RunStatus.FAILED:
        return None
    if record.exit_code is not None:  # the script ran: its exception says more than a code
        return last_error_line(log_path) or record.error or explain_exit(record.exit_code,
                                                                         None)
    return record.error or last_error_line(log_path)


def explain_exit(code: int | None, error: str | None) -> str:
    """An exit code with what it means."""
    if code is None:
        return "-"
    oom = error is not None and any(w in error.lower() for w in OOM_WORDS)
    if code == 0:
        return "0"
    number = -code if code < 0 else code - 128 if 128 < code < 128 + 65 else 0
    if number:
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        if oom:
            return f"{code} (killed: out of memory)"
        if number == signal.SIGKILL:
            return f"{code} (killed by {name}: out of memory or kill -9)"
        return f"{code} (killed by {name})"
    return f"{code} (out of memory)" if oom else f"{code} (the script's exit status)"
