"""`python -m ui.serve run ui/app.py [Streamlit options] -- --store DIR [--model DIR]`: Streamlit's
own command line, started after the assistant's background load (what `xvision ui` runs).

Streamlit runs the app script only when a browser session connects, so without this the first
user's first question would pay for loading the generator. Here the load starts in this process
as the server starts (`ui.chat_backend.preload`); the app's pages import the same module and find
it loading or loaded.

Garbage collection, for many sessions at once: by default Streamlit runs a full collection
(`gc.collect(2)`) after every script run. With the assistant loaded (torch, transformers, pandas,
the store: about 600 000 tracked objects) one costs 0.28-0.30 s of holding the GIL on the 2-core
development machine, so 20 sessions asking at once each waited for the others' collections:
profiled with py-spy (`--gil`) under `benchmarks/ui_load.py`, 70 % of the server's GIL time at 20
sessions was that line. The server therefore turns it off (`runner.postScriptGC`, unless the
command line sets it), and once the assistant has loaded it moves every object then alive into the
collector's permanent generation (`gc.freeze`): the libraries and the model are never garbage, and
the collections Python still runs by itself then only walk what was allocated since.
"""

from __future__ import annotations

import gc
import sys
import threading
import time

#: Streamlit options this server sets unless its command line gives them (see the module docstring).
DEFAULT_OPTIONS = {"--runner.postScriptGC": "false"}


def _preload_when_running(script_args: list[str], wait_s: float = 120.0) -> None:
    """Start the assistant's load once Streamlit's runtime exists (its caches are the runtime's:
    importing the app's modules before it would set them up without it); once it has loaded,
    freeze the heap it built (see the module docstring)."""
    from streamlit import runtime

    deadline = time.monotonic() + wait_s
    while not runtime.exists():
        if time.monotonic() > deadline:
            return
        time.sleep(0.05)
    from indexer.core.errors import XVisionError
    from ui import chat_backend, config

    try:
        loaded = chat_backend.preload(config.parse(script_args, environ={}))
    except (SystemExit, XVisionError) as exc:  # no store given or none there: the app itself says so
        print(f"ui.serve: not preloading the assistant ({exc})", file=sys.stderr)
        return
    if loaded.exception() is None:  # waits for the load; a failed one is shown by the Ask page
        freeze_heap()


def freeze_heap() -> None:
    """Collect what is garbage now, then exempt every surviving object from later collections.

    Objects frozen here are still freed by reference counting; only a reference cycle among them
    would never be collected, which is why the collection runs first.
    """
    gc.collect()
    gc.freeze()


def streamlit_argv(argv: list[str]) -> list[str]:
    """Streamlit's command line: `argv` with this server's `DEFAULT_OPTIONS` added before the script
    arguments (`--`), each unless `argv` sets it already (`--opt value` or `--opt=value`)."""
    split = argv.index("--") if "--" in argv else len(argv)
    own, script = argv[:split], argv[split:]
    given = {a.split("=", 1)[0] for a in own if a.startswith("--")}
    extra = [piece for option, value in DEFAULT_OPTIONS.items() if option not in given for piece in (option, value)]
    return [*own, *extra, *script]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    script_args = argv[argv.index("--") + 1:] if "--" in argv else []
    from streamlit.web import cli as streamlit_cli

    threading.Thread(target=_preload_when_running, args=(script_args,), name="xvision-preload", daemon=True).start()
    sys.argv = ["streamlit", *streamlit_argv(argv)]
    return streamlit_cli.main()


if __name__ == "__main__":
    sys.exit(main())
