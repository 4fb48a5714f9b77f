"""The submit dialog: script, target, arguments (and whether to watch)."""

from __future__ import annotations

import shlex

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Select

from backends.watch import Policy

from ..messages import SubmitRequest

POLICIES = tuple(p.value for p in Policy)


class SubmitScreen(ModalScreen[SubmitRequest | None]):
    BINDINGS = [Binding("escape", "dismiss_none", "Close", id="submit.close")]
    DEFAULT_CSS = """
    SubmitScreen { align: center middle; }
    SubmitScreen > Vertical {
        width: 76; max-width: 100%; height: auto; max-height: 100%;
        border: thick $accent; background: $surface; padding: 0 1;
    }
    SubmitScreen Grid { grid-size: 2; grid-columns: 11 1fr; height: auto; grid-gutter: 0 1; }
    SubmitScreen Label { padding: 1 0 0 0; }
    SubmitScreen Horizontal { height: auto; align: right middle; }
    SubmitScreen Button { margin: 0 0 0 1; min-width: 10; }
    """

    def __init__(self, scripts: list[str], targets: list[str], target: str,
                 script: str | None = None, args: list[str] | None = None):
        super().__init__()
        self.scripts = scripts
        self.targets = targets
        self.default_target = target if target in targets else (targets[0] if targets else "")
        self.default_script = script if script in scripts else (scripts[0] if scripts else None)
        self.default_args = args or []

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("[b]Submit a run[/b]")
            with Grid():
                yield Label("script")
                yield Select([(s, s) for s in self.scripts], value=self.default_script
                             or Select.BLANK, id="script", allow_blank=not self.scripts)
                yield Label("target")
                yield Select([(t, t) for t in self.targets], value=self.default_target
                             or Select.BLANK, id="target", allow_blank=False)
                yield Label("arguments")
                yield Input(shlex.join(self.default_args), placeholder="--alpha 0.1",
                            id="args")
                yield Label("watch")
                yield Checkbox("resubmit on change", id="watch")
                yield Label("policy")
                yield Select([(p, p) for p in POLICIES], value="cancel", id="policy",
                             allow_blank=False)
            with Horizontal():
                yield Button("Submit", variant="primary", id="submit")
                yield Button("Close", id="close")

    def on_mount(self) -> None:
        self.query_one("#args", Input).focus()

    def request(self) -> SubmitRequest | None:
        script = self.query_one("#script", Select).value
        target = self.query_one("#target", Select).value
        if not isinstance(target, str):
            self.notify("choose a target", severity="error")
            return None
        try:
            args = shlex.split(self.query_one("#args", Input).value)
        except ValueError as err:
            self.notify(f"arguments: {err}", severity="error")
            return None
        policy = self.query_one("#policy", Select).value
        return SubmitRequest(target, script if isinstance(script, str) else None, args,
                             self.query_one("#watch", Checkbox).value,
                             policy if isinstance(policy, str) else "cancel")

    def _submit(self) -> None:
        request = self.request()
        if request is not None:
            self.dismiss(request)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "submit":
            self._submit()
        else:
            self.dismiss(None)

    def action_dismiss_none(self) -> None:
        self.dismiss(None)
