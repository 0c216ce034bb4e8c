"""Ask page: questions to the assistant; answers stream in, with the records they cite."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from ui import chat_backend, config, data, panels, state

cfg = config.parse()
view = data.open_view(cfg.store)

st.title("Ask about your parcels")
selected = state.selected_parcel()
parcel_ids = list(view.parcels["parcel_id"])
about_selected = False
if selected:
    about_selected = st.toggle(f"Questions are about the selected parcel **{selected}** unless they name another",
                               value=True)
else:
    st.caption(f"Name a parcel in your question (e.g. {parcel_ids[0]}), or select one on the map first.")

try:
    assistant = chat_backend.load(cfg)
except Exception as exc:  # the assistant package or its model cannot be loaded: say so, keep the page
    st.error(f"The assistant could not be loaded: {exc}")
    st.stop()


def show_answer(answer: dict) -> None:
    for warning in answer.get("warnings") or []:
        st.warning(warning)
    citations = answer.get("citations") or []
    if citations:
        st.caption("Records this answer cites")
        st.dataframe(panels.citations_table(citations), hide_index=True, width="stretch")
    similar = answer.get("similar") or []
    if similar:
        st.caption("Similar parcels (embedding distance)")
        st.dataframe(pd.DataFrame(similar), hide_index=True, width="stretch")


for message in st.session_state[state.MESSAGES]:
    with st.chat_message(message["role"]):
        st.markdown(message["content"])
        if message.get("answer"):
            show_answer(message["answer"])

question = st.chat_input("e.g. How is this parcel doing compared with last season?")
if question:
    asked = chat_backend.with_subject(question, selected if about_selected else None, parcel_ids)
    st.session_state[state.MESSAGES].append({"role": "user", "content": asked})
    with st.chat_message("user"):
        st.markdown(asked)
    with st.chat_message("assistant"):
        streamed: dict = {}
        text = st.write_stream(chat_backend.stream(assistant, asked, streamed))
        answer = chat_backend.complete(assistant, asked, streamed)
        show_answer(answer)
    st.session_state[state.MESSAGES].append({"role": "assistant", "content": text, "answer": answer})
    st.session_state[state.CITED] = chat_backend.cited_parcels(answer)

cited = st.session_state[state.CITED]
if cited:
    st.caption("Cited parcels are outlined on the map. Select one:")
    columns = st.columns(min(len(cited), 6))
    for i, parcel_id in enumerate(cited[:6]):
        if columns[i].button(parcel_id, key=f"cite-{parcel_id}"):
            state.select_parcel(parcel_id)
            st.switch_page("views/map.py")
