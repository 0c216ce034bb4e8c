"""The app's settings: which store, which model, where uploads may be written.

`xvision ui` runs `streamlit run ui/app.py -- --store DIR ...`; Streamlit hands the arguments after
`--` to the script in `sys.argv`. Tests (AppTest cannot pass arguments) and other launchers set the
same settings through environment variables (`XVISION_UI_STORE`, `XVISION_UI_MODEL`,
`XVISION_UI_DATA_DIR`); arguments win.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

#: Largest upload accepted per file, in megabytes (also passed to Streamlit as server.maxUploadSize).
MAX_UPLOAD_MB = 200


@dataclass(frozen=True)
class AppConfig:
    """Where the app reads and writes.

    Attributes:
        store: the store folder the app shows (and the add-data page appends to).
        model: the generator's model folder, or None for answers from the stored analyses only.
        data_dir: the only folder the app writes uploads into (default: `<store>-uploads` beside the store).
    """

    store: Path
    model: Path | None
    data_dir: Path


def parse(argv: list[str] | None = None, environ: dict[str, str] | None = None) -> AppConfig:
    """Settings from the script arguments, else the environment."""
    environ = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(prog="ui/app.py", add_help=False)
    parser.add_argument("--store", default=environ.get("XVISION_UI_STORE"))
    parser.add_argument("--model", default=environ.get("XVISION_UI_MODEL") or None)
    parser.add_argument("--data-dir", default=environ.get("XVISION_UI_DATA_DIR") or None)
    args, _ = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    if not args.store:
        raise SystemExit("no store given: run `xvision ui --store DIR` (or set XVISION_UI_STORE)")
    store = Path(args.store).expanduser().resolve()
    data_dir = Path(args.data_dir).expanduser().resolve() if args.data_dir else store.with_name(store.name + "-uploads")
    return AppConfig(store=store, model=Path(args.model).expanduser().resolve() if args.model else None,
                     data_dir=data_dir)
