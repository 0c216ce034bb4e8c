"""Parcel page: one parcel's seasons, a date against past seasons, and parcels that looked alike."""

from __future__ import annotations

import streamlit as st

from ui import config, data, panels, report_view, state
from ui.data import md_text

#: The observation rule's statuses (indexer.observations) in words.
STATUS_WORDS = {"cloud": "clouded", "snow": "under snow", "nodata": "without data",
                "too_small": "too small for a reliable value", "suspect": "suspect"}

cfg = config.parse()
view = data.open_view(cfg.store)

ids = list(view.parcels["parcel_id"])
parcel = st.selectbox("Parcel", ids, format_func=lambda p: f"{p} · {view.label(p)}" if view.label(p) else p,
                      placeholder="Choose a parcel (or click one on the map)", **state.bound(state.PARCEL))
if parcel is None:
    st.info("Choose a parcel, or click one on the Map page.")
    st.stop()

history = view.history(parcel)
dates = list(history["date"])
if st.session_state[state.DATE] not in dates:  # the map's date is not one of this parcel's: its newest usable one
    usable = list(history.loc[history["usable"], "date"])
    st.session_state[state.DATE] = usable[-1] if usable else dates[-1]
date = st.select_slider("Date", options=dates, format_func=lambda d: view.date_label(view.area_of(parcel), d),
                        **state.bound(state.DATE))

panels.parcel_card(view, parcel, date)
if not history["usable"].any():
    why = ", ".join(f"{n} {STATUS_WORDS.get(status, status)}" for status, n in history["status"].value_counts().items())
    st.warning(f"{md_text(parcel)} has no usable observation in the store (of its {len(history)} acquisitions: "
               f"{why}). The charts below show no line.")

st.subheader("Seasons")
chosen = st.multiselect("Indices", data.INDICES, default=["ndvi", "ndmi"], format_func=str.upper)
for index in chosen:
    st.altair_chart(panels.season_chart(view, parcel, index, date), width="stretch")
if chosen:
    st.caption("Each line is one season (calendar year) on a shared day-of-year axis; faint grey rules "
               "mark dates clouded, not observed or suspect, where the line is broken. "
               "The dashed rule is the selected date.")

st.subheader("Compared with past seasons")
tolerance = st.slider("Same time of year: within ± days of the day of year", 5, 45, data.SEASON_TOLERANCE_DAYS,
                      step=5)
table = panels.compare_table(view, parcel, date, tolerance)
if table is None or table.shape[1] <= 1:
    st.info(f"No usable record of {md_text(parcel)} in other seasons within ±{tolerance} days of the day of year "
            f"of {date}.")
else:
    st.dataframe(panels.styled_compare(table), width="stretch")
    usable_now = view.record(parcel, date)["usable"]
    st.caption("Each other season: its usable record closest in day of year (date in brackets); "
               "Δ = this date minus that record." + ("" if usable_now else
                                                     f" {date} is not usable: no difference is computed."))

st.subheader("Parcels that looked like this")
panels.similar_panel(view, parcel, date)

st.subheader("Take it away")
report_view.download_buttons(cfg, parcel, int(date[:4]))
