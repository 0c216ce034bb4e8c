"""A field report to take away: one parcel's season on one page, built from the store.

    from assistant.report import ReportConfig, build_report, render_html, records_csv

    report = build_report("flanders-store", "Flanders31UES-001", ReportConfig(season=2019))
    Path("field.html").write_text(render_html(report), encoding="utf-8")
    Path("field.csv").write_text(records_csv(report), encoding="utf-8")

`build_report` gathers a `ParcelReport` (plain dataclasses, no rendering): the parcel's identity
and crop, its season chart with the past seasons, the last usable observations with their
analyses, the newest one against the same time of year in the other seasons, the crop-calendar
events found, the parcels whose imagery looked most like it (with thumbnails re-read from their
rasters), the season's unusable and suspect dates, and the source of every number: each value is
a stored record's (or a mean or difference of them) and is shown with the record id, the date and
the raster's file name (never a path of the machine that wrote the store).

`render_html` writes one self-contained HTML file: Jinja2 with autoescape (every label from the
parcels file or the store is escaped), charts as inline SVG drawn by matplotlib, thumbnails as
inline PNG; no script, no external resource, printable on one A4 page. `records_csv` is the
parcel's records as CSV, text cells guarded against spreadsheet formulas.

The rules about the data are the library's, each called through one function here
(`_statuses`, `_past_seasons`, `_calendar_events`, `_similar`), so the report says what the app
and the assistant say.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from indexer.core.errors import InputError, NotFoundError, XVisionError
from indexer.core.schema import ATTRIBUTE_PREFIX, INDEX_NAMES, MEAN_COLUMNS, STAT_COLUMNS
from indexer.store import Store

#: Indices shown in the tables, in the order the analysis text states them.
REPORT_INDICES: tuple[str, ...] = tuple(i for i in ("ndvi", "ndmi", "ndwi", "savi", "evi", "ndre") if i in INDEX_NAMES)
TEMPLATE = "parcel_report.html.j2"


@dataclass(frozen=True)
class ReportConfig:
    """What goes into a report.

    Attributes:
        season: the calendar year reported on; None: the year of the parcel's newest record.
        recent: how many of the season's last usable observations are listed with their analyses.
        similar_k: how many similar parcels are shown.
        tolerance_days: the past-season pairing's tolerance around the same day of year (None: the
            library's, `indexer.seasons.DOY_TOLERANCE_DAYS`).
        chart_indices: the indices drawn as season charts.
        thumbnail_px: side of each thumbnail, in pixels.
        imagery: folders (or files) where rasters moved since indexing are found by name.
    """

    season: int | None = None
    recent: int = 3
    similar_k: int = 4
    tolerance_days: int | None = None
    chart_indices: tuple[str, ...] = ("ndvi", "ndmi")
    thumbnail_px: int = 80
    imagery: tuple[Path, ...] = ()

    def __post_init__(self) -> None:
        for name in ("recent", "similar_k", "tolerance_days", "thumbnail_px"):
            value = getattr(self, name)
            if name == "tolerance_days" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "similar_k" else 1):
                raise InputError(f"report setting {name} must be a positive integer, got {value!r}",
                                 field=name, value=value)
        unknown = [i for i in self.chart_indices if i not in INDEX_NAMES]
        if unknown:
            raise InputError(f"unknown index {unknown[0]!r} for the season chart; known: {', '.join(INDEX_NAMES)}",
                             field="chart_indices", value=unknown[0])


@dataclass(frozen=True)
class Observation:
    """One record as the report shows it; `values` are the index means (None when not computed)."""

    record_id: int
    date: str
    status: str
    reason: str
    valid_fraction: float | None
    cloud_fraction: float | None
    values: dict[str, float | None]
    analysis: str
    raster: str  # the source raster's file name

    @property
    def usable(self) -> bool:
        return self.status == "usable"


@dataclass(frozen=True)
class SeasonDelta:
    """One index of the compared observation against its counterpart in one other season."""

    index: str
    value: float
    past_season: int
    past_value: float
    past_date: str
    past_record_id: int | None
    delta: float  # now minus then
    change: str  # "stable" (within the index's measured noise), "higher" or "lower"
    noise: float


@dataclass(frozen=True)
class Comparison:
    """The season's newest usable observation against the same time of year in other seasons."""

    observation: Observation
    deltas: tuple[SeasonDelta, ...]
    missing_seasons: tuple[int, ...]
    rule: str


