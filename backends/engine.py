"""The engine's front door, used alike by the CLI and the dashboard.

It resolves targets, snapshots the project, records runs and starts their detached supervisors;
it reads runs back (noticing a supervisor that died) and asks for cancels. It never drives a run.
"""

from __future__ import annotations

import errno
import gc
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from . import objects, procutil, registry, snapshot
from ._records import dataclass
from .base import Capability, EnvRef, Explanation, PrepareOptions, RunContext, TargetInfo
from .config import conda_name
from .errors import CapabilityError, ConfigError, RunNotFound, StorageError, TargetError, UsageError
from .outputenv import RUN_OUTPUT_ENV
from .project import Project, Target
from .runspec import RunSpec
from .status import RunStatus
from .store import RunMeta, RunRecord, RunStore

TYPE_CHECKING = False  # importing typing costs ~3 ms of a submit; annotations need none
if TYPE_CHECKING:
    import socket

    from .objects import Manifest
    from .zygote import PendingSupervisor

_CAPABILITY_VALUES = {c.value for c in Capability}
LOST_GRACE_S = 30.0  # a queued run may wait this long for its supervisor to register
PACKAGE_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_RUNNER = "labdeck_notebook"  # backends/shim/labdeck_notebook.py, on every run's path


@dataclass
class Submission:
    """What a submit decided before anything ran: shown by --explain, then frozen in run.json."""

    target: Target
    spec: RunSpec
    script: str
    args: list[str]
    files: list[snapshot.FileEntry]
    source: Manifest | None = None  # a rerun's: the files are this manifest's, not the project's


