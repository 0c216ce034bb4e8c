"""`xvision`: one command, with a subcommand per task. Run `xvision --help` or `xvision SUBCOMMAND --help`."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import datetime as dt
import gc
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from indexer.core.errors import XVisionError

#: How this command line words a library error's `field`: the option that sets it.
FLAG_FOR_FIELD: dict[str, str] = {
    "date": "--date YYYY-MM-DD",
    "bands": "--bands B02,B03,... (SKIP for others)",
    "boa_offset": "--boa-offset",
    "parcels": "--parcels FILE or --grid N",
    "grid": "--grid N",
    "id_column": "--id-column",
    "min_valid_fraction": "--min-valid",
    "encoder": "--encoder {hint}",
    "weights": "--weights or $XVISION_CROMA_WEIGHTS",
    "k": "-k",
    "format": "--format",
    "store": "--store",
    "imagery": "--imagery",
    "resume": "--resume",
    "base_model": "--base-model or $XVISION_QWEN2_PATH",
    "lang": "--lang",
    "limit": "--limit",
    "epochs": "--epochs",
    "batch_size": "--batch-size",
    "lr": "--lr",
    "index_type": "--index-type",
    "scheduler": "--scheduler tcp://HOST:PORT or --workers N",
    "workers": "--workers N",
    "parcels_per_task": "--parcels-per-task",
    "out": "--out FILE",
    "season": "--season YYYY",
    "similar_k": "--similar N",
}


def word_error(exc: XVisionError) -> str:
    """The library's one-line message, plus the option that fixes it when there is one."""
    flag = FLAG_FOR_FIELD.get(exc.field or "")
    if not flag:
        return str(exc)
    return f"{exc} (option: {flag.format(hint=exc.hint or '').strip()})"

DESCRIPTION = """\
XVision: ask questions about agricultural fields from Sentinel-2 imagery.

Start by indexing imagery into a store (a folder), then query it:
  xvision index ../shared/data/worldcereal-hesbaye --grid 10 --store hesbaye-store
  xvision history grid10-32631-664000-5612120 --store hesbaye-store
  xvision similar grid10-32631-664000-5612120 --date 2021-06-01 --store hesbaye-store
  xvision export --store hesbaye-store --format csv --out records.csv
  xvision reindex --store hesbaye-store --index-type ivf-pq      (large stores: approximate search)
  xvision ask "How is grid10-32631-664000-5612120 doing?" --store hesbaye-store
Train the generator on varied imagery (indexing more into a store appends to it):
  xvision index ../shared/data/bigearthnet-s2-examples --grid 20 --store hesbaye-store
  xvision train --store hesbaye-store --out tiny-model
  xvision eval --model tiny-model --store hesbaye-store
  xvision describe grid10-32631-664000-5612120 --date 2021-06-01 --store hesbaye-store --model tiny-model
"""


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date in YYYY-MM-DD form") from None


