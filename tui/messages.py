"""Domain messages: widgets and workers post these up; the app reacts (attributes go down)."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from backends.store import RunRecord
from backends.watch import WatchEvent


@dataclass
class TargetSelected(Message):
    name: str


@dataclass
class RunSelected(Message):
    run_id: str | None


@dataclass
class RunSubmitted(Message):
    record: RunRecord  # its trigger says whether watch mode submitted it


@dataclass
class RunCanceled(Message):
    record: RunRecord


@dataclass
class OutputsDownloaded(Message):
    run_id: str
    files: list[str]
    dest: str


@dataclass
class EnvironmentPrepared(Message):
    target: str
    ref: str
    cached: bool


@dataclass
class WatchToggled(Message):
    active: bool
    target: str
    script: str | None
    policy: str


@dataclass
class WatchRequested(Message):
    """Watch mode asked for with a submit (the dialog's watch box), once the run is submitted:
    the submit worker's thread posts it; the app starts the watcher on its own thread."""

    record: RunRecord
    policy: str


@dataclass
class WatchTriggered(Message):
    event: WatchEvent


@dataclass
class CompareLoaded(Message):
    """The runs to compare, read by the store worker (their series cut to their tails)."""

    records: list[RunRecord]
    problem: str | None = None  # one line: a run was deleted meanwhile


@dataclass
class SubmitChoices(Message):
    """What the submit dialog offers, found off the UI thread (it walks the project)."""

    scripts: list[str]
    targets: list[str]


@dataclass
class SubmitRequest:
    """What the submit dialog returns (a value, not a message)."""

    target: str
    script: str | None
    args: list[str]
    watch: bool = False
    policy: str = "cancel"
