"""What a remote run's log says about its SSH link and its sync, read-only.

A remotedocker run's supervisor writes ``sys`` lines as its link drops and comes back
(backends/docker/remote_link.py) and as the project syncs (backends/ssh/sync.py):

    the SSH link to HOST was lost; reconnecting (the run goes on there)   -> reconnecting
    the SSH link to HOST is back after 2.1 s (3 attempts)                 -> connected
    the SSH link to HOST is lost: <why>                                   -> lost
    sync: 120/5000 files, 12.0/200.0 MB                                   -> sync progress

``LinkWatch`` reads a log incrementally (only what it gained since the last look, at most the
last TAIL_BYTES of a log first seen), so the runs list can ask every second for each remote run
in flight. No textual here: the store worker's thread calls it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

REMOTE_TYPES = ("remotedocker", "virtualmachine")
TAIL_BYTES = 8 << 20  # of a log first seen: its link messages are near its end
READ_MAX = 16 << 20  # at most per look (a flood in between: only its end is read)

LINK_LOST = re.compile(r"^the SSH link to (\S+) was lost; reconnecting")
LINK_BACK = re.compile(r"^the SSH link to (\S+) is back after")
LINK_GONE = re.compile(r"^the SSH link to (\S+) is lost: ")
SYNC = re.compile(r"^sync: (\d+)/(\d+) files, (\d+\.\d)/(\d+\.\d) MB$")  # ssh/sync.py's


def is_remote(target_type: str) -> bool:
    return target_type in REMOTE_TYPES


class LinkFacts:
    """The link's last known state (None: the log never said), and the last sync progress."""

    __slots__ = ("state", "sync", "where")

    def __init__(self) -> None:
        self.state: str | None = None
        self.where: str | None = None
        self.sync: str | None = None

    def feed(self, text: str) -> None:
        """One sys line's text."""
        if text.startswith("the SSH link to "):
            for pattern, state in ((LINK_LOST, "reconnecting"), (LINK_BACK, "connected"),
                                   (LINK_GONE, "lost")):
                found = pattern.match(text)
                if found:
                    self.state, self.where = state, found[1]
                    return
        elif text.startswith("sync: "):
            found = SYNC.match(text)
            if found:
                files, total_files, sent, total = found.groups()
                self.sync = (None if files == total_files and sent == total
                             else f"sync {files}/{total_files} files, {sent}/{total} MB")

    def as_tuple(self) -> tuple[str | None, str | None, str | None]:
        return (self.state, self.where, self.sync)


def feed_lines(facts: LinkFacts, lines: list[str]) -> None:
    """Log lines (``<ts> <stream> <text>``): the sys ones go to ``facts``."""
    for raw in lines:
        _ts, _, rest = raw.partition(" ")
        if rest.startswith("sys "):
            facts.feed(rest[4:])


class LinkWatch:
    def __init__(self, path: Path):
        self.path = path
        self.offset = 0
        self.facts = LinkFacts()

    def update(self) -> LinkFacts:
        try:
            with open(self.path, "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                if size < self.offset:  # a new file under the name: read it afresh
                    self.offset, self.facts = 0, LinkFacts()
                start = self.offset
                if (start == 0 and size > TAIL_BYTES) or size - start > READ_MAX:
                    start = size - min(TAIL_BYTES, READ_MAX)
                fh.seek(start)
                data = fh.read(size - start)
        except OSError:
            return self.facts
        end = data.rfind(b"\n")
        if end < 0:
            return self.facts
        chunk = data[: end + 1]
        if start != self.offset:  # jumped into the middle of a line
            chunk = chunk[chunk.find(b"\n") + 1:]
        self.offset = start + end + 1
        if b" sys " in chunk:
            text = chunk.decode("utf-8", errors="replace")
            feed_lines(self.facts, [line for line in text.split("\n") if " sys " in line])
        return self.facts


def link_label(state: str | None) -> str:
    """What a row or a status line says for a link state ("" when nothing to say)."""
    return {"reconnecting": "link reconnecting", "lost": "link lost",
            "connected": "link connected"}.get(state or "", "")