@dataclass(frozen=True)
class CalendarEvent:
    """A crop-calendar event: on a date, or within a window between two observations."""

    kind: str
    start: str
    end: str
    record_ids: tuple[int, ...]
    detail: str = ""


@dataclass(frozen=True)
class SimilarParcel:
    """A record of another parcel whose embedding is near the compared observation's."""

    parcel_id: str
    crop: str
    date: str
    record_id: int
    distance: float
    ndvi: float | None
    raster: str
    true_png: bytes | None = None
    false_png: bytes | None = None


@dataclass(frozen=True)
class ParcelReport:
    """Everything a report shows, in the order it shows it (see the module docstring)."""

    parcel_id: str
    crop: str
    attributes: dict[str, str]
    store: str
    encoder: str
    generated: str
    season: int
    seasons: tuple[int, ...]
    history: tuple[Observation, ...]  # every record of the parcel, oldest first
    recent: tuple[Observation, ...]
    comparison: Comparison | None
    events: tuple[CalendarEvent, ...] | None  # None: no crop-calendar rule in this version
    events_rule: str
    similar: tuple[SimilarParcel, ...]
    similar_note: str
    own_thumbnails: tuple[bytes, bytes] | None
    charts: dict[str, str]  # index -> inline SVG
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def season_records(self) -> list[Observation]:
        return [o for o in self.history if o.date.startswith(f"{self.season}-")]

    @property
    def unusable(self) -> list[Observation]:
        """The season's records that are not the crop's condition (clouds, snow, no data, too small)."""
        return [o for o in self.season_records if o.status not in ("usable", "suspect")]

    @property
    def suspect(self) -> list[Observation]:
        return [o for o in self.season_records if o.status == "suspect"]

    @property
    def rasters(self) -> list[str]:
        """Every raster file a number of the report comes from, sorted."""
        names = {o.raster for o in self.history} | {s.raster for s in self.similar}
        return sorted(n for n in names if n)

    @property
    def raster_pattern(self) -> str | None:
        """"PREFIX<date>SUFFIX" when every raster's name is its record's date between one prefix and
        one suffix (one file per acquisition, as Sentinel-2 exports are named); else None."""
        pairs = {(o.raster, o.date) for o in self.history} | {(s.raster, s.date) for s in self.similar}
        parts = {tuple(name.split(date, 1)) for name, date in pairs if name and date in name}
        if len(pairs) < 2 or len(parts) != 1 or any(date not in name for name, date in pairs):
            return None
        (prefix, suffix), = parts
        return f"{prefix}<date>{suffix}"


# -- the library's rules, one function each -----------------------------------------------------

def _statuses(records: pd.DataFrame) -> pd.DataFrame:
    """`status`, `status_reason`, `usable` for every record (indexer.observations: the one rule)."""
    from indexer.observations import find_suspects, observation_statuses

    return observation_statuses(records, find_suspects(records))


def _past_seasons(history: pd.DataFrame, date: str, index: str,
                  tolerance_days: int | None) -> tuple[tuple[SeasonDelta, ...], tuple[int, ...], str]:
    """`index` on `date` against the parcel's other seasons (indexer.seasons: paired by closest day of
    year, "stable" within the measured noise), and the rule's wording."""
    from indexer import seasons

    tolerance = seasons.DOY_TOLERANCE_DAYS if tolerance_days is None else tolerance_days
    found = seasons.compare_past_seasons(history, date, f"{index}_mean", tolerance_days=tolerance)
    deltas = tuple(SeasonDelta(index, p.value, p.past_season, p.past_value, str(p.past_date), p.past_record_id,
                               p.delta, p.change, p.noise) for p in found.pairs)
    rule = (f"each other season: its usable observation closest to the same day of year, at most {tolerance} days "
            f"away; Δ = this observation minus that one; \"stable\" when |Δ| is within the index's noise "
            f"({seasons.NOISE_MEASURED})")
    return deltas, found.missing_seasons, rule


