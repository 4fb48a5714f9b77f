"""The one async interface every target implements: prepare, start -> RunHandle, reattach.

A backend is built from a Compute. The supervisor drives it; clients never hold a handle for long.
Capabilities are declared on the class so the CLI and the dashboard can read them without I/O.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from enum import Enum
from pathlib import Path

from ._records import dataclass, field
from .config import Compute
from .errors import CapabilityError, ConfigError
from .logfile import ResumePoint
from .project import Project, Target

TYPE_CHECKING = False  # importing typing costs ~3 ms of a submit; annotations need none
if TYPE_CHECKING:
    from typing import ClassVar

_setattr = object.__setattr__  # hand-written __init__ of hot frozen records


class Capability(str, Enum):
    PREPARE = "prepare"  # builds a run environment (image), cached by its inputs
    CANCEL = "cancel"  # can stop a run and everything it started
    REATTACH = "reattach"  # a run survives its supervisor; a new one picks it up
    GPU = "gpu"  # can hand NVIDIA GPUs to a run
    LIVE_METRICS = "live-metrics"  # metrics arrive while the run goes


@dataclass(frozen=True)
class LogLine:
    stream: str  # "out" or "err"
    text: str
    ts: float | None = None  # the source's own timestamp where it has one (docker does)

    def __init__(self, stream: str, text: str, ts: float | None = None):  # one per output line
        _setattr(self, "stream", stream)
        _setattr(self, "text", text)
        _setattr(self, "ts", ts)


@dataclass(frozen=True)
class LogBatch:
    """Lines of one stream as a handle read them together (one read of a pipe, the frames at
    hand): the supervisor writes and scans a batch at once, not line by line. Texts as
    ``LogLine.text`` (never a newline; a leading ``\r`` marks a progress state). ``ts`` is the
    source's one timestamp for them all, or ``stamps`` one per line (docker's), or neither."""

    stream: str
    lines: list[str]
    ts: float | None = None
    stamps: list[float | None] | None = None

    def __init__(self, stream: str, lines: list[str], ts: float | None = None,
                 stamps: list[float | None] | None = None):  # one per read of a busy stream
        _setattr(self, "stream", stream)
        _setattr(self, "lines", lines)
        _setattr(self, "ts", ts)
        _setattr(self, "stamps", stamps)


class EarlyWork(ABC):
    """What a backend began before the supervisor's event loop existed (prestart.py): the
    docker backend's created and started container. Whoever does not take it up discards it."""

    @abstractmethod
    def discard(self) -> None:
        """Undo it, blocking, for a run that will not go on (canceled, or its supervisor failed
        first): nothing of it may be left behind."""


@dataclass
class RunContext:
    """Everything a backend needs to start one run."""

    run_id: str
    project: Project
    target: Target
    run_dir: Path
    workdir: Path  # the snapshot copy, or the project itself with sharedVolumes
    argv: list[str]  # the script and its arguments, relative to workdir
    env: dict[str, str]  # the run's own variables (runconfig + labdeck's), not the whole environ
    progress: Callable[[str], None] = field(default=lambda _msg: None)
    # What the backend began before the supervisor's event loop existed (prestart.py), handed
    # to its prepare and start; None when it began nothing, or once it is taken up or discarded.
    early: EarlyWork | None = None

    @property
    def compute(self) -> Compute:
        return self.target.compute

    @property
    def outputs_dir(self) -> Path:
        return self.run_dir / "outputs"


@dataclass(frozen=True)
class PrepareOptions:
    """How a prepare was asked for. ``explicit``: a person asked (``labdeck prepare``), so a
    missing environment is built whatever the runconfig's PrepareEnvironment says; ``force``:
    rebuild even when cached; ``offline``: the target cannot reach package indexes, so what
    it needs is downloaded here and sent along."""

    explicit: bool = False
    force: bool = False
    offline: bool = False


@dataclass(frozen=True)
class EnvRef:
    """What prepare produced: an interpreter path, an image tag..."""

    ref: str
    cached: bool = False


@dataclass
class Explanation:
    """The outside commands a run would issue, shown by ``--explain`` before anything runs."""

    commands: list[list[str]]
    workdir: str
    env: dict[str, str]
    notes: list[str] = field(default_factory=list)

    def render(self) -> str:
        import shlex  # --explain only: kept off every submit's start

        lines = [f"# {note}" for note in self.notes]
        lines += [f"cd {shlex.quote(self.workdir)}"]
        lines += [f"export {k}={shlex.quote(v)}" for k, v in sorted(self.env.items())]
        lines += [shlex.join(cmd) for cmd in self.commands]
        return "\n".join(lines)


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    memory_total_mb: int
    memory_used_mb: int
    utilization_pct: int
    uuid: str = ""


