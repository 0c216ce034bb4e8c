"""Parcel page: one parcel's seasons, a date against past seasons, and parcels that looked alike."""

from __future__ import annotations

import streamlit as st

from ui import config, data, panels, state

cfg = config.parse()
view = data.open_view(cfg.store)

ids = list(view.parcels["parcel_id"])
labels = view.parcels.set_index("parcel_id")["label"]
current = state.selected_parcel()
parcel = st.selectbox("Parcel", ids, index=ids.index(current) if current in ids else None,
                      format_func=lambda p: f"{p} · {labels[p]}" if labels.get(p) else p,
                      placeholder="Choose a parcel (or click one on the map)")
if parcel is None:
    st.info("Choose a parcel, or click one on the Map page.")
    st.stop()
if parcel != current:
    state.select_parcel(parcel)

dates = list(view.history(parcel)["date"])
date = st.session_state[state.DATE]
if date not in dates:
    date = view.nearest_date(parcel, date) or dates[-1]
date = st.select_slider("Date", options=dates, value=date,
                        format_func=lambda d: view.date_label(view.area_of(parcel), d))
st.session_state[state.DATE] = date

panels.parcel_card(view, parcel, date)

st.subheader("Seasons")
chosen = st.multiselect("Indices", data.INDICES, default=["ndvi", "ndmi"], format_func=str.upper)
for index in chosen:
    st.altair_chart(panels.season_chart(view, parcel, index, date), width="stretch")
if chosen:
    st.caption("Each line is one season (calendar year) on a shared day-of-year axis; faint grey rules "
               "mark dates clouded, not observed or suspect, where the line is broken. "
               "The dashed rule is the selected date.")

st.subheader("Compared with past seasons")
days = st.slider("Window (± days around the same day of year)", 5, 45, 15, step=5)
table = panels.compare_table(view, parcel, date, days)
if table is None or table.shape[1] <= 1:
    st.info(f"No usable record of {parcel} in other seasons within ±{days} days of {date[5:]}.")
else:
    st.dataframe(table.style.format("{:+.3f}", subset=[c for c in table.columns if c.startswith("Δ")])
                 .format("{:.3f}", subset=[c for c in table.columns if not c.startswith("Δ")], na_rep="—"),
                 width="stretch")
    st.caption("Each other season: the mean of its usable records in the window (dates in brackets); "
               "Δ = this date minus that mean.")

st.subheader("Parcels that looked like this")
panels.similar_panel(view, parcel, date)