def _southern(history: pd.DataFrame) -> bool:
    """Whether the parcel lies south of the equator (from its newest geometry, WGS84)."""
    geometry = history["geometry"].iloc[-1] if "geometry" in history.columns and len(history) else None
    return geometry is not None and not geometry.is_empty and geometry.centroid.y < 0


def _calendar_events(history: pd.DataFrame, season: int, crop: str | None = None,
                     southern: bool = False) -> tuple[tuple[CalendarEvent, ...] | None, str]:
    """The crop-calendar events of the season in a parcel's usable series (indexer.phenology), and
    the rule's wording. None when the library has no crop-calendar rule: the report then says so
    rather than guess events with a rule of its own."""
    try:
        from indexer import phenology
    except ImportError:
        return None, "no crop-calendar rule in this version of the library"
    found = phenology.crop_calendar(history, "ndvi_mean", date_from=f"{season}-01-01", date_to=f"{season}-12-31",
                                    crop=crop, southern=southern)
    events = []
    for e in found:
        values = f"NDVI {e.value_start:.2f}" if e.dated else f"NDVI {e.value_start:.2f} → {e.value_end:.2f}"
        name = {phenology.CLEARED: "cleared for sowing", phenology.CUT: "cut (mowing or grazing)"}.get(e.kind, e.kind)
        events.append(CalendarEvent(name, e.start, e.end,
                                    tuple(e.record_ids),
                                    values + (" (at the edge of the series: the true peak may lie outside)"
                                              if e.censored else "")))
    rule = ("from the parcel's usable NDVI series (indexer.phenology): a peak is dated; emergence, green-up, "
            "senescence, harvest, cuts of grass and clearing for sowing are windows between two observations")
    return tuple(events), rule


def _similar(store: Store, parcel_id: str, date: str, k: int) -> pd.DataFrame:
    """Other parcels' usable records nearest by embedding (indexer.query.similar)."""
    from indexer.query import similar

    return similar(store, parcel_id, date, k)


# -- building ---------------------------------------------------------------------------------------

def _number(value: object) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _crop_of(attributes: dict[str, str]) -> str:
    """The parcels file's crop label: its first text attribute whose name says crop."""
    for name, value in attributes.items():
        if "crop" in name.lower() and value and _number(value) is None:
            return value
    return ""


def _attributes(row: pd.Series) -> dict[str, str]:
    out = {}
    for name, value in row.items():
        if isinstance(name, str) and name.startswith(ATTRIBUTE_PREFIX) and value is not None and not (
                isinstance(value, float) and math.isnan(value)):
            out[name[len(ATTRIBUTE_PREFIX):]] = str(value)
    return out


def _observation(row: pd.Series) -> Observation:
    return Observation(
        record_id=int(row["record_id"]), date=str(row["date"]), status=str(row["status"]),
        reason=str(row["status_reason"]), valid_fraction=_number(row.get("valid_fraction")),
        cloud_fraction=_number(row.get("cloud_fraction")),
        values={i: _number(row.get(f"{i}_mean")) for i in REPORT_INDICES},
        analysis=str(row.get("analysis") or ""), raster=Path(str(row.get("source") or "")).name,
    )


def _locate(sources: Sequence[str], imagery: Sequence[Path]) -> dict[str, Path]:
    from indexer.sources import locate_sources

    try:
        return dict(locate_sources(list(sources), list(imagery)).found)
    except XVisionError:  # a named imagery folder holds no readable raster: recorded paths only
        return dict(locate_sources(list(sources)).found)


