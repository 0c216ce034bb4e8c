"""Ask page: questions to the assistant; answers stream in, with the records they cite.

The selected parcel is a question's subject only when the question names none: the assistant's
own parser reads the question first, and a question naming parcels, a crop, a place or a group
("which parcels ...") is asked as it was written. Each question shows what its subject was.

Every question reruns the page, which draws the conversation again before answering: only the
last `state.SHOWN_EXCHANGES` questions and answers are drawn unless the user asks for the earlier ones,
so a long conversation does not make each new answer (and every other session's, on the shared
server) wait for it to be redrawn.
"""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import streamlit as st

from ui import chat_backend, config, data, panels, state
from ui.data import md_text

cfg = config.parse()
view = data.open_view(cfg.store)

st.title("Ask about your parcels")
selected = state.selected_parcel()
parcel_ids = list(view.parcels["parcel_id"])
about_selected = False
if selected:
    about_selected = st.toggle(f"Questions that name no parcel, crop or place are about the selected parcel "
                               f"**{md_text(selected)}**", value=True)
else:
    st.caption(f"Name a parcel in your question (e.g. {md_text(parcel_ids[0]) if parcel_ids else 'its id'}), "
               "or select one on the map first.")

# The assistant loads in the background (chat_backend.preload): the page is drawn meanwhile and only a
# question waits for it.
failure = chat_backend.load_error(cfg)
if failure is not None:  # the assistant package or its model cannot be loaded: say so, keep the page
    st.error(f"The assistant could not be loaded: {md_text(failure)}")
    st.stop()
waiting = chat_backend.loading(cfg)
if waiting is not None:
    st.caption(f"The assistant's model is loading ({waiting:.0f} s so far); a question asked now is answered "
               "as soon as it is ready.")


def show_answer(answer: dict) -> None:
    for warning in answer.get("warnings") or []:
        st.warning(md_text(warning))
    citations = answer.get("citations") or []
    if citations:
        st.caption("Records this answer cites")
        st.dataframe(panels.citations_table(citations), hide_index=True, width="stretch")
    similar = answer.get("similar") or []
    if similar:
        st.caption("Similar parcels (embedding distance)")
        st.dataframe(pd.DataFrame(similar), hide_index=True, width="stretch")


def escaped(pieces: Iterator[str]) -> Iterator[str]:
    """The streamed answer as markdown text: parcel ids and crop names from the store shown as typed."""
    for piece in pieces:
        yield md_text(piece, flatten=False)


messages = st.session_state[state.MESSAGES]
earlier = state.recent_messages(messages, state.SHOWN_EXCHANGES)[1]
show_all = bool(earlier) and st.toggle(f"Show the {earlier} earlier question{'s' if earlier > 1 else ''} of this "
                                       "conversation", key="xv_chat_show_earlier")
for message in state.recent_messages(messages, state.SHOWN_EXCHANGES, show_all)[0]:
    with st.chat_message(message["role"]):
        st.markdown(md_text(message["content"], flatten=message["role"] == "user"))
        if message.get("subject"):
            st.caption(f"About: {md_text(message['subject'])}")
        if message.get("answer"):
            show_answer(message["answer"])

question = st.chat_input("e.g. How is this parcel doing compared with last season?")
if question:
    try:
        plan = view.parse(question)
    except Exception:  # the assistant reports an unreadable question itself; here only the subject is at stake
        plan = None
    subject = state.subject_of(plan, selected if about_selected else None)
    asked = chat_backend.with_subject(question, selected, parcel_ids) if subject.selected else question
    st.session_state[state.MESSAGES].append({"role": "user", "content": question, "subject": subject.text})
    with st.chat_message("user"):
        st.markdown(md_text(question))
        st.caption(f"About: {md_text(subject.text)}")
    with st.chat_message("assistant"):
        try:
            assistant = chat_backend.load(cfg)
        except Exception as exc:
            st.error(f"The assistant could not be loaded: {md_text(exc)}")
            st.stop()
        streamed: dict = {}
        st.write_stream(escaped(chat_backend.stream(assistant, asked, streamed)))
        answer = chat_backend.complete(assistant, asked, streamed)
        show_answer(answer)
    # The escaped text is what was shown; the stored message keeps the assistant's own words.
    st.session_state[state.MESSAGES].append({"role": "assistant", "content": answer.get("answer") or "",
                                             "answer": answer})
    st.session_state[state.CITED] = chat_backend.cited_parcels(answer)

cited = st.session_state[state.CITED]
if cited:
    st.caption("Cited parcels are outlined on the map. Select one:")
    columns = st.columns(min(len(cited), 6))
    for i, parcel_id in enumerate(cited[:6]):
        if columns[i].button(md_text(parcel_id), key=f"cite-{parcel_id}"):
            state.select_parcel(parcel_id)
            st.switch_page("views/map.py")
