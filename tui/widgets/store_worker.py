"""The dashboard's store reads, off the UI thread.

One thread does them all: one SQLite connection (the store gives each thread its own), so the
Runs panel's ``data_version`` polls compare like with like, and no connection is opened per read.
Reads take turns; a burst coalesces: while a read of one kind runs, the newest request of that
kind waits and replaces any older one, so twenty run selections in a row are at most two reads.
A read returns the message to post (or None); a read that raises ends as the app's one-line
notification, like every worker failure (``LabdeckApp.on_worker_state_changed``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from textual.dom import DOMNode
from textual.message import Message

Read = Callable[[], Message | None]


class StoreWorker:
    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="labdeck-store")
        self._running: set[str] = set()
        self._waiting: dict[str, tuple[DOMNode, Read]] = {}

    def request(self, node: DOMNode, kind: str, read: Read) -> None:
        """Run ``read`` on the store thread and post the message it returns to ``node``."""
        if kind in self._running:
            self._waiting[kind] = (node, read)
            return
        self._running.add(kind)
        node.run_worker(self._read(node, kind, read), name=f"read {kind}",
                        group=f"store-{kind}", exit_on_error=False)

    async def _read(self, node: DOMNode, kind: str, read: Read) -> None:
        try:
            message = await asyncio.get_running_loop().run_in_executor(self._pool, read)
            if message is not None:
                node.post_message(message)  # refused (False) once the widget is gone
        finally:
            self._running.discard(kind)
            waiting = self._waiting.pop(kind, None)
            if waiting is not None and waiting[0].is_attached:
                self.request(waiting[0], kind, waiting[1])

    def busy(self) -> bool:
        """A read runs or waits (tests wait for the dashboard to settle)."""
        return bool(self._running or self._waiting)

    def close(self, wait: bool = False) -> None:
        """No new reads; one that runs finishes on its own (its result is dropped), waited for
        with ``wait`` (before the store's connections are closed under it)."""
        self._waiting.clear()
        self._pool.shutdown(wait=wait, cancel_futures=True)