def _thumbs(rasters: dict[str, Path], row: pd.Series, size: int) -> tuple[bytes, bytes] | None:
    from indexer.thumbnails import parcel_thumbnails

    path = rasters.get(str(row["source"]))
    if path is None:
        return None
    try:
        t = parcel_thumbnails(path, row.geometry, size)
    except (XVisionError, OSError, ValueError):  # unreadable now: the report says "not found"
        return None
    return t.true_colour, t.false_colour


def build_report(store: Store | str | Path, parcel_id: str, config: ReportConfig | None = None,
                 now: dt.datetime | None = None) -> ParcelReport:
    """The report of `parcel_id`'s season (see the module docstring).

    NotFoundError for an unknown parcel; InputError for a season the parcel has no record in.
    """
    config = config or ReportConfig()
    store = store if isinstance(store, Store) else Store.open(store)
    records = store.records()
    if not len(records) or parcel_id not in set(records["parcel_id"].astype(str)):
        known = sorted(set(records["parcel_id"].astype(str)))[:5] if len(records) else []
        raise NotFoundError(f"no parcel {parcel_id!r} in the store {Path(store.path).name}"
                            + (f" (parcels such as {', '.join(known)})" if known else ""),
                            field="parcel", value=parcel_id)
    # The rules need the neighbouring parcels and dates (suspect scenes): statuses store-wide.
    records = pd.concat([records, _statuses(records)], axis=1)
    history = records[records["parcel_id"].astype(str) == parcel_id].sort_values("date").reset_index(drop=True)
    years = sorted({int(d[:4]) for d in history["date"]})
    season = config.season if config.season is not None else years[-1]
    if season not in years:
        raise InputError(f"parcel {parcel_id} has no record in {season}; its seasons: {', '.join(map(str, years))}",
                         field="season", value=season)
    observations = tuple(_observation(r) for _, r in history.iterrows())
    in_season = history[history["date"].str.startswith(f"{season}-")]
    usable = in_season[in_season["usable"]]
    recent = tuple(_observation(r) for _, r in usable.tail(config.recent).iloc[::-1].iterrows())
    notes = []
    from indexer.observations import reindex_note

    note = reindex_note(history)
    if note:
        notes.append(note)

    comparison = None
    if len(usable):
        newest = usable.iloc[-1]
        deltas, missing, rule = [], (), ""
        for index in REPORT_INDICES:
            if _number(newest[f"{index}_mean"]) is None:
                continue
            found, missing, rule = _past_seasons(history, str(newest["date"]), index, config.tolerance_days)
            deltas += found
        comparison = Comparison(_observation(newest), tuple(deltas), tuple(missing), rule)

    attributes = _attributes(history.iloc[-1])
    events, events_rule = _calendar_events(history, season, _crop_of(attributes), _southern(history))

    rasters = _locate(sorted(set(history["source"].astype(str))), config.imagery)
    similar, similar_note, own = [], "", None
    if len(usable):
        newest = usable.iloc[-1]
        own = _thumbs(rasters, newest, config.thumbnail_px)
        if config.similar_k:
            try:
                hits = _similar(store, parcel_id, str(newest["date"]), config.similar_k)
            except XVisionError as exc:
                hits, similar_note = None, str(exc)
            if hits is not None:
                rows = store.by_ids([int(i) for i in hits["record_id"]])
                by_id = {int(r["record_id"]): r for _, r in rows.iterrows()}
                rasters.update(_locate(sorted(set(rows["source"].astype(str))), config.imagery))
                for hit in hits.itertuples():
                    row = by_id[int(hit.record_id)]
                    pngs = _thumbs(rasters, row, config.thumbnail_px)
                    similar.append(SimilarParcel(
                        parcel_id=str(hit.parcel_id), crop=_crop_of(_attributes(row)), date=str(hit.date),
                        record_id=int(hit.record_id), distance=1 - float(hit.score), ndvi=_number(hit.ndvi_mean),
                        raster=Path(str(row["source"])).name,
                        true_png=pngs[0] if pngs else None, false_png=pngs[1] if pngs else None))
                similar_note = (f"nearest by embedding (cosine distance) to {parcel_id} on {newest['date']} "
                                f"(record {int(newest['record_id'])}); other parcels, usable records only")
    else:
        similar_note = f"no usable observation of {parcel_id} in {season} to compare with"
    missing = sorted({Path(s).name for s in history["source"].astype(str) if s not in rasters})
    if missing:
        notes.append(f"{len(missing)} raster(s) of this parcel were not found on this machine (thumbnails left "
                     f"out): {', '.join(missing[:3])}{' …' if len(missing) > 3 else ''}")

    return ParcelReport(
        parcel_id=parcel_id, crop=_crop_of(attributes), attributes=attributes, store=Path(store.path).name,
        encoder=str(store.encoder_id), generated=(now or dt.datetime.now(dt.timezone.utc)).strftime("%Y-%m-%d %H:%M UTC"),
        season=season, seasons=tuple(years), history=observations, recent=recent, comparison=comparison,
        events=events, events_rule=events_rule, similar=tuple(similar), similar_note=similar_note,
        own_thumbnails=own, charts={i: season_chart_svg(history, i, season) for i in config.chart_indices},
        notes=tuple(notes),
    )


