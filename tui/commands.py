"""Command palette: every dashboard action, plus "submit SCRIPT on TARGET" shortcuts."""

from __future__ import annotations

from functools import partial
from typing import Any

from textual.command import DiscoveryHit, Hit, Hits, Provider

from .keymap import APP_BINDINGS


class LabdeckCommands(Provider):
    def _commands(self) -> list[tuple[str, Any, str]]:
        app: Any = self.app
        out: list[tuple[str, Any, str]] = []
        keymap = getattr(app, "user_keymap", {})
        for b in APP_BINDINGS:
            keys = keymap.get(b.id or "", b.key)
            out.append((f"{b.description} ({keys})", partial(app.run_action, b.action),
                        b.tooltip))
        engine = getattr(app, "engine", None)
        if engine is not None and hasattr(app, "start_submit"):
            from .messages import SubmitRequest

            try:
                scripts = app.project_scripts()
                targets = engine.project.compute_names()
            except Exception as err:  # a broken project: the palette still opens
                app.notify(f"command palette: {err}", severity="warning")
                scripts, targets = [], []
            for target in targets:
                for script in scripts:
                    out.append((f"Submit {script} on {target}",
                                partial(app.start_submit, SubmitRequest(target, script, [])),
                                f"labdeck submit -c {target} {script}"))
        return out

    async def discover(self) -> Hits:
        for text, callback, help_text in self._commands()[:len(APP_BINDINGS)]:
            yield DiscoveryHit(text, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, callback, help_text in self._commands():
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), callback, help=help_text)
