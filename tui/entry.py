"""The ``labdeck`` console script. A plain ``labdeck submit [-c NAME] [-a] SCRIPT [ARGS...]`` is
decided here, before anything heavy is imported, so its supervisor-to-be is forked as early as
possible (see ``submitting.fast_submit``); everything else goes to the click CLI in ``cli.py``."""

from __future__ import annotations

import os
import sys


def main() -> None:
    argv = sys.argv[1:]
    if argv[:1] == ["submit"] and os.environ.get("LABDECK_FAST_SUBMIT") != "0":
        from backends import phasetrace

        phasetrace.mark("cli-main")
        from .submitting import fast_submit

        fast_submit(argv)  # exits when it handled the command; returns when it is not plain
    from .cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