# -- the season chart ----------------------------------------------------------------------------------

def season_chart_svg(history: pd.DataFrame, index: str, season: int, width_in: float = 3.6,
                     height_in: float = 1.45) -> str:
    """One index's mean over the year, one line per season on a shared day-of-year axis, as SVG.

    `history` has `date`, `usable`, `status` and the index column. The reported season is drawn
    dark and thick, the others light; lines break at every record that is not usable (no line is
    drawn across a gap), and the reported season's unusable dates are faint grey rules, its suspect
    dates orange ones: neither is the crop's condition, so no value is plotted for them.
    """
    from matplotlib import rc_context
    from matplotlib.figure import Figure

    column = f"{index}_mean"
    rows = history.assign(when=pd.to_datetime(history["date"]))
    rows = rows.assign(year=rows["when"].dt.year, doy=rows["when"].dt.dayofyear)
    # Deterministic SVG (same records -> same bytes); text drawn as paths, so nothing in it is markup.
    # The salt differs per index: two charts of one page must not share element ids.
    with rc_context({"svg.hashsalt": f"xvision-report-{index}", "svg.fonttype": "path", "font.size": 7}):
        fig = Figure(figsize=(width_in, height_in))
        ax = fig.add_axes((0.12, 0.18, 0.70, 0.72))
        years = sorted(rows["year"].unique())
        palette = ["#9ecae1", "#a1d99b", "#fdae6b", "#bcbddc", "#fc9272"]
        for n, year in enumerate(years):
            own = rows[rows["year"] == year].sort_values("doy")
            segment = (~own["usable"]).cumsum()
            current = year == season
            colour = "#08306b" if current else palette[n % len(palette)]
            for i, (_, part) in enumerate(own[own["usable"]].groupby(segment[own["usable"]])):
                ax.plot(part["doy"], part[column], marker="o", markersize=2.2 if current else 1.5,
                        linewidth=1.6 if current else 0.9, color=colour, label=str(year) if i == 0 else None,
                        zorder=3 if current else 2)
            if current:
                for _, r in own[~own["usable"]].iterrows():
                    suspect = r["status"] == "suspect"
                    ax.axvline(r["doy"], color="#f16913" if suspect else "#bdbdbd",
                               linewidth=0.8 if suspect else 0.6, alpha=0.8 if suspect else 0.6, zorder=1)
        ax.set_xlim(1, 366)
        starts = [dt.date(2001, m, 1).timetuple().tm_yday for m in range(1, 13)]
        ax.set_xticks(starts, ["J", "F", "M", "A", "M", "J", "J", "A", "S", "O", "N", "D"])
        ax.set_ylabel(f"{index.upper()} mean")
        ax.grid(axis="y", linewidth=0.3, color="#dddddd")
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=6)
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg"):]  # inline: no XML declaration or doctype
    # Several charts share one HTML document: their element ids (glyphs, clip paths) get a prefix
    # of their own, as do the in-document references to them.
    prefix = f"chart-{index}-"
    svg = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}{m.group(1)}"', svg)
    svg = re.sub(r'(xlink:href|href)="#([^"]+)"', lambda m: f'{m.group(1)}="#{prefix}{m.group(2)}"', svg)
    return re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{prefix}{m.group(1)})", svg)