def _fraction(value: str) -> float:
    number = float(value)
    if not 0 <= number <= 1:
        raise argparse.ArgumentTypeError(f"{value} is not between 0 and 1")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xvision", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "index",
        help="index Sentinel-2 imagery per parcel and date into a store",
        description=(
            "Read Sentinel-2 acquisitions, cut one chip per parcel (or grid cell), compute spectral "
            "indices, write an agronomic analysis, embed the chip and store everything. Re-indexing "
            "the same parcel and date replaces its record; new dates and parcels are appended."
        ),
        epilog=(
            "Inputs may be: a multi-band GeoTIFF with band descriptions (or --bands), a folder of "
            "per-band files (*_B04.tif, SAFE IMG_DATA *.jp2), a STAC Item JSON with local assets, or a "
            "folder holding any of these.\n\nexample:\n  xvision index ../shared/data/worldcereal-hesbaye "
            "--grid 10 --store hesbaye-store\n  xvision index ../shared/data/worldcereal-hesbaye --grid 10 "
            "--store hesbaye-store --workers 2    (embedding on 2 local Dask workers)"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="+", metavar="RASTER_OR_DIR_OR_STAC", help="acquisitions to index")
    p.add_argument("--store", required=True, type=Path, help="store folder (created if missing)")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--parcels", type=Path, help="parcels file: GeoJSON, GeoPackage, zipped shapefile, GeoParquet")
    where.add_argument("--grid", type=int, metavar="N", help="no parcels file: cut each raster into N x N pixel cells")
    p.add_argument("--id-column", help="parcels column holding the parcel id (default: id / parcel_id, else generated)")
    p.add_argument("--date", type=_date, help="acquisition date YYYY-MM-DD when the files do not say it")
    p.add_argument("--bands", help="band order of a stack without band names, e.g. B02,B03,B04,B08 (SKIP for others)")
    p.add_argument("--boa-offset", type=float, help="force the DN offset (-1000 for baseline >= 04.00, 0 before)")
    p.add_argument("--encoder",
                   help="spectral-v2 (default: offline, needs no weights), spectral-v1 (stores built before "
                        "v2), croma-large or croma-base (need CROMA weights)")
    p.add_argument("--weights", type=Path, help="CROMA weights file (default: $XVISION_CROMA_WEIGHTS or torchgeo cache)")
    p.add_argument("--precision", choices=("auto", "float32", "bfloat16"), default="auto",
                   help="CROMA compute precision (auto: bfloat16 where the hardware runs it natively)")
    p.add_argument("--batch-size", type=int, default=8, help="chips per encoder batch (default 8)")
    p.add_argument("--min-valid", type=_fraction, default=0.3,
                   help="share of cloud-free parcel pixels below which a record is flagged not valid (default 0.3)")
    p.add_argument("--commit-every", type=int, default=2048, help="records between commits (default 2048)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    dask = p.add_mutually_exclusive_group()
    dask.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                      help="embed on this running Dask cluster (workers must see the same raster paths); "
                           "this process stays the store's only writer")
    dask.add_argument("--workers", type=int, metavar="N", help="start N local Dask worker processes for the embedding")
    p.add_argument("--parcels-per-task", type=int, default=64,
                   help="with --scheduler/--workers: parcels of one raster per Dask task (default 64)")
    p.set_defaults(func=_cmd_index)

    p = sub.add_parser(
        "reindex", help="rebuild a store's search index with another index type (and compact it)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Merge all segments of a store into one and build its nearest-neighbour index anew; later commits
use the same type. Record ids, records and embeddings do not change.

Index types:
  auto     exact Flat while small (up to 2^24 floats: 262k records at 64-d), else ivf-pq (default)
  flat     exact search, 4 bytes per dimension in memory (memory-mapped)
  hnsw     graph over 8-bit codes, re-ranked exactly; slow to build at high dimension
  ivf-sq8  inverted lists of 8-bit codes, re-ranked exactly
  ivf-pq   inverted lists of 4-bit product codes (fast scan), re-ranked exactly; smallest

Example:
  xvision reindex --store hesbaye-store --index-type ivf-pq
""")
    p.add_argument("--store", required=True, type=Path, help="store folder")
    p.add_argument("--index-type", required=True, choices=("auto", "flat", "hnsw", "ivf-sq8", "ivf-pq"),
                   help="the new index type")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=_cmd_reindex)

    p = sub.add_parser(
        "verify", help="check every byte of a store against its manifest (exit status 0 ok, 1 damaged)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Hash every file of a store in full and check its manifest (checksum, fields, record ids). Lists
every problem with the file it is in; never writes. Opening a store checks less (file sizes, the
first and last MiB; small stores in full; vectors block by block as queries read them).

Exit status: 0 the store is intact, 1 it is damaged, 2 it is not a store.

Example:
  xvision verify --store hesbaye-store
""")
    p.add_argument("--store", required=True, type=Path, help="store folder")
    p.set_defaults(func=_cmd_verify)

    p = sub.add_parser("export", help="write every record to CSV, Parquet or GeoJSON",
                       description="One row per record: parcel_id, date, validity, every index statistic, the analyses.")
    p.add_argument("--store", required=True, type=Path, help="store folder")
    p.add_argument("--format", default="csv", choices=("csv", "parquet", "geojson"), help="output format (default csv)")
    p.add_argument("--out", type=Path, help="output file (default: records.FORMAT in the current folder)")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("similar", help="parcels whose imagery looked most like this parcel on a date",
                       description="Nearest records by embedding (cosine similarity), other parcels and valid dates only.")
    p.add_argument("parcel_id", metavar="PARCEL_ID")
    p.add_argument("--date", required=True, type=_date, help="date of the parcel's record, YYYY-MM-DD")
    p.add_argument("--store", required=True, type=Path, help="store folder")
    p.add_argument("-k", type=int, default=10, help="how many (default 10)")
    p.add_argument("--include-same-parcel", action="store_true", help="also list the parcel's own other dates")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_similar)

    p = sub.add_parser("history", help="every date of one parcel, oldest first",
                       description="The parcel's records over time: validity, index means and the analysis.")
    p.add_argument("parcel_id", metavar="PARCEL_ID")
    p.add_argument("--store", required=True, type=Path, help="store folder")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_history)

    p = sub.add_parser(
        "report",
        help="a one-page field report of a parcel's season (HTML), with its records as CSV beside it",
        description=(
            "Write a parcel's season on one page, from the store: its identity and crop, the season "
            "chart with the past seasons, the last usable observations with their analyses, the newest "
            "one against the same time of year in other seasons, the crop-calendar events found, the "
            "parcels that looked alike (thumbnails re-read from their rasters), the unusable and suspect "
            "dates, and for every number its record id, date and raster file name. One self-contained "
            "HTML file (no script, no link out; prints on one A4 page), and FILE.csv beside it with the "
            "parcel's records."
        ),
        epilog="example:\n  xvision report Flanders31UES-001 --store flanders-store --out 001-2019.html --season 2019",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("parcel_id", metavar="PARCEL_ID")
    p.add_argument("--store", required=True, type=Path, help="store folder")
    p.add_argument("--out", required=True, type=Path, help="the report's file (.html); the CSV goes beside it")
    p.add_argument("--season", type=int, help="calendar year reported on (default: the parcel's newest)")
    p.add_argument("--similar", type=int, default=4, help="how many similar parcels to show (default 4; 0: none)")
    p.add_argument("--imagery", type=Path, action="append", default=[],
                   help="folder where rasters moved since indexing are found by name (repeatable; "
                        "also $XVISION_IMAGERY, ':'-separated)")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser(
        "train",
        help="fine-tune the analysis generator on a store (vision adapter + LoRA)",
        description=(
            "Train the generator that writes analyses from embeddings. The tiny profile (offline "
            "default) first trains a small Qwen2-architecture LM on the store's analyses, then freezes "
            "it and trains the vision adapter + LoRA on (embedding, analysis) pairs. The full profile "
            "fine-tunes Qwen2-1.5B (local path or cached hub id) with LoRA on a CROMA-Large store. "
            "Validation uses held-out parcels (no parcel's dates leak into training). Each training "
            "chip is re-read from the raster the store recorded as its source and perturbed "
            "spectrally (brightness, band gains, haze, mixed-in spectra), its indices and analysis "
            "recomputed: that is what makes the generator hold up on imagery unlike the store's. If "
            "the rasters were moved, training stops before it starts and lists them: name their new "
            "folder with --imagery (or, knowingly, --embeddings-only). The more varied the store's "
            "imagery (regions, seasons, clouds), the better the generator does on imagery it never "
            "saw; on a large store each chip gets fewer perturbed copies, so training time stays "
            "bounded (tiny profile: about 13 minutes on 2 idle CPU cores)."
        ),
        epilog="example (the README's training store: three real samples in one store):\n"
               "  xvision index ../shared/data/worldcereal-hesbaye --grid 10 --store train-store\n"
               "  xvision index ../shared/data/bigearthnet-s2-examples --grid 20 --store train-store\n"
               "  xvision train --store train-store --out tiny-model",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--store", required=True, type=Path, help="store folder written by `xvision index`")
    p.add_argument("--profile", default="tiny", choices=("tiny", "full"), help="model profile (default tiny)")
    p.add_argument("--out", required=True, type=Path, help="model folder to write")
    p.add_argument("--imagery", type=Path, nargs="+", metavar="PATH",
                   help="folders to find the store's rasters in when they were moved since indexing")
    p.add_argument("--embeddings-only", action="store_true",
                   help="do not re-read chips: train on the stored embeddings only, without the spectral "
                        "augmentation (weaker analyses on imagery unlike the store's)")
    p.add_argument("--epochs", type=int, help="epochs of the vision stage (default: the profile's)")
    p.add_argument("--lr", type=float, help="peak learning rate of the vision stage (default: the profile's)")
    p.add_argument("--batch-size", type=int, help="examples per optimizer step (default: the profile's)")
    p.add_argument("--lang", default="both", choices=("en", "fr", "both"),
                   help="language of prompts and analyses (default both: each record in one language per epoch, "
                        "drawn anew every epoch)")
    p.add_argument("--base-model", help="full profile: Qwen2 directory or cached hub id (default $XVISION_QWEN2_PATH)")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--no-onnx", action="store_true",
                   help="do not write the ONNX copy the assistant serves the model from (see export-onnx)")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser(
        "export-onnx",
        help="write the ONNX copy of a trained model that answers start from without torch",
        description=(
            "Export a trained model (one that writes a record's analysis, such as the tiny profile) "
            "to ONNX, with LoRA folded in, into MODEL/serve/. The assistant, `xvision ask` and the app "
            "then write analyses with ONNX Runtime instead of loading torch: a question from the "
            "terminal that needs a generated analysis starts in under 2 s instead of about 6 s, with "
            "the same text. `xvision train` writes it at the end of training; run this for a model "
            "trained before, or after changing its files (a copy that no longer matches them is not "
            "used, and answers say so). The export is checked against torch before it is written."
        ),
        epilog="example:\n  xvision export-onnx models/tiny-demo",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", type=Path, metavar="MODEL", help="model folder written by `xvision train`")
    p.set_defaults(func=_cmd_export_onnx)

    p = sub.add_parser(
        "eval",
        help="score generated analyses against each record's own indices",
        description=(
            "For each record of the store's held-out parcels (every record when the model was not "
            "trained on this store), generate the analysis from the embedding alone and check the "
            "vigor, moisture and cover classes it states against the classes of the record's indices. "
            "Records flagged not valid count as right when the text says the observation is unusable. "
            "Scores are of the model's own text (held to the analysis grammar, before unusable records "
            "are shown their unusable text); the shares of outputs with a repeated sentence, a missing "
            "aspect, an unusable record described as usable, or a number that is not the record's value "
            "are given for the decoded text and for what users see."
        ),
    )
    p.add_argument("--model", required=True, type=Path, help="model folder written by `xvision train`")
    p.add_argument("--store", required=True, type=Path, help="store folder")
    p.add_argument("--lang", choices=("en", "fr", "both"),
                   help="language to generate in (default: the languages the model was trained in; both: each "
                        "language scored, and reported, on its own)")
    p.add_argument("--repair", default="fill", choices=("fill", "override"),
                   help="when the model's likelihood decides a class: fill (default: only where the model stated "
                        "none) or override (also replace a stated class that is not its most probable; to compare)")
    p.add_argument("--limit", type=int, help="score only the first N records")
    p.add_argument("--json", action="store_true", help='print {"overall", "per_aspect", "n", ...} as JSON')
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("describe", help="generated analysis of one parcel on one date, beside its index values",
                       description="Write the analysis from the record's embedding and show the computed indices next to it. "
                                   "When the assistant's grounding gate would set the text aside (a class the record's "
                                   "indices do not give, a number that is not the record's), a warning says so and why.")
    p.add_argument("parcel_id", metavar="PARCEL_ID")
    p.add_argument("--date", required=True, type=_date, help="date of the record, YYYY-MM-DD")
    p.add_argument("--store", required=True, type=Path, help="store folder")
    p.add_argument("--model", type=Path, help="model folder (default: the stored analysis only, no generation)")
    p.add_argument("--lang", default="en", choices=("en", "fr"), help="language")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_describe)

    p = sub.add_parser(
        "ask",
        help="ask a question about the parcels in a store, in English or French",
        description=(
            "Answer a question in plain words about a parcel on a date, its history, a comparison with "
            "past seasons, similar parcels, or which parcels meet a condition. Every number in the "
            "answer is a stored record's value (or the difference of two), cited with parcel, date, "
            "index values, valid and cloud fractions and source. Unusable (cloudy) and suspect "
            "(scene-wide jump) observations are reported as such, never read as the crop's condition."
        ),
        epilog=(
            "examples:\n"
            '  xvision ask "How is parcel Flanders31UES-001 doing in June 2019?" --store flanders-store\n'
            '  xvision ask "Which parcels had NDVI below 0.3 in July 2019?" --store flanders-store --json\n'
            '  xvision ask "Comment va la parcelle 001 en octobre 2019 par rapport à octobre 2018 ?" --store flanders-store'
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("question", metavar="QUESTION", help="the question, in quotes")
    p.add_argument("--store", required=True, type=Path, help="store folder written by `xvision index`")
    p.add_argument("--model", type=Path,
                   help="generator folder written by `xvision train` (default: the store's registered model, else "
                        "the bundled demo model, else answers composed from the stored analyses)")
    p.add_argument("--json", action="store_true",
                   help='print {"question", "plan", "answer", "citations", "similar", "history", "warnings", '
                        '"timings"} as JSON; timings: seconds to import and open the store and model choice '
                        '("startup", "open"), to load the generator when the answer used it ("load"), per step '
                        '("plan", "retrieve", "generate", "ground", "compose") and in all ("total")')
    p.add_argument("--lang", choices=("en", "fr"), help="language of the answer (default: the question's)")
    p.add_argument("--today", type=_date,
                   help="reference date for 'last month', 'this season'... (default: the newest acquisition)")
    p.set_defaults(func=_cmd_ask)

    p = sub.add_parser(
        "ui",
        help="open the web app: map, parcel seasons, chat with the assistant, add data",
        description=(
            "Start the Streamlit app on a store and print its address. Pages: Map (parcels coloured by "
            "an index on a date; click one to select it), Parcel (its seasons, a date against past "
            "seasons, parcels that looked alike), Ask (questions answered from the records, with "
            "citations) and Add data (upload rasters and parcels and index them). Runs until Ctrl+C."
        ),
        epilog="example:\n  xvision ui --store demo-store --model models/tiny-demo --port 8501",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--store", required=True, type=Path, help="store folder written by `xvision index`")
    p.add_argument("--model", type=Path, help="generator model folder (default: answers use the stored analyses)")
    p.add_argument("--port", type=int, default=8501, help="port to serve on (default 8501)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 for all)")
    p.add_argument("--data-dir", type=Path,
                   help="folder the Add data page writes uploads into (default: STORE-uploads beside the store)")
    p.set_defaults(func=_cmd_ui)
    return parser


def _cmd_index(args: argparse.Namespace) -> int:
    from indexer.core.limits import Limits
    from indexer.pipeline import IndexConfig, index
    from indexer.reader import ReadOptions, parse_bands_option

    from xvision_model.encoders import DEFAULT_ENCODER, build_encoder

    name = args.encoder or DEFAULT_ENCODER  # imported here so that --help needs no torch
    options = {"weights": args.weights, "precision": args.precision} if name.startswith("croma") else {}
    config = IndexConfig(
        store=args.store,
        inputs=tuple(args.inputs),
        parcels=args.parcels,
        id_column=args.id_column,
        grid=args.grid,
        read=ReadOptions(
            bands=parse_bands_option(args.bands) if args.bands else None,
            date=args.date,
            boa_offset=args.boa_offset,
            limits=Limits.from_env(),
            # The user typed these paths: a URL or /vsi path among them is theirs to ask for. What
            # the files themselves reference is still never read from the network.
            allow_virtual=True,
        ),
        batch_size=args.batch_size,
        commit_every=args.commit_every,
        min_valid_fraction=args.min_valid,
        progress=not args.quiet,
    )
    if args.scheduler or args.workers:
        import functools

        from indexer.cluster import ClusterConfig, index_on_cluster

        cluster = ClusterConfig(scheduler=args.scheduler, workers=args.workers, parcels_per_task=args.parcels_per_task)
        summary = index_on_cluster(config, functools.partial(build_encoder, name, **options), cluster,
                                   announce=lambda text: print(text, file=sys.stderr, flush=True))
    else:
        summary = index(config, build_encoder(name, **options))
    print("\n".join(summary.lines()))
    return 0


def _open(store: Path):
    from indexer.store import Store

    return Store.open(store)


def _print_table(frame, as_json: bool) -> None:
    if as_json:
        print(json.dumps(json.loads(frame.to_json(orient="records", double_precision=4)), indent=2))
        return
    import pandas as pd

    with pd.option_context("display.max_rows", None, "display.width", 200, "display.max_columns", None,
                           "display.max_colwidth", 60, "display.float_format", "{:.3f}".format):
        print(frame.to_string(index=False))


def _cmd_reindex(args: argparse.Namespace) -> int:
    from indexer.store import Store, write_lock

    with write_lock(args.store):
        store = _open(args.store)
        before = sorted({s["kind"] for s in store.manifest.get("segments", [])}) or ["single generation"]
        store.compact(index_type=args.index_type, progress=not args.quiet)
        kinds = sorted({s["kind"] for s in Store.open(args.store).manifest["segments"]})
    from indexer.ann import MIN_APPROXIMATE

    small = " (fewer than %d records: exact Flat is kept)" % MIN_APPROXIMATE if len(store) < MIN_APPROXIMATE else ""
    print(f"{args.store}: {len(store)} records, index {', '.join(before)} -> {', '.join(kinds)} "
          f"(index type {args.index_type}){small}")
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from indexer.store import verify_store

    report = verify_store(args.store)
    print("\n".join(report.lines()))
    return 0 if report.ok else 1


def _cmd_export(args: argparse.Namespace) -> int:
    from indexer.query import write_export

    out = args.out or Path(f"records.{args.format}")
    if out.is_dir():
        raise XVisionError(f"{out}: is a folder; give the file to write, e.g. {out / f'records.{args.format}'}",
                           path=out, field="out", value=str(out))
    if not out.parent.is_dir():
        raise XVisionError(f"{out}: the folder {out.parent} does not exist", path=out, field="out", value=str(out))
    store = _open(args.store)
    try:
        n = write_export(store, args.format, out)
    except OSError as exc:  # /proc, a read-only or full disk: the system's reason, on one line
        raise XVisionError(f"{out}: cannot be written ({exc.strerror or type(exc).__name__})", path=out,
                           field="out", value=str(out)) from None
    print(f"wrote {n} records to {out}")
    return 0


def _cmd_similar(args: argparse.Namespace) -> int:
    from indexer.query import similar

    frame = similar(_open(args.store), args.parcel_id, args.date.isoformat(), args.k,
                    include_same_parcel=args.include_same_parcel)
    _print_table(frame, args.json)
    return 0


def _cmd_history(args: argparse.Namespace) -> int:
    from indexer.query import history

    frame = history(_open(args.store), args.parcel_id)
    if not args.json:
        frame = frame.drop(columns=["analysis"])
    _print_table(frame, args.json)
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    import os

    from assistant.report import ReportConfig, write_report

    imagery = [*args.imagery, *(Path(p) for p in os.environ.get("XVISION_IMAGERY", "").split(os.pathsep) if p)]
    config = ReportConfig(season=args.season, similar_k=args.similar, imagery=tuple(imagery))
    html, csv_path = write_report(_open(args.store), args.parcel_id, args.out, config)
    print(f"wrote {html} and {csv_path}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from xvision_model.finetune import train

    result = train(args.store, args.out, profile=args.profile, epochs=args.epochs, lr=args.lr, resume=args.resume,
                   lang=args.lang, progress=not args.quiet, seed=args.seed, base_model=args.base_model,
                   batch_size=args.batch_size, imagery=args.imagery, reread=not args.embeddings_only)
    print(json.dumps(result.to_dict(), indent=2))
    if not args.no_onnx and args.profile == "tiny":
        return _cmd_export_onnx(argparse.Namespace(model=args.out))
    return 0


def _cmd_export_onnx(args: argparse.Namespace) -> int:
    import time

    from xvision_model.serving import export_onnx

    start = time.perf_counter()
    print(f"exporting {args.model} to ONNX for serving ...", file=sys.stderr, flush=True)
    manifest = export_onnx(args.model)
    check = json.loads(manifest.read_text(encoding="utf-8"))["check"]["max_abs_logit_difference"]
    print(f"wrote {manifest.parent} in {time.perf_counter() - start:.0f} s (largest logit difference from "
          f"torch: {check:.1g})")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from xvision_model.evaluate import evaluate

    scores = evaluate(args.model, args.store, lang=args.lang, limit=args.limit, progress=not args.json,
                      repair=args.repair)
    if args.json:
        print(json.dumps(scores))
        return 0
    where = "held-out parcels of the training store" if scores["held_out"] else "every record (store not used for training)"
    print(f"scored {scores['n']} (record, language) items ({where}); repair: {scores['repair']}")
    for lang, part in scores["by_lang"].items():
        print(f"\n{'English' if lang == 'en' else 'French'} ({part['n']} records)")
        print(f"  {'':<9} {'shown':>6} {'decoded':>8}")
        print(f"  {'overall':<9} {part['overall']:6.3f} {part['raw']['overall']:8.3f}")
        for aspect, value in part["per_aspect"].items():
            print(f"  {aspect:<9} {value:6.3f} {part['raw']['per_aspect'][aspect]:8.3f}")
        print(f"  {'all three':<9} {part['all_three']:6.3f} {part['raw']['all_three']:8.3f}")
        for side, label in (("raw", "decoded text"), ("shown", "what users see")):
            shares = part["failures"][side]
            print(f"  {label:<15} repeated sentence {shares['repeated_sentence']:.3f}, missing aspect "
                  f"{shares['missing_aspect']:.3f}, unusable described as usable {shares['unusable_as_usable']:.3f}, "
                  f"number not the record's {shares['wrong_number']:.3f}")
    return 0


def _cmd_describe(args: argparse.Namespace) -> int:
    from indexer.core.schema import MEAN_COLUMNS, TEXT_COLUMNS

    date = args.date.isoformat()
    if args.model is None:
        record = _open(args.store).record(args.parcel_id, date)
        text = record[TEXT_COLUMNS[args.lang]]
        result = {"parcel_id": args.parcel_id, "date": date, "generated": None, "reference": text,
                  "indices": {k: float(record[k]) for k in MEAN_COLUMNS}}
    else:
        from assistant.grounding import check_analysis
        from xvision_model.evaluate import describe

        result = describe(args.model, args.store, args.parcel_id, date, lang=args.lang)
        # The assistant's own grounding gate on the text a user would be shown.
        verdict = check_analysis(result["text"], _open(args.store).record(args.parcel_id, date).to_dict())
        result["gate"] = {"passes": verdict.ok, "problems": list(verdict.problems)}
    if args.json:
        print(json.dumps(result, indent=2, default=str))
        return 0
    print(f"parcel {args.parcel_id} on {date}")
    if result.get("generated") is not None:
        print(f"\ngenerated ({args.model}):\n  {result['text']}")
        if not result["gate"]["passes"]:
            print("\n  WARNING: the assistant's grounding gate would set this text aside ("
                  + "; ".join(result["gate"]["problems"]) + ") and quote the record's own analysis instead.")
        if result["generated"] != result["text"]:
            print("\nthe model's own text (the record is not valid, so it is shown the text above):\n  "
                  + (result["generated"] or "(no sentence of the analysis grammar)"))
    print(f"\nfrom the indices (reference):\n  {result['reference']}\n")
    for name, value in result["indices"].items():
        print(f"  {name:<16} {value:8.3f}" if isinstance(value, float) else f"  {name:<16} {value}")
    return 0


def _cmd_ask(args: argparse.Namespace) -> int:
    import time

    start = time.perf_counter()
    # The generator (torch, transformers) is imported and loaded only if the answer uses it.
    from assistant.api import Assistant

    imported = time.perf_counter() - start
    assistant = Assistant.open(args.store, args.model, today=args.today)
    result = assistant.ask(args.question, lang=args.lang)
    if args.json:
        timings = {"startup": imported, **(assistant.last_timings or {})}
        result["timings"] = {k: None if v is None else round(v, 4) for k, v in timings.items()}
        print(json.dumps(result, indent=2, ensure_ascii=False, default=str))
        return 0
    print(result["answer"])
    if result["citations"]:
        print("\nsources:")
        print(f"  {'parcel':<22} {'date':<10} {'valid':>5} {'cloud':>5}  indices")
        for c in result["citations"]:
            values = ", ".join(f"{k.removesuffix('_mean')} {v:.3f}" for k, v in c["indices"].items() if v is not None)
            valid = "-" if c["valid_fraction"] is None else f"{100 * c['valid_fraction']:.0f}%"
            cloud = "-" if c["cloud_fraction"] is None else f"{100 * c['cloud_fraction']:.0f}%"
            print(f"  {c['parcel_id']:<22} {c['date']:<10} {valid:>5} {cloud:>5}  {values or '(not usable)'}"
                  f"  [{Path(c['source']).name if c['source'] else '?'}]")
    for warning in result["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _cmd_ui(args: argparse.Namespace) -> int:
    import importlib.util
    import signal
    import socket
    import subprocess
    import time
    import urllib.request

    from ui.config import MAX_UPLOAD_MB

    if not (args.store / "manifest.json").is_file():
        raise XVisionError(f"{args.store}: not a store (no manifest.json); "
                           f"build one with `xvision index ... --store {args.store}`")
    if args.model is not None and not args.model.is_dir():
        raise XVisionError(f"{args.model}: no such model folder; train one with `xvision train --out {args.model}`")
    app = Path(importlib.util.find_spec("ui").submodule_search_locations[0]) / "app.py"
    command = [
        # ui.serve is Streamlit's command line after starting the assistant's background load.
        sys.executable, "-m", "ui.serve", "run", str(app),
        "--server.headless", "true", "--server.port", str(args.port), "--server.address", args.host,
        "--server.enableStaticServing", "true", "--server.maxUploadSize", str(MAX_UPLOAD_MB),
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none", "--client.toolbarMode", "minimal",
        "--", "--store", str(args.store.resolve()),
    ]
    if args.model is not None:
        command += ["--model", str(args.model.resolve())]
    if args.data_dir is not None:
        command += ["--data-dir", str(args.data_dir.resolve())]
    shown = "localhost" if args.host in ("127.0.0.1", "0.0.0.0") else args.host
    url = f"http://{shown}:{args.port}"
    probe = "127.0.0.1" if args.host in ("127.0.0.1", "0.0.0.0", "localhost") else args.host
    with socket.socket() as probe_socket:  # a server already there would answer the health check below
        if probe_socket.connect_ex((probe, args.port)) == 0:
            raise XVisionError(f"port {args.port} is already in use on {probe}; choose another port", field="port",
                               value=args.port)
    print(f"starting the app on {args.store} ...", flush=True)
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    # Stopping this command (Ctrl+C or a plain kill) stops the server with it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        while server.poll() is None:  # wait for Streamlit's own health check before saying it is up
            try:
                with urllib.request.urlopen(f"http://{probe}:{args.port}/_stcore/health", timeout=1) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                time.sleep(0.2)
        if server.poll() is not None:
            raise XVisionError(f"the app stopped at start (exit code {server.returncode}); is port {args.port} free?")
        print(f"XVision is serving at {url}  (Ctrl+C to stop)", flush=True)
        return server.wait()
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait(timeout=10)


def _check_store_option(args: argparse.Namespace) -> None:
    """`--store` names a folder (or nothing yet): a file there is one clear error, not a traceback
    from whichever layer first tries to list or lock it."""
    store = getattr(args, "store", None)
    if isinstance(store, Path) and store.exists() and not store.is_dir():
        raise XVisionError(f"{store}: is a file, not a store folder", path=store, field="store", value=str(store))


#: Commands that answer from a store and write nothing: their process runs with `_one_shot_gc`.
READ_ONLY_COMMANDS = frozenset({"ask", "history", "similar", "describe", "verify"})
#: Collections of generation 1 before a full one: so many that one command never reaches it.
_NO_FULL_COLLECTION = 1_000_000


@contextlib.contextmanager
def _one_shot_gc() -> Iterator[None]:
    """The garbage-collector policy of a process that answers one command and ends.

    Python's full collections traverse every object alive, the imported modules' included:
    pandas, LangChain's pydantic models, torch and transformers. A cold `ask` that generates ran
    eight of them (1.1-1.3 s of its 8-10 s), one that does not three (0.15 s), and they free almost
    nothing here (a few thousand objects). Within the command only the young generations are
    collected, which still frees the short-lived cycles; at exit the heap is frozen so that the
    interpreter's last collection does not traverse it either (0.3-0.5 s after an `ask`). The
    caller's thresholds come back when the command returns (tests call `main` in their own process).
    """
    young, middle, old = gc.get_threshold()
    gc.set_threshold(young, middle, _NO_FULL_COLLECTION)
    # atexit runs before the interpreter's final collection; unregister first: once per process.
    atexit.unregister(gc.freeze)
    atexit.register(gc.freeze)
    try:
        yield
    finally:
        gc.set_threshold(young, middle, old)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `xvision` console script."""
    args = build_parser().parse_args(argv)
    with _one_shot_gc() if args.command in READ_ONLY_COMMANDS else contextlib.nullcontext():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    """Run the parsed command: a library error becomes one line on stderr and exit status 2."""
    try:
        _check_store_option(args)
        code = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler below, not at exit
        return code
    except XVisionError as exc:
        print(f"xvision {args.command}: error: {word_error(exc)}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # `xvision history ... | head -1`: the reader has gone, so has the rest of the output. Point
        # stdout at /dev/null so that the interpreter's own flush at exit does not fail again.
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):  # stdout is not a real file (tests capture it)
            pass
        return 141  # 128 + SIGPIPE, what a shell reports for a command ended by a closed pipe
    except MemoryError:
        print(f"xvision {args.command}: error: out of memory; the input is larger than this machine can "
              "process (lower the limits or split the input)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"xvision {args.command}: interrupted; the store keeps its last committed state", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
