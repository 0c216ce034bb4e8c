"""What the pages share through the session: the selected parcel, date, index and colouring, the
chat; and which parcel a question is about.

Plain session-state keys (not widget keys): Streamlit drops a widget's state on pages where the
widget is not drawn, and the selection must survive moving between the map, the parcel page and
the chat. Each page draws its widgets with these values and writes the user's choice back.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

PARCEL = "xv_parcel"  # selected parcel id (the chat's default subject), or None
DATE = "xv_date"  # selected acquisition date, ISO
INDEX = "xv_index"  # index the map colours by
COLOURING = "xv_colouring"  # what the map's colours show (mapview.COLOURINGS)
CITED = "xv_cited"  # parcel ids cited by the last answer (highlighted on the map)
MESSAGES = "xv_messages"  # chat history: dicts with role, content and, for answers, the result
AREA = "xv_area"  # the group of nearby parcels the map frames
MAP_CLICK = "xv_map_click"  # the last clicked feature seen, so an old click is not applied again


def init(dates: list[str], parcels: list[str], opening_date: str | None = None) -> None:
    """Defaults for a new session (and repair of a selection the store no longer has).

    A new session opens on `opening_date` (the newest date most parcels are usable), not on the
    newest acquisition: that one may be a white, fully clouded scene.
    """
    state = st.session_state
    if state.get(DATE) not in dates:
        state[DATE] = opening_date if opening_date in dates else (dates[-1] if dates else None)
    if state.get(PARCEL) not in parcels:
        state[PARCEL] = None
    state.setdefault(INDEX, "ndvi")
    state.setdefault(COLOURING, "value")
    state.setdefault(CITED, [])
    state.setdefault(MESSAGES, [])
    state.setdefault(MAP_CLICK, None)


LINK_APPLIED = "xv_link_applied"  # the page address's ?date=&parcel= were applied (once per session)


def apply_link(params, dates: list[str], parcels: list[str]) -> None:
    """A link to a view (`?date=YYYY-MM-DD&parcel=ID`) selects that date and parcel when a session
    starts; values the store does not hold are ignored. Applied once, so the widgets can change them."""
    state = st.session_state
    if state.get(LINK_APPLIED):
        return
    state[LINK_APPLIED] = True
    if params.get("date") in dates:
        state[DATE] = params.get("date")
    if params.get("parcel") in parcels:
        state[PARCEL] = params.get("parcel")


def bound(name: str, then=None) -> dict:
    """Keyword arguments that bind a widget to the shared setting `name`: the widget shows the
    setting (seeded before it is drawn, every run) and a change by the user is written back before
    the page reruns (then `then()`, if given). Pass no `index`/`value` beside them.

    (A widget given `index=` from the setting gets a new identity whenever the setting changes, so
    the user's next choice lands on a widget that is no longer drawn and is lost.)
    """
    key = f"{name}__widget"
    st.session_state[key] = st.session_state.get(name)

    def write_back() -> None:
        st.session_state[name] = st.session_state[key]
        if then is not None:
            then()

    return {"key": key, "on_change": write_back}


def select_parcel(parcel_id: str | None) -> None:
    st.session_state[PARCEL] = parcel_id


def selected_parcel() -> str | None:
    return st.session_state.get(PARCEL)


#: Questions (with their answers) the Ask page draws again on each rerun; earlier ones behind a
#: toggle. Measured with AppTest on the Flanders store: each answer drawn again costs about 4.5 ms
#: (2.8 ms its citations table, 1.7 ms its chat blocks), a composed answer itself about 45 ms.
SHOWN_EXCHANGES = 8


def recent_messages(messages: list[dict], keep: int, show_all: bool = False) -> tuple[list[dict], int]:
    """The chat messages to draw: from the `keep`-th last question on (every message when
    `show_all`, or when there are no more questions than that), and how many earlier questions
    are left out. A question is a "user" message; its answer follows it."""
    if keep < 1:
        raise ValueError(f"keep must be at least 1 question, not {keep}")
    questions = [i for i, m in enumerate(messages) if m["role"] == "user"]
    if show_all or len(questions) <= keep:
        return messages, 0
    return messages[questions[-keep]:], len(questions) - keep


#: The parser's note when a question named no place and it fell back to every parcel.
_DEFAULT_PLACE_NOTE = "no place named"


@dataclass(frozen=True)
class Subject:
    """Who a question is about: `selected` True when the selected parcel was made its subject;
    `text` says it in words for the chat."""

    selected: bool
    text: str


def names_own_subject(plan) -> bool:
    """Whether a parsed question (`assistant.plan.QueryPlan`) says itself what it is about: parcels,
    a crop or another attribute, a point or box, a place the store does not know, "all parcels", or
    a ranking / "which parcels" question (a group by its nature)."""
    places = plan.places
    if places.parcel_ids or places.attributes or places.point or places.bbox or places.unresolved:
        return True
    if plan.intent == "rank":
        return True
    return bool(places.all_parcels) and not any(_DEFAULT_PLACE_NOTE in note for note in plan.notes)


def subject_of(plan, selected: str | None) -> Subject:
    """The subject of a question asked with `selected` as the default parcel (None: none selected)."""
    if plan is not None and names_own_subject(plan):
        return Subject(False, describe_places(plan))
    if selected:
        return Subject(True, f"parcel {selected} (selected on the map; the question named none)")
    return Subject(False, describe_places(plan) if plan is not None else "not understood")


def describe_places(plan) -> str:
    """The places of a parsed question in words ("parcels A, B", "crop_name: Maize", ...)."""
    places = plan.places
    parts = []
    if places.parcel_ids:
        parts.append(("parcel " if len(places.parcel_ids) == 1 else "parcels ") + ", ".join(places.parcel_ids))
    for column, values in places.attributes.items():
        parts.append(f"{column.removeprefix('attr_')}: {', '.join(values)}")
    if places.point:
        parts.append(f"around {places.point[1]:.4f}, {places.point[0]:.4f}"
                     + (f" (within {places.radius_m:g} m)" if places.radius_m else ""))
    if places.bbox:
        parts.append("the box " + ", ".join(f"{v:.4f}" for v in places.bbox))
    if places.all_parcels and not parts:
        parts.append("all parcels")
    if places.unresolved:
        parts.append("not found in the store: " + ", ".join(places.unresolved))
    return "; ".join(parts) or "no parcel named"
