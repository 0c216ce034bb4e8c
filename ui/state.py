"""What the pages share through the session: the selected parcel, date and index, the chat.

Plain session-state keys (not widget keys): Streamlit drops a widget's state on pages where the
widget is not drawn, and the selection must survive moving between the map, the parcel page and
the chat. Each page draws its widgets with these values and writes the user's choice back.
"""

from __future__ import annotations

import streamlit as st

PARCEL = "xv_parcel"  # selected parcel id (the chat's default subject), or None
DATE = "xv_date"  # selected acquisition date, ISO
INDEX = "xv_index"  # index the map colours by
CITED = "xv_cited"  # parcel ids cited by the last answer (highlighted on the map)
MESSAGES = "xv_messages"  # chat history: dicts with role, content and, for answers, the result
AREA = "xv_area"  # the group of nearby parcels the map frames
MAP_CLICK = "xv_map_click"  # the last clicked feature seen, so an old click is not applied again


def init(dates: list[str], parcels: list[str]) -> None:
    """Defaults for a new session (and repair of a selection the store no longer has)."""
    state = st.session_state
    if state.get(DATE) not in dates:
        state[DATE] = dates[-1] if dates else None
    if state.get(PARCEL) not in parcels:
        state[PARCEL] = None
    state.setdefault(INDEX, "ndvi")
    state.setdefault(CITED, [])
    state.setdefault(MESSAGES, [])
    state.setdefault(MAP_CLICK, None)


def select_parcel(parcel_id: str | None) -> None:
    st.session_state[PARCEL] = parcel_id


def selected_parcel() -> str | None:
    return st.session_state.get(PARCEL)
