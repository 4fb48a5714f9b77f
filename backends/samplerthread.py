"""Resource sampling for a supervisor without an event loop (syncsupervisor.py).

A daemon thread waits out the first interval on a plain ``threading.Event``, so a short run
loads nothing (resources.py brings asyncio and psutil); a longer one then runs
``resources.sample_resources`` on its own event loop in that thread until the run ends.
"""

from __future__ import annotations

import threading
from pathlib import Path

TYPE_CHECKING = False  # typing's import: not on the supervisor's path
if TYPE_CHECKING:
    from typing import Any

FIRST_SAMPLE_S = 1.0


class SamplerThread:
    def __init__(self, run_id: str, pid: int, run_dir: Path, first: float = FIRST_SAMPLE_S):
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._wake: tuple[Any, Any] | None = None  # (loop, asyncio.Event) once it samples
        self.result: str | None = None
        self._thread = threading.Thread(target=self._main, args=(run_id, pid, run_dir, first),
                                        name=f"resources-{run_id}", daemon=True)
        self._thread.start()

    def _main(self, run_id: str, pid: int, run_dir: Path, first: float) -> None:
        if self._stopped.wait(first):
            return
        import asyncio

        from .resources import sample_resources

        async def body() -> str | None:
            stop = asyncio.Event()
            with self._lock:
                if self._stopped.is_set():
                    return None
                self._wake = (asyncio.get_running_loop(), stop)
            return await sample_resources(run_id, f"pid:{pid}", run_dir, stop, first_after=0)

        try:
            self.result = asyncio.run(body())
        except Exception as err:  # never the run's problem
            self.result = f"resource sampling of run {run_id} stopped: {err!r}"

    def stop(self, timeout: float = 2.0) -> str | None:
        """Stop sampling; why it ended early, if it did (a sample in flight is given
        ``timeout``)."""
        with self._lock:
            self._stopped.set()
            wake = self._wake
        if wake is not None:
            loop, event = wake
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # its loop has already ended
                pass
        self._thread.join(timeout)
        return self.result