@dataclass
class TargetInfo:
    reachable: bool
    detail: str  # "docker 24.0.7", or why it is not reachable
    gpus: list[GpuInfo] = field(default_factory=list)
    gpu_note: str = ""


class RunHandle(ABC):
    """One started run. ``durable_ref`` is stored so a later supervisor can reattach."""

    durable_ref: str

    @abstractmethod
    def logs(self) -> AsyncIterator[LogBatch]:
        """Output lines from the start (or the resume point), ending when the run's output ends,
        in batches: whatever arrived while the consumer was busy comes as one (a flood costs a
        few thousand batches, a quiet script's line comes alone and at once)."""

    @abstractmethod
    async def wait(self) -> int:
        """The exit code, once the run has ended."""

    @abstractmethod
    async def cancel(self, grace: float) -> None:
        """SIGTERM to everything the run started, then SIGKILL after ``grace`` seconds."""

    @abstractmethod
    async def collect_outputs(self, dest: Path) -> list[str]:
        """Copy what the run wrote under ``outputs/`` to ``dest``; the relative paths copied."""

    def pending_lines(self) -> int:
        """Batches already read but not yet taken from ``logs()`` (a batching hint)."""
        return 0

    async def close(self) -> None:
        """Free what the run held (containers, connections). Called once, at the very end."""


def compute_line(compute: Compute, *keys: str) -> int | None:
    """The line of the first of ``keys`` in the compute's file (for a backend's errors)."""
    if compute.path is None:
        return None
    from .yamlfile import load_mapping

    try:
        mapping = load_mapping(compute.path)
    except (OSError, ConfigError):
        return None
    return next((line for key in keys if (line := mapping.line_of(key)) is not None), None)


class Backend(ABC):
    """A target family. ``capabilities`` is what the type can do at most; ``capabilities_for``
    says what it can do for one compute (Spark cluster mode has no live driver output), and
    that is what is recorded with each run and enforced where a capability is used."""

    capabilities: ClassVar[frozenset[Capability]] = frozenset()

    def __init__(self, compute: Compute):
        self.compute = compute

    @classmethod
    def capabilities_for(cls, compute: Compute) -> frozenset[Capability]:
        return cls.capabilities

    @property
    def declared(self) -> frozenset[Capability]:
        """This backend's capabilities for its compute."""
        return self.capabilities_for(self.compute)

    def require(self, capability: Capability) -> None:
        if capability not in self.declared:
            raise CapabilityError(
                f"target {self.compute.name!r} ({self.compute.type}) cannot {capability.value}"
            )

    @classmethod
    def validate(cls, compute: Compute) -> None:
        """Refuse a compute this backend cannot serve, with a ConfigError naming its file and
        line: each backend checks its own keys (the shared parser only reads them). Called
        where the backend is loaded anyway: ``--explain``, ``prepare``, ``target show`` and
        the supervisor before it prepares (the plain submit never loads a backend)."""
        if compute.gpus is not None and Capability.GPU not in cls.capabilities_for(compute):
            raise ConfigError(
                f"GPUs are requested but target type {compute.type!r} cannot hand GPUs to a run",
                compute.path, compute_line(compute, "gpus", "nvidiaDocker"))

    @classmethod
    def abandon(cls, durable_ref: str) -> None:
        """Stop what is left of a run whose supervisor died, for backends that cannot reattach
        (the local one kills the run's process group). ``durable_ref`` is what ``start``'s
        handle carried, "" when it was never recorded. Blocking, and quick."""

    @abstractmethod
    def explain(self, ctx: RunContext) -> Explanation:
        """The commands ``start`` would issue, without issuing them."""

    @abstractmethod
    async def prepare(self, ctx: RunContext, options: PrepareOptions) -> EnvRef:
        """Build or find the run environment; cached until its inputs change."""

    @abstractmethod
    async def start(self, ctx: RunContext, env: EnvRef) -> RunHandle:
        """Start the run; returns once it is started (its output comes through the handle)."""

    async def reattach(self, ctx: RunContext, durable_ref: str, resume: ResumePoint) -> RunHandle:
        """Take up a run whose supervisor died (backends declaring REATTACH). ``durable_ref`` is
        what ``start`` returned, or "" when the supervisor died before recording it: find the
        run by its id then (docker: by label). Resume its output after ``resume``."""
        raise CapabilityError(f"target type {self.compute.type!r} cannot reattach to a run")

    async def describe(self) -> TargetInfo:
        """Reachability, version and GPUs, for ``target show`` and the dashboard."""
        return TargetInfo(True, self.compute.type)
