"""The chat page's glue: the selected parcel as default subject, cited parcels, one generation at a time."""

from __future__ import annotations

import threading
import time

from ui import chat_backend

IDS = ["Flanders31UES-001", "Flanders31UES-010", "grid10-32631-664000-5612120"]


def test_the_selected_parcel_is_named_only_when_the_question_names_none():
    asked = chat_backend.with_subject("How is it doing?", "Flanders31UES-001", IDS)
    assert asked == "How is it doing? (parcel Flanders31UES-001)"
    other = "Compare Flanders31UES-010 with last year"
    assert chat_backend.with_subject(other, "Flanders31UES-001", IDS) == other
    assert chat_backend.with_subject("how is flanders31ues-010?", "Flanders31UES-001", IDS).endswith("-010?")
    # A prefix of another id is not that id.
    assert "(parcel" in chat_backend.with_subject("Flanders31UES-0 and friends", "Flanders31UES-001", IDS)
    assert chat_backend.with_subject("Which fields were dry?", None, IDS) == "Which fields were dry?"


def test_cited_parcels_are_listed_once_in_order():
    answer = {"citations": [{"parcel_id": "b"}, {"parcel_id": "a"}, {"parcel_id": "b"}, {"parcel_id": None}]}
    assert chat_backend.cited_parcels(answer) == ["b", "a"]
    assert chat_backend.cited_parcels({}) == []


class SlowAssistant:
    """Streams in pieces and records whether two streams ever overlapped."""

    def __init__(self):
        self.active = 0
        self.overlap = False
        self.last_result = None

    def stream(self, question):
        self.active += 1
        self.overlap |= self.active > 1
        for word in question.split():
            time.sleep(0.01)
            yield word + " "
        self.last_result = {"question": question, "citations": [{"parcel_id": question.split()[-1]}]}
        self.active -= 1

    def ask(self, question):
        raise AssertionError("the streamed answer is reused, not generated again")


def test_streams_are_serialised_and_each_session_keeps_its_own_answer():
    assistant = SlowAssistant()
    results = {}

    def session(name):
        out = {}
        text = "".join(chat_backend.stream(assistant, f"how is {name}", out))
        results[name] = (text, chat_backend.complete(assistant, f"how is {name}", out))

    threads = [threading.Thread(target=session, args=(n,)) for n in ("p1", "p2", "p3")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not assistant.overlap
    for name, (text, answer) in results.items():
        assert text == f"how is {name} "
        assert answer["citations"][0]["parcel_id"] == name
