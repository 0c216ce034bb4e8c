"""Pieces the pages share: the parcel card, its season chart, the compare table, similar parcels,
the citations table. They render records as the store holds them."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from ui import data

QUALITY = ["valid_fraction", "cloud_fraction"]


def _status(record: pd.Series) -> str:
    if record["suspect"]:
        return "suspect: a scene-wide jump the cloud mask missed"
    if not record["valid"]:
        return f"unusable ({record['invalid_reason'] or 'no data'}): valid {record['valid_fraction']:.0%}"
    return f"clear: valid {record['valid_fraction']:.0%}, cloud {record['cloud_fraction']:.0%}"


def parcel_card(view: data.StoreView, parcel_id: str, date: str) -> None:
    """The selected parcel on `date`: values, observation quality and the record's analysis."""
    label = view.parcels.set_index("parcel_id")["label"].get(parcel_id, "")
    st.subheader(f"{parcel_id}" + (f" · {label}" if label else ""))
    try:
        record = view.record(parcel_id, date)
    except data.NotFoundError:
        st.info(f"No acquisition of {parcel_id} on {date}.")
        return
    st.caption(f"{date} — {_status(record)}")
    if record["usable"]:
        columns = st.columns(3)
        for i, index in enumerate(data.INDICES):
            columns[i % 3].metric(index.upper(), f"{record[f'{index}_mean']:.2f}")
    else:
        nearest = view.nearest_date(parcel_id, date)
        st.warning(f"No usable observation of this parcel on {date}" +
                   (f"; the nearest clear date is {nearest}." if nearest else "."))
    st.write(record["analysis"])


def season_chart(view: data.StoreView, parcel_id: str, indices: list[str], date: str | None = None) -> alt.Chart:
    """Index means over the day of the year, one line per season; unusable dates break the line
    and are marked as grey ticks (they say nothing about the crop)."""
    rows = view.seasons(parcel_id)
    long = rows.melt(id_vars=["date", "season", "doy", "usable", "valid_fraction", "cloud_fraction"],
                     value_vars=[f"{i}_mean" for i in indices], var_name="index", value_name="value")
    long["index"] = long["index"].str.removesuffix("_mean").str.upper()
    long = long.sort_values(["index", "season", "doy"])
    # A new line segment after every unusable date, so no line is drawn across a gap.
    long["segment"] = long.groupby(["index", "season"])["usable"].transform(lambda u: (~u).cumsum())
    usable, unusable = long[long["usable"]], long[~long["usable"]]
    x = alt.X("doy:Q", title="day of year", scale=alt.Scale(domain=[1, 366]))
    colour = alt.Color("season:N", title="season")
    tooltip = ["date:N", "index:N", alt.Tooltip("value:Q", format=".3f"),
               alt.Tooltip("valid_fraction:Q", format=".0%"), alt.Tooltip("cloud_fraction:Q", format=".0%")]
    lines = alt.Chart(usable).mark_line(point=True).encode(
        x=x, y=alt.Y("value:Q", title="mean"), color=colour, detail="segment:N", tooltip=tooltip)
    gaps = alt.Chart(unusable).mark_tick(thickness=2, size=10, opacity=0.6, color="#9e9e9e").encode(
        x=x, y=alt.value(0), tooltip=[alt.Tooltip("date:N", title="unusable date"),
                                       alt.Tooltip("valid_fraction:Q", format=".0%")])
    layers = [lines, gaps]
    if date is not None:
        doy = pd.Timestamp(date).dayofyear
        layers.append(alt.Chart(pd.DataFrame({"doy": [doy]})).mark_rule(strokeDash=[4, 3], color="#111").encode(x="doy:Q"))
    return alt.layer(*layers, data=long).properties(height=170).facet(
        row=alt.Row("index:N", title=None)).resolve_scale(y="independent")


def compare_table(view: data.StoreView, parcel_id: str, date: str, days: int) -> pd.DataFrame | None:
    """The record of `date` against the same window (± days) of each other season: mean of each
    season's usable records, and the difference."""
    try:
        record = view.record(parcel_id, date)
    except data.NotFoundError:
        return None
    past = view.same_window(parcel_id, date, days)
    rows = []
    for index in data.INDICES:
        col = f"{index}_mean"
        row = {"index": index.upper(), date: record[col] if record["usable"] else None}
        for season, group in past.groupby("season"):
            label = f"{season} ({', '.join(group['date'])})"
            row[label] = group[col].mean()
            row[f"Δ vs {season}"] = (record[col] - group[col].mean()) if record["usable"] else None
        rows.append(row)
    return pd.DataFrame(rows).set_index("index")


def similar_panel(view: data.StoreView, parcel_id: str, date: str, k: int = 6) -> None:
    """The parcels whose imagery on some date looked most like this one on `date`, with chips."""
    try:
        record = view.record(parcel_id, date)
        hits = view.similar(parcel_id, date, k)
    except data.NotFoundError as exc:
        st.info(str(exc))
        return
    except data.StoreError as exc:  # e.g. the record is clouded: its embedding describes the cloud
        st.info(str(exc))
        return
    labels = view.parcels.set_index("parcel_id")["label"]
    columns = st.columns(min(k, 3) + 1)
    with columns[0]:
        _chip(view, record, f"**{parcel_id}** · {date} (this parcel)")
    for i, hit in enumerate(hits.itertuples()):
        with columns[(i + 1) % len(columns)]:
            other = view.record(hit.parcel_id, hit.date)
            crop = labels.get(hit.parcel_id, "")
            _chip(view, other, f"**{hit.parcel_id}**{' · ' + crop if crop else ''} · {hit.date} · "
                               f"distance {hit.distance:.3f} · NDVI {hit.ndvi_mean:.2f}")


def _chip(view: data.StoreView, record: pd.Series, caption: str) -> None:
    images = view.thumbnails(record)
    if images is None:
        st.caption(f"{caption} — source raster {record['source']} not found")
        return
    st.image(list(images), caption=["true colour", "false colour"], width=96)
    st.caption(caption)


def citations_table(citations: list[dict]) -> pd.DataFrame:
    """The answer's citations as rows: parcel, date, each index value, valid and cloud fractions."""
    rows = []
    for c in citations:
        row = {"parcel": c.get("parcel_id"), "date": c.get("date")}
        row.update({k: v for k, v in (c.get("indices") or {}).items()})
        row.update(valid=c.get("valid_fraction"), cloud=c.get("cloud_fraction"), source=c.get("source"))
        rows.append(row)
    return pd.DataFrame(rows)
