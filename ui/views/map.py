"""Map page: the parcels coloured by an index, or by how they differ from their past seasons or
from their crop, on one acquisition date; a click selects a parcel."""

from __future__ import annotations

import streamlit as st

from ui import config, data, mapview, panels, state
from ui.data import md_text

cfg = config.parse()
view = data.open_view(cfg.store)

st.title("Parcels")
selected = state.selected_parcel()
areas = view.areas()
# The map frames one area (a group of nearby parcels): the selected parcel's, else the last one shown.
if selected and view.has_parcel(selected):
    st.session_state[state.AREA] = view.area_of(selected)
elif st.session_state.get(state.AREA) not in areas:
    st.session_state[state.AREA] = areas[0]
controls = st.columns([3, 1, 2, 1] if len(areas) > 1 else [3, 1, 2])
if len(areas) > 1:
    with controls[3]:
        # Another area chosen: the selected parcel is not on its map any more.
        area = st.selectbox("Area", areas, **state.bound(state.AREA, then=lambda: state.select_parcel(None)))
else:
    area = areas[0]
dates = view.area_dates(area)
if st.session_state[state.DATE] not in dates:  # snap to the area's own acquisitions: the newest mostly usable
    st.session_state[state.DATE] = view.opening_date(area)
with controls[0]:
    date = st.select_slider("Acquisition date (☁ mostly cloudy or no data, ⚠ suspect)", options=dates,
                            format_func=lambda d: view.date_label(area, d), **state.bound(state.DATE))
with controls[1]:
    index = st.selectbox("Index", data.INDICES, format_func=str.upper, **state.bound(state.INDEX))
with controls[2]:
    kind = st.selectbox("Colour by", list(mapview.COLOURINGS), format_func=mapview.COLOURINGS.get,
                        **state.bound(state.COLOURING))

quality = view.quality(area, date)
if quality["unusable_share"] >= data.MOSTLY_USABLE:
    st.warning(f"{date}: {quality['unusable_share']:.0%} of the parcels have no usable observation (clouds, snow, "
               "no data or a suspect scene) — grey parcels show no value on this date.")
if quality["suspect"]:
    st.warning(f"{date}: some records are flagged suspect (a scene-wide jump the cloud mask missed).")
if kind == "crop" and view.crop_column is None:
    st.info("The parcels file has no crop-name column: no parcel has same-crop peers to compare with.")

left, right = st.columns([3, 2])
with left:
    clicked = mapview.parcel_map(view, date, index, area, selected, st.session_state[state.CITED], kind)
    if clicked and clicked != st.session_state[state.MAP_CLICK]:
        st.session_state[state.MAP_CLICK] = clicked
        if clicked != selected and view.has_parcel(clicked):
            state.select_parcel(clicked)
            st.rerun()
    st.caption(md_text(mapview.legend(view, date, index, area, kind)))
with right:
    if st.session_state[state.CITED]:
        st.caption("Outlined in blue: parcels the last answer cited — "
                   + ", ".join(md_text(p) for p in st.session_state[state.CITED]))
    if selected:
        panels.parcel_card(view, selected, date)
        st.altair_chart(panels.season_chart(view, selected, index, date, height=180), width="stretch")
        st.page_link("views/parcel.py",
                     label=f"Seasons, past-season comparison and similar parcels of {md_text(selected)} →")
    else:
        st.info("Click a parcel on the map to see its values, its seasons and parcels like it.")
