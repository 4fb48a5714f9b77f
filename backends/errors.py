"""The project's exception tree. The CLI prints ``str(err)`` on one line; the TUI shows it."""

from __future__ import annotations

from pathlib import Path


def one_line(err: BaseException) -> str:
    """The first line of an error's message (its type when it has none): how any failure is
    shown in a notification, a table cell or a watch event."""
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


class LabdeckError(Exception):
    """Base of every error labdeck reports to a person. ``exit_code`` is the CLI's status."""

    exit_code = 1


class ConfigError(LabdeckError):
    """A project file is malformed, has a wrong type or lacks a required key."""

    exit_code = 2

    def __init__(self, message: str, path: Path | str | None = None, line: int | None = None):
        self.message = message
        self.path = Path(path) if path is not None else None
        self.line = line
        super().__init__(self._render())

    def _render(self) -> str:
        if self.path is None:
            return self.message
        where = str(self.path) if self.line is None else f"{self.path}:{self.line}"
        return f"{where}: {self.message}"


class UsageError(LabdeckError):
    """A command was called with a value that cannot work (unknown target, missing script...)."""

    exit_code = 2


class ProjectNotFound(UsageError):
    """No ``aml_config/`` folder here or above."""


class RunNotFound(UsageError):
    """No run with that id in the store."""


class StorageError(LabdeckError):
    """labdeck could not write its own files (a run's folder, the store): disk full, permissions."""


class TargetError(LabdeckError):
    """A target could not be reached or refused the work (daemon down, SSH refused...)."""


class ScriptFailed(TargetError):
    """The script ran and failed for a reason read from its output (Spark's driver): the run
    ends as any failed run, with ``run_exit_code`` and this one-line reason as its error."""

    def __init__(self, reason: str, run_exit_code: int):
        super().__init__(reason)
        self.run_exit_code = run_exit_code


class PrepareError(TargetError):
    """Building a run environment failed; nothing was marked prepared."""


class CapabilityError(UsageError):
    """The target's backend does not declare the capability the action needs."""
