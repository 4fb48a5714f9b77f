"""A supervisor forked ahead is sent only what it does not do already: each line wakes it while
the client still records the run (zygote.PendingSupervisor.preload)."""

from __future__ import annotations

import os

from backends.zygote import EARLY_PRELOAD, PendingSupervisor


def _sent(knows_target: bool, module: str, early: str) -> bytes:
    go_r, go_w = os.pipe()
    done_r, done_w = os.pipe()
    try:
        PendingSupervisor(os.getpid(), go_w, done_r, knows_target=knows_target).preload(
            module, early)
        os.set_blocking(go_r, False)
        try:
            return os.read(go_r, 65536)
        except BlockingIOError:
            return b""
    finally:
        for fd in (go_r, go_w, done_r, done_w):
            os.close(fd)


def test_a_supervisor_that_knows_its_target_is_not_told_the_early_start() -> None:
    # forked with the target (the CLI's early_fork(target)): prestart.warm decided already
    assert _sent(True, "backends.local", "backends.localstart") == b""
    assert _sent(True, "backends.docker.backend", "backends.docker.prestart") == (
        b"preload backends.docker.backend\n")


def test_a_supervisor_forked_blind_is_told_what_it_cannot_know() -> None:
    assert "backends.local" in EARLY_PRELOAD  # among its own steps: never sent
    assert _sent(False, "backends.local", "backends.localstart") == (
        b"early backends.localstart\n")
    assert _sent(False, "backends.docker.backend", "") == b"preload backends.docker.backend\n"
