"""The Parcel page's downloads: the field report (one self-contained HTML page) and the parcel's
records as CSV, both from `assistant.report`, as `xvision report` writes them.

The report is built when a button is clicked (Streamlit runs the callable then, in a thread of its
own, so the page never waits for it) and kept per store generation, parcel and season: the second
button and a second click cost nothing.
"""

from __future__ import annotations

import os
import re
import threading
from collections import OrderedDict
from pathlib import Path

import streamlit as st

from ui import config, data

_BUILT: OrderedDict[tuple, tuple[str, str]] = OrderedDict()
_BUILT_LOCK = threading.Lock()
MAX_BUILT = 16


def _imagery(cfg: config.AppConfig) -> tuple[Path, ...]:
    """Where moved rasters are looked for by name: $XVISION_IMAGERY, then the app's uploads folder."""
    roots = [Path(p) for p in os.environ.get("XVISION_IMAGERY", "").split(os.pathsep) if p]
    return tuple(r for r in [*roots, cfg.data_dir] if r.exists())


def report_files(cfg: config.AppConfig, parcel_id: str, season: int) -> tuple[str, str]:
    """(HTML, CSV) of the parcel's report for `season`, built once per store generation."""
    from assistant.report import ReportConfig, build_report, records_csv, render_html
    from indexer.store import Store

    key = (str(cfg.store), data.store_token(cfg.store), parcel_id, season)
    with _BUILT_LOCK:
        if key in _BUILT:
            _BUILT.move_to_end(key)
            return _BUILT[key]
    store = Store.open(cfg.store)
    report = build_report(store, parcel_id, ReportConfig(season=season, imagery=_imagery(cfg)))
    files = (render_html(report), records_csv(report, store))
    with _BUILT_LOCK:
        _BUILT[key] = files
        while len(_BUILT) > MAX_BUILT:
            _BUILT.popitem(last=False)
    return files


def file_stem(parcel_id: str, season: int) -> str:
    """A file name for any parcel id (characters a file system may refuse become '_')."""
    return f"{re.sub(r'[^A-Za-z0-9._-]+', '_', parcel_id).strip('._') or 'parcel'}-{season}"


def download_buttons(cfg: config.AppConfig, parcel_id: str, season: int) -> None:
    """Two buttons: the field report of `parcel_id`'s `season` (HTML) and its records (CSV)."""
    stem = file_stem(parcel_id, season)
    left, right = st.columns(2)
    left.download_button(f"Field report {season} (HTML)", data=lambda: report_files(cfg, parcel_id, season)[0],
                         file_name=f"{stem}-report.html", mime="text/html", key=f"report-html-{parcel_id}-{season}",
                         on_click="ignore", icon=":material/description:",
                         help="One printable page: the season chart with past seasons, the last usable "
                              "observations, the past-season comparison, crop-calendar events, similar parcels, "
                              "unusable and suspect dates, and the record behind every number.")
    right.download_button("Records (CSV)", data=lambda: report_files(cfg, parcel_id, season)[1],
                          file_name=f"{stem}-records.csv", mime="text/csv", key=f"report-csv-{parcel_id}-{season}",
                          on_click="ignore", icon=":material/table:",
                          help="Every record of this parcel: date, observation status, index statistics, "
                               "analysis and raster file name.")
