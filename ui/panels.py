"""Pieces the pages share: the parcel card, its season chart, the past-season table, similar
parcels, the citations table. They render records as the store holds them; every store value that
reaches markdown goes through `data.md_text` (tables and charts draw text, not markup)."""

from __future__ import annotations

from pathlib import PurePath

import altair as alt
import pandas as pd
import streamlit as st

from ui import data
from ui.data import md_text


_status = data.status_text


def title(view: data.AppView, parcel_id: str) -> str:
    """`parcel · crop` as markdown text (escaped)."""
    label = view.label(parcel_id)
    return md_text(parcel_id) + (f" · {md_text(label)}" if label else "")


def parcel_card(view: data.AppView, parcel_id: str, date: str) -> None:
    """The selected parcel on `date`: values, observation quality and the record's analysis."""
    st.subheader(title(view, parcel_id))
    try:
        record = view.record(parcel_id, date)
    except data.NotFoundError:
        st.info(f"No acquisition of {md_text(parcel_id)} on {date}.")
        return
    st.caption(f"{date} — {md_text(_status(record))}")
    if record["usable"]:
        columns = st.columns(3)
        for i, index in enumerate(data.INDICES):
            value = record[f"{index}_mean"]
            columns[i % 3].metric(index.upper(), "—" if pd.isna(value) else f"{value:.2f}")
    else:
        before, after = view.usable_neighbours(parcel_id, date)
        around = [f"before: {before}" if before else "", f"after: {after}" if after else ""]
        around = "; ".join(a for a in around if a)
        # The rule's own reason (clouds, snow, no data, too small, a suspect scene): not the crop.
        st.warning(f"No usable observation of this parcel on {date} ({md_text(_status(record))}): its values "
                   "are not the crop's condition. "
                   + (f"Nearest usable dates — {around}." if around else "It has no usable observation at all."))
    st.write(md_text(record["analysis"]))


def season_chart(view: data.AppView, parcel_id: str, index: str, date: str | None = None,
                 height: int = 200) -> alt.LayerChart:
    """One index's mean over the year, one line per season on a shared day-of-year axis.

    Unusable dates (clouds, no data, suspect) break the line and are marked by faint grey rules:
    they say nothing about the crop. The dashed rule is `date`.
    """
    rows = view.seasons(parcel_id).sort_values("date")
    rows = rows.assign(value=rows[f"{index}_mean"],
                       # Every season on one calendar (2000 is a leap year: 29 February fits).
                       day=pd.to_datetime("2000-" + rows["date"].str[5:]),
                       status=[_status(r) for _, r in rows.iterrows()])
    # A new line segment after every unusable date, so no line is drawn across a gap.
    rows["segment"] = rows.groupby("season")["usable"].transform(lambda u: (~u).cumsum()).astype(str)
    rows = rows[["date", "season", "doy", "day", "value", "usable", "segment", "status"]]
    x = alt.X("day:T", title="day of year", axis=alt.Axis(format="%b"),
              scale=alt.Scale(domain=["2000-01-01", "2000-12-31"]))
    base = alt.Chart(rows)
    tooltip = ["date:N", alt.Tooltip("value:Q", title=index.upper(), format=".3f"), "doy:Q", "status:N"]
    lines = base.transform_filter(alt.datum.usable).mark_line(point=True).encode(
        x=x, y=alt.Y("value:Q", title=f"{index.upper()} mean"),
        color=alt.Color("season:N", title="season", scale=alt.Scale(scheme="tableau10")),
        detail="segment:N", order="doy:Q", tooltip=tooltip)
    gaps = base.transform_filter(~alt.datum.usable).mark_rule(strokeWidth=2, opacity=0.3, color="#9e9e9e").encode(
        x=x, tooltip=["date:N", "status:N"])
    layers = [lines, gaps]
    if date is not None:
        layers.append(alt.Chart(pd.DataFrame({"day": [pd.Timestamp("2000-" + date[5:])]}))
                      .mark_rule(strokeDash=[4, 3], color="#111111").encode(x="day:T"))
    return alt.layer(*layers).properties(height=height)


def compare_table(view: data.AppView, parcel_id: str, date: str, tolerance: int) -> pd.DataFrame | None:
    """The record of `date` against each other season's usable record closest in day of year
    (within ± `tolerance` days): one row per index, for each season its value and the difference.
    None when the parcel has no record on `date`. Missing values are None (shown as "—")."""
    try:
        record = view.record(parcel_id, date)
    except data.NotFoundError:
        return None
    rows = []
    for index in data.INDICES:
        value = record[f"{index}_mean"]
        row = {"index": index.upper(), date: float(value) if record["usable"] and pd.notna(value) else None}
        for pair in view.past_seasons(parcel_id, date, index, tolerance).itertuples():
            row[f"{pair.season} ({pair.date})"] = pair.value
            row[f"Δ vs {pair.season}"] = pair.delta if pd.notna(pair.delta) else None
        rows.append(row)
    return pd.DataFrame(rows).set_index("index")


def styled_compare(table: pd.DataFrame):
    """The compare table with signed differences and "—" for every missing value."""
    deltas = [c for c in table.columns if c.startswith("Δ")]
    values = [c for c in table.columns if c not in deltas]
    return (table.style.format("{:+.3f}", subset=deltas, na_rep="—")
            .format("{:.3f}", subset=values, na_rep="—"))


def similar_panel(view: data.AppView, parcel_id: str, date: str, k: int = 6) -> None:
    """The parcels whose imagery on some date looked most like this one on `date`, with chips."""
    try:
        record = view.record(parcel_id, date)
        if not record["usable"]:
            # A clouded or suspect observation's embedding describes the scene, not the crop.
            st.info(f"{md_text(parcel_id)} is not usable on {date}: similar parcels are searched from a usable "
                    "observation. Pick a date without ☁ or ⚠.")
            return
        hits = view.similar(parcel_id, date, k)
    except (data.NotFoundError, data.StoreError) as exc:
        st.info(md_text(exc))
        return
    columns = st.columns(min(k, 3) + 1)
    with columns[0]:
        _chip(view, record, f"**{md_text(parcel_id)}** · {date} (this parcel)")
    for i, hit in enumerate(hits.itertuples()):
        with columns[(i + 1) % len(columns)]:
            other = view.record(hit.parcel_id, hit.date)
            crop = view.label(hit.parcel_id)
            _chip(view, other, f"**{md_text(hit.parcel_id)}**{' · ' + md_text(crop) if crop else ''} · {hit.date} · "
                               f"distance {hit.distance:.3f} · NDVI {hit.ndvi_mean:.2f}")


def _chip(view: data.AppView, record: pd.Series, caption: str) -> None:
    images = view.thumbnails(record)
    if images is None:
        st.caption(f"{caption} — source raster {md_text(PurePath(str(record['source'])).name)} not found")
        return
    st.image(list(images), caption=["true colour", "false colour"], width=96)
    st.caption(caption)


def citations_table(citations: list[dict]) -> pd.DataFrame:
    """The answer's citations as rows: parcel, date, each index value, valid and cloud fractions,
    and the source raster's file name (not its path on the server)."""
    rows = []
    for c in citations:
        row = {"parcel": c.get("parcel_id"), "date": c.get("date")}
        row.update({k: v for k, v in (c.get("indices") or {}).items()})
        row.update(valid=c.get("valid_fraction"), cloud=c.get("cloud_fraction"),
                   source=PurePath(str(c["source"])).name if c.get("source") else None)
        rows.append(row)
    return pd.DataFrame(rows)
