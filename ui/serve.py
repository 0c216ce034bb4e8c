"""`python -m ui.serve run ui/app.py [Streamlit options] -- --store DIR [--model DIR]`: Streamlit's
own command line, started after the assistant's background load (what `xvision ui` runs).

Streamlit runs the app script only when a browser session connects, so without this the first
user's first question would pay for loading the generator. Here the load starts in this process
as the server starts (`ui.chat_backend.preload`); the app's pages import the same module and find
it loading or loaded.
"""

from __future__ import annotations

import sys
import threading
import time


def _preload_when_running(script_args: list[str], wait_s: float = 120.0) -> None:
    """Start the assistant's load once Streamlit's runtime exists (its caches are the runtime's:
    importing the app's modules before it would set them up without it)."""
    from streamlit import runtime

    deadline = time.monotonic() + wait_s
    while not runtime.exists():
        if time.monotonic() > deadline:
            return
        time.sleep(0.05)
    from indexer.core.errors import XVisionError
    from ui import chat_backend, config

    try:
        chat_backend.preload(config.parse(script_args, environ={}))
    except (SystemExit, XVisionError) as exc:  # no store given or none there: the app itself says so
        print(f"ui.serve: not preloading the assistant ({exc})", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    script_args = argv[argv.index("--") + 1:] if "--" in argv else []
    from streamlit.web import cli as streamlit_cli

    threading.Thread(target=_preload_when_running, args=(script_args,), name="xvision-preload", daemon=True).start()
    sys.argv = ["streamlit", *argv]
    return streamlit_cli.main()


if __name__ == "__main__":
    sys.exit(main())
