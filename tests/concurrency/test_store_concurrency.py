"""One store, many writers: threads of one process (the dashboard's workers, watch mode's
threads) and several processes (CLIs, supervisors) at once. Zero errors, every run exactly once,
and of clients racing to replace one dead supervisor exactly one wins."""

from __future__ import annotations

import multiprocessing
import os
import threading
from pathlib import Path

from backends.status import RunStatus
from backends.store import RunStore

THREADS = 4
PROCESSES = 3
PER_WRITER = 150


def _write_runs(db: Path, writer: str, store: RunStore | None = None) -> list[str]:
    """Create runs and move each through statuses and metrics, as a supervisor does."""
    store = store or RunStore(db)
    made = []
    for i in range(PER_WRITER):
        record = store.create(
            "proj", "local", "local", runconfig="local", script=f"{writer}.py",
            args=[str(i)], env={},
        )
        store.set_status(record.id, RunStatus.RUNNING)
        store.add_metric(record.id, "loss", [0.5, 0.25])
        store.update(record.id, outputs=[f"{writer}-{i}"])
        store.set_status(record.id, RunStatus.COMPLETED, exit_code=0)
        made.append(record.id)
    return made


def _process_writer(
    db: str, writer: str, out: multiprocessing.Queue[tuple[str, list[str] | BaseException]]
) -> None:
    try:
        out.put((writer, _write_runs(Path(db), writer)))
    except BaseException as err:
        out.put((writer, err))


def test_threads_and_processes_write_one_store(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    shared = RunStore(db)  # one store object shared by the threads, as Engine.store is
    results: dict[str, list[str]] = {}
    errors: list[BaseException] = []

    def thread_writer(name: str) -> None:
        try:
            results[name] = _write_runs(db, name, shared)
        except BaseException as err:
            errors.append(err)

    ctx = multiprocessing.get_context("spawn")  # no SQLite state crosses a fork
    queue: multiprocessing.Queue[tuple[str, list[str] | BaseException]] = ctx.Queue()
    procs = [ctx.Process(target=_process_writer, args=(str(db), f"p{i}", queue))
             for i in range(PROCESSES)]
    for proc in procs:
        proc.start()
    threads = [threading.Thread(target=thread_writer, args=(f"t{i}",)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=240)
    for _ in procs:
        writer, outcome = queue.get(timeout=240)
        if isinstance(outcome, BaseException):
            errors.append(outcome)
        else:
            results[writer] = outcome
    for proc in procs:
        proc.join(timeout=30)

    assert errors == []
    every = [run_id for made in results.values() for run_id in made]
    assert len(every) == (THREADS + PROCESSES) * PER_WRITER
    assert len(set(every)) == len(every)
    stored = RunStore(db).list_runs()
    assert sorted(r.id for r in stored) == sorted(every)  # each run recorded exactly once
    assert all(r.status is RunStatus.COMPLETED and r.metrics == {"loss": [0.5, 0.25]}
               for r in stored)


def _claim(db: str, run_id: str, seen: tuple[int, int], barrier: object, out: object) -> None:
    store = RunStore(Path(db))
    barrier.wait()  # type: ignore[attr-defined]
    won = store.claim_supervisor(run_id, seen, (os.getpid(), 1))
    out.put(won)  # type: ignore[attr-defined]


def test_one_claim_wins_among_racing_processes(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    store = RunStore(db)
    run = store.create("proj", "docker", "docker", runconfig="docker", script="a.py", args=[],
                       env={})
    store.update(run.id, supervisor_pid=999_999, supervisor_start=42)  # the dead one
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(6)
    out: multiprocessing.Queue[bool] = ctx.Queue()
    procs = [ctx.Process(target=_claim, args=(str(db), run.id, (999_999, 42), barrier, out))
             for _ in range(6)]
    for proc in procs:
        proc.start()
    wins = [out.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
    assert wins.count(True) == 1
    # A terminal run is never claimed, whatever it names.
    store.set_status(run.id, RunStatus.FAILED)
    after = store.get(run.id)
    assert not store.claim_supervisor(run.id, (after.supervisor_pid, after.supervisor_start),
                                      (1, 1))


def test_id_prefix_wildcards_match_themselves(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs.db")
    a = store.create("my_proj", "local", "local", runconfig=None, script="a.py", args=[], env={},
                     run_id="my_proj_1")
    store.create("myXproj", "local", "local", runconfig=None, script="a.py", args=[], env={},
                 run_id="myXproj_2")
    assert store.find("my_").id == a.id  # '_' is not "any character"
    assert store.find("my_proj").id == a.id


def test_connections_of_ended_threads_are_closed(tmp_path: Path) -> None:
    """The dashboard starts a thread per worker: each thread's connection closes with it,
    so a long session does not pile up open files."""
    import gc

    store = RunStore(tmp_path / "runs.db")
    run = store.create("proj", "local", "local", runconfig=None, script="a.py", args=[], env={})

    def read() -> None:
        assert store.get(run.id).id == run.id

    for _ in range(40):
        thread = threading.Thread(target=read)
        thread.start()
        thread.join()
    gc.collect()
    assert store.open_connections() == 1  # this thread's own
    fds = len(os.listdir("/proc/self/fd"))
    for _ in range(40):
        thread = threading.Thread(target=read)
        thread.start()
        thread.join()
    gc.collect()
    assert len(os.listdir("/proc/self/fd")) <= fds
