"""`python -m ui.serve run ui/app.py [Streamlit options] -- --store DIR [--model DIR]`: Streamlit's
own command line, started after the assistant's background load (what `xvision ui` runs).

Streamlit runs the app script only when a browser session connects, so without this the first
user's first question would pay for loading the generator. Here the load starts in this process
as the server starts (`ui.chat_backend.preload`); the app's pages import the same module and find
it loading or loaded.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    script_args = argv[argv.index("--") + 1:] if "--" in argv else []
    from streamlit.web import cli as streamlit_cli

    from indexer.core.errors import XVisionError
    from ui import chat_backend, config

    try:
        chat_backend.preload(config.parse(script_args, environ={}))
    except (SystemExit, XVisionError) as exc:  # no store given or none there: the app itself says so
        print(f"ui.serve: not preloading the assistant ({exc})", file=sys.stderr)
    sys.argv = ["streamlit", *argv]
    return streamlit_cli.main()


if __name__ == "__main__":
    sys.exit(main())