# -- rendering -------------------------------------------------------------------------------------------

def _environment():
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    env = Environment(loader=PackageLoader("assistant", "templates"), undefined=StrictUndefined,
                      autoescape=select_autoescape(enabled_extensions=("html", "j2"), default=True))
    env.filters["f2"] = lambda x: "—" if x is None else f"{x:.2f}"
    env.filters["signed"] = lambda x: "—" if x is None else f"{x:+.2f}"
    env.filters["pct"] = lambda x: "—" if x is None else f"{100 * x:.0f} %"
    env.filters["png"] = lambda b: "data:image/png;base64," + base64.b64encode(b).decode("ascii")
    return env


def render_html(report: ParcelReport) -> str:
    """The report as one self-contained HTML page (every label escaped; no script, no external link)."""
    from markupsafe import Markup

    charts = {i: Markup(svg) for i, svg in report.charts.items()}  # matplotlib's own SVG, text as paths
    return _environment().get_template(TEMPLATE).render(r=report, charts=charts, indices=REPORT_INDICES)


#: Characters that make a spreadsheet read a text cell as a formula (OWASP "CSV injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> object:
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def records_csv(report: ParcelReport, store: Store | str | Path | None = None) -> str:
    """The parcel's records as CSV: one row per date, its status, every index statistic, the
    analysis and the raster's file name. Text cells that a spreadsheet would run as a formula are
    prefixed with a quote. With `store`, every statistic column (not only the means) is written."""
    header = ["record_id", "parcel_id", "date", "status", "status_reason", "valid_fraction", "cloud_fraction",
              *[f"{i}_mean" for i in REPORT_INDICES]]
    stats: list[str] = []
    extra: dict[int, dict] = {}
    if store is not None:
        store = store if isinstance(store, Store) else Store.open(store)
        rows = store.by_ids([o.record_id for o in report.history])
        stats = [c for c in STAT_COLUMNS if c in rows.columns and c not in MEAN_COLUMNS]
        extra = {int(r["record_id"]): {c: _number(r[c]) for c in stats} for _, r in rows.iterrows()}
    header += [*stats, "analysis", "raster", *[f"attr_{k}" for k in report.attributes]]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for o in report.history:
        row = [o.record_id, report.parcel_id, o.date, o.status, o.reason, o.valid_fraction, o.cloud_fraction,
               *[o.values.get(i) for i in REPORT_INDICES], *[extra[o.record_id][c] for c in stats],
               o.analysis, o.raster, *report.attributes.values()]
        writer.writerow(["" if v is None else _cell(v) for v in row])
    return buffer.getvalue()


def write_report(store: Store | str | Path, parcel_id: str, out: str | Path,
                 config: ReportConfig | None = None) -> tuple[Path, Path]:
    """Write the HTML report to `out` and the parcel's records as CSV beside it (same name, .csv).

    Returns both paths. The files are written whole or not at all (a temporary name, then a rename).
    """
    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise InputError(f"{out}: the report is HTML; name the file .html", path=out, field="out", value=str(out))
    if not out.parent.is_dir():
        raise InputError(f"{out.parent}: no such folder for the report", path=out.parent, field="out", value=str(out))
    store = store if isinstance(store, Store) else Store.open(store)
    report = build_report(store, parcel_id, config)
    csv_path = out.with_suffix(".csv")
    for path, text in ((out, render_html(report)), (csv_path, records_csv(report, store))):
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    return out, csv_path