class Engine:
    def __init__(self, project: Project, fork_supervisors: bool = False):
        self.project = project
        self.fork_supervisors = fork_supervisors
        self._store: RunStore | None = None
        self._store_lock = threading.Lock()
        self._done_fds: dict[str, int] = {}
        self._done_lock = threading.Lock()  # the dashboard starts runs from several threads
        self._zygote: socket.socket | None = None
        self._zygote_lock = threading.Lock()
        # Within submit: the supervisor forked before the run existed (zygote.early_fork).
        self._pending: PendingSupervisor | None = None  # during submit: its supervisor-to-be

    @property
    def store(self) -> RunStore:
        """Built once (each thread then gets its own connection from it)."""
        store = self._store
        if store is None:
            with self._store_lock:
                if self._store is None:
                    self.project.ensure_state()
                    self._store = RunStore(self.project.db_path)
                store = self._store
        return store

    def close(self) -> None:
        """Close the store's connections (it reconnects on next use): before a fork, at exit."""
        if self._store is not None:
            self._store.disconnect()

    # ---------------------------------------------------------------- submit

    def plan(
        self,
        target_name: str,
        script: str | None,
        args: list[str],
        run_id: str = "<run-id>",
        target: Target | None = None,
        source: Manifest | None = None,
        argv: list[str] | None = None,
    ) -> Submission:
        """``argv``: the run's argv as a run.json froze it (a rerun), not the runconfig's."""
        target = target or self.project.resolve(target_name)
        given = argv is not None
        if argv is not None:
            exact = argv[2:] if argv[:2] == ["-m", NOTEBOOK_RUNNER] else argv
            if not exact:
                raise UsageError("the run's argv names no script")
            rel_script, script_name, script_args = None, exact[0], exact[1:]
            argv = list(exact)
        else:
            if source is None:
                rel_script = self._script_path(script) if script is not None else None
            else:
                rel_script = self._script_in(source, script) if script is not None else None
            argv = target.runconfig.argv_for(rel_script, args)
            script_name, script_args = argv[0], argv[1:]
        if rel_script is None and not (
            (self.project.root / argv[0]).is_file() if source is None
            else argv[0] in source.by_path()
        ):
            where = "the run's snapshot" if source is not None else "the project"
            why = "" if given else " (from ArgumentVector)"
            raise UsageError(f"script {argv[0]!r}{why} not found in {where}")
        if script_name.endswith(".ipynb"):  # a notebook: the shim's runner executes it
            argv = ["-m", NOTEBOOK_RUNNER, *argv]
        env = {
            **RUN_OUTPUT_ENV,  # defaults: a runconfig that sets PYTHONUNBUFFERED=1 keeps it
            **target.runconfig.environment_variables,
            "LABDECK_RUN_ID": run_id,
            "AZUREML_RUN_ID": run_id,
            "LABDECK_TARGET": target.compute.name,
        }
        shared = target.compute.shared_volumes
        if shared and source is not None:
            raise UsageError(f"target {target_name!r} uses sharedVolumes (the project runs in"
                             " place): a saved snapshot cannot run there; use --current")
        run_dir = self.project.run_dir(run_id)
        workdir = self.project.root if shared else run_dir / objects.SNAPSHOT_DIR
        if source is None:
            files = snapshot.list_files(self.project.root)
        else:
            files = [snapshot.FileEntry(e.path, e.size, bool(e.mode & 0o100))
                     for e in source.files]
        spec = RunSpec(run_id, target_name, argv, env, str(workdir), snapshot=not shared,
                       notes=_run_notes(target), framework=target.runconfig.framework)
        return Submission(target, spec, script_name, script_args, files, source)

    def explain(self, target_name: str, script: str | None, args: list[str]) -> Explanation:
        sub = self.plan(target_name, script, args)
        backend = registry.create(sub.target.compute)
        backend.validate(sub.target.compute)
        ctx = self._context(sub)
        explanation = backend.explain(ctx)
        for warning in sub.target.warnings:
            explanation.notes.append(f"warning: {warning}")
        explanation.notes.extend(sub.spec.notes)  # what the run's log will say at its start
        conda = sub.target.conda
        if conda is not None:
            for pin in (p for p in conda.conda_packages if conda_name(p) == "python"):
                explanation.notes.append(
                    f"{pin} ({conda.path.name}) is not honoured: the target's own Python runs"
                    " the script (no conda environment is built)")
        return explanation

    def submit(
        self,
        target_name: str,
        script: str | None,
        args: list[str],
        trigger: list[str] | None = None,
        *,
        target: Target | None = None,
        pending: PendingSupervisor | None = None,
        meta: RunMeta | None = None,
        source: Manifest | None = None,
        argv: list[str] | None = None,
    ) -> RunRecord:
        """Record the run and hand it to its supervisor. ``target``: ``target_name`` already
        resolved; ``pending``: a supervisor the caller forked ahead (the CLI does it first);
        ``source``: run these files (a saved snapshot's manifest), not the project's; ``argv``:
        this exact argv (a rerun's), not the runconfig's."""
        # The supervisor-to-be loads its modules on the other CPU while this one plans and
        # records the run (zygote.early_fork); any error before the hand-off ends it unused.
        self._pending = pending or self._fork_ahead()
        try:
            return self._submit(target_name, script, args, trigger, target, meta, source, argv)
        finally:
            if self._pending is not None:  # not handed a run: end it, nothing outlives us
                self._pending.abort()
                self._pending = None

    def _fork_ahead(self) -> PendingSupervisor | None:
        if not self.fork_supervisors or self._store is not None:
            return None  # no SQLite connection may cross a fork (and a store once made has one)
        if threading.active_count() != 1 or os.environ.get("LABDECK_EARLY_FORK") == "0":
            return None
        from .zygote import early_fork

        return early_fork()

    def _submit(
        self,
        target_name: str,
        script: str | None,
        args: list[str],
        trigger: list[str] | None,
        target: Target | None,
        meta: RunMeta | None = None,
        source: Manifest | None = None,
        argv: list[str] | None = None,
    ) -> RunRecord:
        target = target or self.project.resolve(target_name)
        kind = target.compute.type
        registry.check(kind)  # unknown types fail before a record
        if self._pending is not None:  # as soon as the backend is known
            self._pending.preload(registry.module_of(kind), registry.early_module_of(kind))
        sub = self.plan(target_name, script, args, target=target, source=source, argv=argv)
        if sub.spec.snapshot:
            snapshot.check_size(sub.files, _snapshot_limit())
        state = self.project.state_dir
        # Held shared from the first object stored until the manifest is saved: a collection
        # (prune, `labdeck store --gc`) waits, so it never removes what this run is about to use.
        lock = objects.ObjectStore(state).lock() if sub.spec.snapshot else None
        manifest: Manifest | None = None
        try:
            if lock is not None:
                lock.__enter__()
                try:
                    manifest = source or objects.snapshot(self.project.root, sub.files, state)
                except OSError as err:
                    raise StorageError(self._snapshot_error(err)) from err
                digest = manifest.digest
            else:
                digest = snapshot.content_hash(self.project.root, sub.files)
            commit = snapshot.git_commit(self.project.root) if source is None else None
            run_id, created = self._reserve_run_dir()
            self._make_run_folder(sub, run_id, trigger, manifest)
        finally:
            if lock is not None:
                lock.__exit__()
        try:
            self.store.create(
                self.project.name,
                sub.target.compute.name,
                sub.target.compute.type,
                runconfig=target_name,
                script=sub.script,
                args=sub.args,
                env=sub.spec.env,
                trigger=trigger,
                run_id=run_id,
                created=created,
                snapshot=digest,
                git_commit=commit,
                meta=meta,
            )
        except BaseException as err:
            self._discard_run_folder(run_id, err)
            raise
        self._spawn_supervisor(run_id)
        record = self.store.get(run_id)
        if sub.spec.snapshot:
            self.drop_finished_snapshots(keep=run_id)
        return record

    def _make_run_folder(self, sub: Submission, run_id: str, trigger: list[str] | None,
                         manifest: Manifest | None) -> None:
        """The run's folder complete (manifest, the materialised snapshot, run.json) before the
        run is recorded: a full disk, a permission error or Ctrl-C leaves no record, and no
        half-made folder."""
        run_dir = self.project.run_dir(run_id)
        try:
            sub.spec.run_id = run_id
            sub.spec.trigger = trigger or []
            for key in ("LABDECK_RUN_ID", "AZUREML_RUN_ID"):
                sub.spec.env[key] = run_id
            if manifest is not None:
                state = self.project.state_dir
                sub.spec.workdir = str(run_dir / objects.SNAPSHOT_DIR)
                objects.mark_materialised(state, run_id)
                dest = run_dir / objects.SNAPSHOT_DIR
                if sub.source is not None:  # a saved snapshot (a rerun's): old objects, hashed
                    objects.materialise(manifest, state, dest, verify=True)
                else:  # a fresh one's objects were just stored or matched by size
                    objects.materialise(manifest, state, dest)
                manifest.save(run_dir)
            sub.spec.save(run_dir)
        except BaseException as err:
            self._discard_run_folder(run_id, err)
            raise

    def _discard_run_folder(self, run_id: str, err: BaseException) -> None:
        run_dir = self.project.run_dir(run_id)
        _remove_tree(run_dir)
        objects.unmark_materialised(self.project.state_dir, run_id)
        if isinstance(err, OSError):
            raise StorageError(_os_error_line(err, run_dir)) from err
        import sqlite3  # here: the package imports datetime (~3.5 ms of every submit's CPU)

        if isinstance(err, sqlite3.OperationalError):
            raise StorageError(f"{self.project.db_path}: {err}") from err

    # ---------------------------------------------------------------- snapshots

    def drop_finished_snapshots(self, keep: str | None = None, orphans: bool = False,
                                dry_run: bool = False) -> list[str]:
        """Remove the materialised ``snapshot/`` folder of each run that has ended (its manifest
        and the objects keep it; ``materialise`` rebuilds it). A run in flight, or one not yet
        recorded, keeps its folder. The ids dropped. ``orphans`` (``labdeck store --gc``): also
        remove the folders a killed submit left half-made (see ``_drop_orphans``). ``dry_run``:
        the ended runs whose copy would go, nothing removed."""
        state = self.project.state_dir
        dropped = self._drop_orphans() if orphans and not dry_run else []
        for run_id in objects.materialised_runs(state):
            if run_id == keep:
                continue
            run_dir = self.project.run_dir(run_id)
            if not run_dir.is_dir():
                objects.unmark_materialised(state, run_id)
                continue
            try:
                record = self.store.get(run_id, with_metrics=False)
            except RunNotFound:
                continue  # being submitted (or its folder is about to go): not ours to touch
            if not record.status.is_terminal() or not objects.has_manifest(run_dir):
                continue
            if dry_run:
                dropped.append(run_id)
            elif objects.remove_tree(run_dir / objects.SNAPSHOT_DIR):
                objects.unmark_materialised(state, run_id)
                dropped.append(run_id)
        return dropped

    def _drop_orphans(self) -> list[str]:
        """Run folders a submit killed mid-way (SIGKILL, a power cut) left: marked, without
        ``run.json`` and without a record. A submit writes its folder's ``run.json`` while it
        holds the object store's lock shared, so under the exclusive lock such a folder is no
        submit's in progress; one with ``run.json`` may be about to be recorded, and stays."""
        state = self.project.state_dir
        removed = []
        with objects.ObjectStore(state).lock(exclusive=True):
            for run_id in objects.materialised_runs(state):
                run_dir = self.project.run_dir(run_id)
                if (run_dir / "run.json").exists() or self.store.exists(run_id):
                    continue
                if objects.remove_tree(run_dir):
                    objects.unmark_materialised(state, run_id)
                    removed.append(run_id)
        return removed

    def _snapshot_error(self, err: OSError) -> str:
        """A project file that went (or cannot be read) is read's error, the store's is write's."""
        name = str(err.filename or "")
        objects_dir = str(self.project.state_dir / objects.OBJECTS)
        if name and not name.startswith(objects_dir):
            return f"cannot read {name}: {err.strerror or err}"
        return _os_error_line(err, self.project.state_dir / objects.OBJECTS)

    def migrate_old_snapshots(self, dry_run: bool = False) -> list[tuple[str, int]]:
        """Ended runs from before manifests (a full ``snapshot/`` copy, no manifest): store
        their files as objects, save a manifest, drop the copy. Each run and the bytes its copy
        took. The manifest is of the folder as the run left it (a file the script wrote there
        is in it)."""
        from .history import folder_size

        done = []
        runs_dir = self.project.runs_dir
        for name in sorted(os.listdir(runs_dir)) if runs_dir.is_dir() else []:
            run_dir = runs_dir / name
            if objects.has_manifest(run_dir) or not (run_dir / objects.SNAPSHOT_DIR).is_dir():
                continue
            try:
                record = self.store.get(name, with_metrics=False)
            except RunNotFound:
                continue
            if not record.status.is_terminal():
                continue
            size = folder_size(run_dir / objects.SNAPSHOT_DIR)
            if not dry_run:
                store = objects.ObjectStore(self.project.state_dir)
                with store.lock():  # stored and named by the manifest before a gc may look
                    self.manifest(name, locked=True).save(run_dir)
                if not objects.remove_tree(run_dir / objects.SNAPSHOT_DIR):
                    continue
            done.append((name, size))
        return done

    def manifest(self, run_id: str, locked: bool = False) -> Manifest:
        """A run's snapshot as a manifest: its own, or (an old run's full snapshot folder, from
        before manifests) one hashed from that folder, its files then stored as objects (under
        the store's lock, unless ``locked``: the caller holds it)."""
        from .objects import Manifest

        run_dir = self.project.run_dir(run_id)
        if objects.has_manifest(run_dir):
            try:
                return Manifest.load(run_dir)
            except (OSError, ValueError, KeyError, IndexError, TypeError) as err:
                raise StorageError(f"{run_dir / objects.MANIFEST}: unreadable ({err})") from err
        folder = run_dir / objects.SNAPSHOT_DIR
        if not folder.is_dir():
            raise UsageError(f"run {run_id} has no snapshot (its target ran the project in"
                             " place: sharedVolumes)")
        manifest, where = objects.manifest_of_folder(folder)
        store = objects.ObjectStore(self.project.state_dir)
        lock = None if locked else store.lock()  # ``locked``: the caller holds it
        if lock is not None:
            lock.__enter__()
        try:
            for entry in manifest.files:
                if not store.has(entry.sha256):
                    store.put(where[entry.path])
        finally:
            if lock is not None:
                lock.__exit__()
        return manifest

    def rerun(
        self,
        ref: str,
        current: bool = False,
        target_name: str | None = None,
        args: list[str] | None = None,
        meta: RunMeta | None = None,
    ) -> RunRecord:
        """Run a run again: its argv (``args`` replace the script's arguments) on its target
        (or ``target_name``), with its snapshot (from its manifest) or, ``current``, the
        project's files as they are now."""
        from .runspec import RunSpec

        record = self.get(ref, with_metrics=False)
        run_dir = self.project.run_dir(record.id)
        try:
            spec = RunSpec.load(run_dir)
        except (OSError, ValueError, TypeError) as err:
            raise StorageError(f"{run_dir / 'run.json'}: unreadable ({err})") from err
        argv = list(spec.argv)
        if args is not None:
            head = 3 if argv[:2] == ["-m", NOTEBOOK_RUNNER] else 1
            argv = argv[:head] + list(args)
        source = None
        if not current:
            try:
                source = self.manifest(record.id)
            except UsageError as err:  # a sharedVolumes run: its files are the project's
                raise UsageError(f"{err}; rerun it with --current") from None
            store = objects.ObjectStore(self.project.state_dir)
            missing = [e.path for e in source.files if not store.has(e.sha256)]
            if missing:
                raise StorageError(f"run {record.id}: {len(missing)} file(s) of its snapshot are"
                                   f" missing from {store.root} (first: {missing[0]});"
                                   " rerun it with --current")
        trigger = [f"rerun of {record.id}" + (" with the current files" if current else "")]
        return self.submit(target_name or spec.target, None, [], trigger, meta=meta,
                           source=source, argv=argv)

    def materialise(self, run_id: str, dest: Path | None = None) -> Path:
        """Write a run's snapshot files out again (default: its ``snapshot/`` folder, then
        dropped again as an ended run's is), each object's hash checked. The target must not
        hold files yet: a live run's own folder is never written over."""
        record = self.get(run_id, with_metrics=False)
        run_dir = self.project.run_dir(record.id)
        target = dest or run_dir / objects.SNAPSHOT_DIR
        if target.exists() and (not target.is_dir() or any(target.iterdir())):
            raise UsageError(f"{target} is there already and not empty: check out into a new"
                             " or empty folder")
        manifest = self.manifest(record.id)
        store = objects.ObjectStore(self.project.state_dir)
        with store.lock():
            missing = [e.path for e in manifest.files if not store.has(e.sha256)]
            if missing:
                raise StorageError(f"run {record.id}: {len(missing)} file(s) of its snapshot are"
                                   f" missing from {store.root} (first: {missing[0]})")
            try:
                objects.materialise(manifest, self.project.state_dir, target, verify=True)
            except OSError as err:
                raise StorageError(_os_error_line(err, target)) from err
        if dest is None:  # dropped with the others once the run has ended
            objects.mark_materialised(self.project.state_dir, record.id)
        return target

    def _reserve_run_dir(self) -> tuple[str, float]:
        """A new run id whose folder this process created: ``mkdir`` without exist_ok is the
        claim, so two clients submitting in the same millisecond never share an id."""
        now = time.time()
        ms = int(now * 1000)
        runs = self.project.runs_dir
        try:
            runs.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StorageError(_os_error_line(err, runs)) from err
        while True:
            run_id = f"{self.project.name}_{ms}"
            if not self.store.exists(run_id):
                try:
                    self.project.run_dir(run_id).mkdir()
                    return run_id, ms / 1000
                except FileExistsError:
                    pass
                except OSError as err:
                    raise StorageError(_os_error_line(err, self.project.run_dir(run_id))) from err
            ms += 1

    @staticmethod
    def _script_in(source: Manifest, script: str) -> str:
        """A rerun's script: a path of the saved snapshot."""
        rel = Path(script).as_posix().removeprefix("./")
        if rel not in source.by_path():
            raise UsageError(f"script {script!r} is not in the run's snapshot")
        return rel

    def _script_path(self, script: str) -> str:
        """The script relative to the project root; it must exist inside the project."""
        given = Path(script)
        candidates = (
            [given] if given.is_absolute() else [Path.cwd() / given, self.project.root / given]
        )
        for candidate in candidates:
            path = candidate.resolve()
            if path.is_file():
                try:
                    return path.relative_to(self.project.root).as_posix()
                except ValueError:
                    raise UsageError(
                        f"script {script!r} is outside the project {self.project.root}"
                    ) from None
        raise UsageError(f"script {script!r} not found in the project {self.project.root}")

    def _context(self, sub: Submission) -> RunContext:
        return RunContext(
            sub.spec.run_id,
            self.project,
            sub.target,
            self.project.run_dir(sub.spec.run_id),
            Path(sub.spec.workdir),
            sub.spec.argv,
            sub.spec.env,
        )

    def _spawn_supervisor(
        self, run_id: str, reattach: bool = False, claim: tuple[int, int | None] | None = None
    ) -> int:
        """Start the run's detached supervisor: the one ``submit`` forked ahead (zygote.early_fork)
        while it lives, else forked from this process when that is safe (single-threaded), else
        through the zygote (threaded clients), else a fresh interpreter."""
        run_dir = self.project.run_dir(run_id)
        pending, self._pending = self._pending, None  # set by submit only: never a reattach
        pid: int | None = None
        if pending is not None:
            try:
                pid = pending.start(
                    str(self.project.root), run_id, reattach, str(run_dir / "supervisor.log")
                )
                done_r = pending.done_r
                gc.freeze()  # as in _fork_supervisor: the collector skips it, at exit above all
            except OSError:
                pid = None  # it died before it got the run: start one the other way
        if pid is None:
            done_r, done_w = os.pipe()  # closes when the supervisor exits: "run ended"
            forked: int | None = None
            if self.fork_supervisors and threading.active_count() == 1:
                forked = self._fork_supervisor(run_id, reattach, done_r, done_w)
            elif self.fork_supervisors:
                forked = self._zygote_supervisor(run_id, reattach, done_w)
            if forked is None:
                forked = self._exec_supervisor(run_id, reattach, run_dir, done_w)
            pid = forked
            os.close(done_w)
        self._sweep_done_fds()
        self.forget_done_fd(run_id)
        with self._done_lock:
            self._done_fds[run_id] = done_r
        ours = (pid, procutil.start_ticks(pid))
        if claim is None:
            self.store.update(run_id, supervisor_pid=ours[0], supervisor_start=ours[1])
        else:  # hand our claim to the supervisor we started (see reconcile)
            self.store.claim_supervisor(run_id, claim, ours)
        return pid

    def _exec_supervisor(self, run_id: str, reattach: bool, run_dir: Path, done_w: int) -> int:
        import subprocess

        env = _child_env()
        cmd = [sys.executable, "-m", "backends.supervisor", str(self.project.root), run_id]
        if reattach:
            cmd.append("--reattach")
        with open(run_dir / "supervisor.log", "ab") as out:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                env=env,
                cwd=self.project.root,
                start_new_session=True,
                close_fds=True,
                pass_fds=(done_w,),
            )
        # Reap it when it ends, so a long-lived client (the dashboard) collects no zombies.
        threading.Thread(target=proc.wait, daemon=True).start()
        return proc.pid

    def _fork_supervisor(self, run_id: str, reattach: bool, done_r: int, done_w: int) -> int:
        from .zygote import fork_detached_supervisor

        # SQLite must not cross a fork with an open connection (its lock bookkeeping is
        # per process): close ours; the property reopens it on next use.
        self.close()
        sys.stdout.flush()
        sys.stderr.flush()
        log_path = str(self.project.run_dir(run_id) / "supervisor.log")
        os.set_inheritable(done_r, False)
        # What is loaded now lives until exit in both processes: out of the collector's sight
        # (as the gc docs advise before a fork), so neither walks it again, at exit least of
        # all (measured: ~40 ms of the CLI's exit after a run).
        gc.freeze()
        return fork_detached_supervisor(str(self.project.root), run_id, reattach, log_path, done_w)

    def warm_up(self) -> None:
        """Threaded clients call this at start: the first run then starts as fast as the rest."""
        if self.fork_supervisors:
            self.start_zygote()

    def start_zygote(self) -> None:
        """For threaded clients: a pre-loaded helper that forks supervisors (see zygote.py)."""
        import socket
        import subprocess

        with self._zygote_lock:
            if self._zygote is not None:
                return
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            env = _child_env()
            self.project.ensure_state()
            with open(self.project.state_dir / "zygote.log", "ab") as log:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "backends.zygote", str(theirs.fileno())],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                    pass_fds=(theirs.fileno(),), start_new_session=True, cwd=self.project.root,
                )
            theirs.close()
            threading.Thread(target=proc.wait, daemon=True).start()
            self._zygote = ours

    def _zygote_supervisor(self, run_id: str, reattach: bool, done_w: int) -> int | None:
        import json
        import socket

        if self._zygote is None:
            self.start_zygote()
        log_path = str(self.project.run_dir(run_id) / "supervisor.log")
        request = json.dumps([str(self.project.root), run_id, reattach, log_path]).encode()
        with self._zygote_lock:
            sock = self._zygote
            if sock is None:
                return None
            try:
                socket.send_fds(sock, [request], [done_w])
                reply = sock.recv(256).decode()
            except OSError:
                sock.close()
                self._zygote = None  # gone: this run uses a fresh interpreter, the next a
                return None  # new zygote
        return int(reply) if reply.isdigit() else None

    def _sweep_done_fds(self) -> None:
        """Close the pipes of supervisors that have exited: a long-lived client (the dashboard,
        a watch loop) starts runs without end and must not run out of file descriptors."""
        import select

        with self._done_lock:
            if not self._done_fds:
                return
            poller = select.poll()  # not select(): no FD_SETSIZE limit
            for fd in self._done_fds.values():
                poller.register(fd, select.POLLIN)
            ended = {fd for fd, _event in poller.poll(0)}  # EOF/HUP: the writer is gone
            for run_id in [r for r, fd in self._done_fds.items() if fd in ended]:
                os.close(self._done_fds.pop(run_id))

    def forget_done_fd(self, run_id: str) -> None:
        with self._done_lock:
            fd = self._done_fds.pop(run_id, None)
        if fd is not None:
            os.close(fd)

    def done_fd(self, run_id: str) -> int | None:
        """A pipe that reads EOF when the supervisor this client started has exited."""
        return self._done_fds.get(run_id)

    # ---------------------------------------------------------------- read back

    # Reads are read-only: a supervisor that died is noticed by reconcile/recover, which a
    # client calls as an explicit step (the CLI before its read verbs, the dashboard in its
    # refresh worker, `runs logs -f` while it follows).

    def get(self, run_id: str, with_metrics: bool = True) -> RunRecord:
        return self.store.find(run_id, with_metrics)

    def last(self) -> RunRecord:
        return self.store.last()

    def runs(self, limit: int | None = None, with_metrics: bool = True) -> list[RunRecord]:
        return self.store.list_runs(limit, with_metrics)

    def recover(self) -> list[str]:
        """Reconcile every run in flight; the ids of those this client took over."""
        taken = []
        for record in self.store.active():
            after = self.reconcile(record, with_metrics=False)
            if after.supervisor_pid != record.supervisor_pid or after.status != record.status:
                taken.append(record.id)
        return taken

    def reconcile(self, record: RunRecord, with_metrics: bool = True) -> RunRecord:
        """A non-terminal run whose supervisor is gone gets a new one (reattach) or is failed.
        Of clients that notice at once, one wins the claim in SQL (store.claim_supervisor):
        there is never more than one supervisor per run."""
        if record.status.is_terminal() or self._supervisor_alive(record):
            return record
        # No supervisor recorded yet: the submitting client writes its pid just after the fork,
        # and a supervisor may already have marked the run running (a zygote fork, under load).
        starting = record.supervisor_pid is None
        if starting and time.time() - record.created < LOST_GRACE_S:
            return record
        me = (os.getpid(), procutil.start_ticks(os.getpid()))
        seen = (record.supervisor_pid, record.supervisor_start)
        if not self.store.claim_supervisor(record.id, seen, me):
            return self.store.get(record.id, with_metrics)  # another client took it over
        # A backend that can reattach finds its run even when the supervisor died before
        # recording where it went (docker: by the run's label).
        if Capability.REATTACH in self.run_capabilities(record):
            self._spawn_supervisor(record.id, reattach=True, claim=me)
            return self.store.get(record.id, with_metrics)
        backend_cls = registry.backend_class(record.target_type)
        backend_cls.abandon(record.durable_ref or "")
        self.store.set_status(
            record.id,
            RunStatus.FAILED,
            error=f"supervisor (pid {record.supervisor_pid}) died; run lost",
        )
        return self.store.get(record.id, with_metrics)

    def run_capabilities(self, record: RunRecord) -> frozenset[Capability]:
        """What the run's backend declared for its compute (the supervisor records it as it
        starts); the type's whole set before that."""
        if record.capabilities:
            return frozenset(
                Capability(c) for c in record.capabilities if c in _CAPABILITY_VALUES
            )
        return registry.backend_class(record.target_type).capabilities

    def _supervisor_alive(self, record: RunRecord) -> bool:
        pid = record.supervisor_pid
        if pid is None or not procutil.alive(pid):
            return False
        # The same pid with another start time is another program that reused the number.
        return (
            record.supervisor_start is None or procutil.start_ticks(pid) == record.supervisor_start
        )

    def log_path(self, run_id: str) -> Path:
        return self.project.run_dir(run_id) / "log"

    # ---------------------------------------------------------------- actions

    def cancel(self, run_id: str) -> RunRecord:
        record = self.reconcile(self.store.find(run_id, with_metrics=False))
        if record.status.is_terminal():
            return record
        if Capability.CANCEL not in self.run_capabilities(record):
            raise CapabilityError(f"run {record.id} on target {record.target!r} "
                                  f"({record.target_type}) cannot be canceled")
        self.store.request_cancel(record.id)
        if record.supervisor_pid and self._supervisor_alive(record):
            try:
                os.kill(record.supervisor_pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        return self.store.get(record.id)

    def download(self, run_id: str, dest: Path) -> list[Path]:
        record = self.get(run_id)
        src = self.project.run_dir(record.id) / "outputs"
        if not record.outputs or not src.is_dir():
            raise UsageError(f"run {record.id} has no outputs")
        if dest.resolve() == src.resolve():
            raise UsageError(f"{dest} is the run's own outputs folder: download elsewhere")
        project_outputs = (self.project.root / "outputs").resolve()
        if dest.resolve().is_relative_to(project_outputs):
            # Runs see the project's outputs/ (sharedVolumes runs work in it): a download
            # there would become a later run's output.
            raise UsageError(f"{dest} is inside the project's outputs/ folder: download elsewhere")
        copied = []
        for rel in record.outputs:
            target = dest / rel
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                copy_file_sparse(src / rel, target)
            except OSError as err:
                raise UsageError(f"cannot copy {rel} to {dest}: {err.strerror or err}") from err
            copied.append(target)
        return copied

    async def prepare(
        self,
        target_name: str,
        options: PrepareOptions | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> EnvRef:
        """Build (or find cached) the target's run environment, in the foreground: an explicit
        prepare, which builds what is missing whatever the runconfig's PrepareEnvironment says."""
        target = self.project.resolve(target_name)
        ctx = RunContext(
            "prepare", self.project, target, self.project.state_dir, self.project.root, [], {}
        )
        if progress is not None:
            ctx.progress = progress
        backend = registry.create(target.compute)
        backend.validate(target.compute)
        base = options or PrepareOptions()
        return await backend.prepare(ctx, PrepareOptions(True, base.force, base.offline))

    async def describe_target(self, name: str) -> TargetInfo:
        target = self.project.resolve(name)
        backend = registry.create(target.compute)
        try:
            backend.validate(target.compute)
            return await backend.describe()
        except (TargetError, ConfigError) as err:
            return TargetInfo(False, str(err))


def _run_notes(target: Target) -> list[str]:
    """Settings of the runconfig that labdeck reads but does not apply, said in the run's log."""
    runconfig = target.runconfig
    notes = []
    if runconfig.data_source_substitutions:
        where = f" ({runconfig.path})" if runconfig.path else ""
        names = ", ".join(str(k) for k in runconfig.data_source_substitutions)
        notes.append(f"DataSourceSubstitutions{where} are not applied (data sources: {names}); "
                     "the script reads the data it names")
    return notes


def _child_env() -> dict[str, str]:
    """The environment of a supervisor or zygote started as a new interpreter: ours, with
    labdeck's own folder on PYTHONPATH (a source checkout need not be installed)."""
    env = dict(os.environ)
    inherited = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(PACKAGE_ROOT) + (os.pathsep + inherited if inherited else "")
    return env


def copy_file_sparse(src: Path, dst: Path) -> None:
    """A download of one output: holes of a sparse checkpoint stay holes, mode and times
    kept; a destination that is the source itself is refused before anything is emptied."""
    from .outputs import copy_sparse

    with open(src, "rb") as fin:
        st = os.fstat(fin.fileno())
        with open(os.open(dst, os.O_WRONLY | os.O_CREAT, 0o666), "wb") as fout:
            there = os.fstat(fout.fileno())
            if (st.st_dev, st.st_ino) == (there.st_dev, there.st_ino):
                raise OSError(errno.EINVAL, "source and destination are the same file", str(dst))
            fout.truncate(0)
            copy_sparse(fin.fileno(), fout.fileno(), st.st_size)
            os.fchmod(fout.fileno(), st.st_mode & 0o7777)
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))


def _os_error_line(err: OSError, fallback: Path) -> str:
    """One line naming the path at fault: 'cannot write PATH: No space left on device'."""
    path = err.filename if err.filename is not None else fallback
    return f"cannot write {path}: {err.strerror or err}"


def _remove_tree(path: Path) -> None:
    """Remove a run folder that will not be recorded; what cannot be removed stays (a full
    disk must not turn the real error into another one)."""
    import shutil  # the failure path only: shutil costs every submit ~2 ms to import

    shutil.rmtree(path, ignore_errors=True)


def _snapshot_limit() -> int:
    raw = os.environ.get("LABDECK_SNAPSHOT_LIMIT_MB")
    if not raw:
        return snapshot.DEFAULT_LIMIT_BYTES
    try:
        return int(float(raw) * 1024 * 1024)
    except ValueError:
        raise UsageError(f"LABDECK_SNAPSHOT_LIMIT_MB={raw!r} is not a number") from None


__all__ = ["Engine", "RunNotFound", "Submission"]
