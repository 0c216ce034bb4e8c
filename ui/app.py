"""XVision's Streamlit app: `xvision ui --store DIR [--model DIR] [--port P]` runs this script.

Pages: Map (parcels coloured by an index, or by their difference from their own other seasons or
from their crop, on a date; click to select), Parcel (time series over seasons, compare with past
seasons, similar parcels), Ask (chat with the assistant, citing records), Add data (index uploaded
rasters and parcels). The store and the models are opened once and shared by all sessions
(`st.cache_resource`). A link `?date=YYYY-MM-DD&parcel=ID` opens a session on that date with that
parcel selected.
"""

from __future__ import annotations

import sys
from pathlib import Path

# `streamlit run ui/app.py` puts ui/ on sys.path, not the repository: make `import ui` find this
# checkout's package (not another installed copy).
_ROOT = str(Path(__file__).resolve().parents[1])
if sys.path[0] != _ROOT:
    sys.path.insert(0, _ROOT)

import streamlit as st  # noqa: E402

from indexer.core.errors import XVisionError  # noqa: E402
from ui import chat_backend, config, data, state  # noqa: E402

st.set_page_config(page_title="XVision", layout="wide")

PAGES = [
    st.Page("views/map.py", title="Map", url_path="map", default=True),
    st.Page("views/parcel.py", title="Parcel", url_path="parcel"),
    st.Page("views/chat.py", title="Ask", url_path="ask"),
    st.Page("views/add_data.py", title="Add data", url_path="add-data"),
]


def _sidebar(view: data.AppView, cfg: config.AppConfig) -> None:
    with st.sidebar:
        st.caption(f"Store {data.md_text(cfg.store.name)}: {len(view.records)} records, {len(view.parcels)} parcels, "
                   f"{len(view.dates)} dates ({view.dates[0]} – {view.dates[-1]})" if view.dates else "empty store")
        parcel = state.selected_parcel()
        st.caption(f"Selected parcel: **{data.md_text(parcel)}**" if parcel else "No parcel selected: click one on the map.")


def main() -> None:
    cfg = config.parse()
    page = st.navigation(PAGES)
    try:
        view = data.open_view(cfg.store)
    except XVisionError as exc:
        st.error(f"The store cannot be opened: {data.md_text(exc)}")
        if page.url_path != "add-data":
            st.stop()
        page.run()
        return
    areas = view.areas()
    state.init(view.dates, list(view.parcels["parcel_id"]), view.opening_date(areas[0]) if areas else None)
    state.apply_link(st.query_params, view.dates, list(view.parcels["parcel_id"]))
    chat_backend.preload(cfg)  # the assistant loads in the background while pages render (no-op once loaded)
    try:
        page.run()
    finally:  # after the page, so that it shows the selection the page just made
        _sidebar(view, cfg)


main()
