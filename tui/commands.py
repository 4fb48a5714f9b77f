"""Command palette: every dashboard action, plus "submit SCRIPT on TARGET" shortcuts."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

from textual.command import DiscoveryHit, Hit, Hits, Provider

from .keymap import APP_BINDINGS
from .messages import SubmitRequest

Command = tuple[str, Any, str]  # text, callback, help


class LabdeckCommands(Provider):
    _submits: list[Command] | None = None

    async def startup(self) -> None:
        # Listing the project's scripts walks its files: once per palette, off the UI thread.
        try:
            self._submits = await asyncio.to_thread(self._submit_commands)
        except Exception as err:
            self._broken(err)

    def _broken(self, err: Exception) -> None:  # a broken project: the palette still opens
        self.app.notify(f"command palette: {err}", severity="warning")
        self._submits = []

    def _actions(self) -> list[Command]:
        app: Any = self.app
        return [(f"{b.description} ({app.user_keymap.get(b.id or '', b.key)})",
                 partial(app.run_action, b.action), b.tooltip) for b in APP_BINDINGS]

    def _submit_commands(self) -> list[Command]:
        app: Any = self.app
        scripts = app.project_scripts()
        targets = app.engine.project.compute_names()
        return [(f"Submit {script} on {target}",
                 partial(app.start_submit, SubmitRequest(target, script, [])),
                 f"labdeck submit -c {target} {script}")
                for target in targets for script in scripts]

    def _commands(self) -> list[Command]:
        if self._submits is None:
            try:
                self._submits = self._submit_commands()
            except Exception as err:
                self._broken(err)
        return self._actions() + (self._submits or [])

    async def discover(self) -> Hits:
        for text, callback, help_text in self._actions():
            yield DiscoveryHit(text, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, callback, help_text in self._commands():
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), callback, help=help_text)
