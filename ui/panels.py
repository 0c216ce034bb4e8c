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


def season_chart(view: data.StoreView, parcel_id: str, index: str, date: str | None = None,
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
