"""The chat page's glue: the selected parcel as default subject, cited parcels, the background load,
and the generation lock: one generation at a time, and answers that need no generation never wait."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

from ui import chat_backend, config

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


class RecordAnalysisModel(BaseChatModel):
    """A stand-in generator: writes the focus record's stored analysis word by word, slowly, and
    records whether two generations ever ran at once and which records it was asked about."""

    store: object
    delay: float = 0.02
    active: int = 0
    overlap: bool = False
    started: object = None  # a threading.Event set when a generation starts
    release: object = None  # a threading.Event the generation waits for before its first word
    asked: list = []

    @property
    def _llm_type(self) -> str:
        return "record-analysis"

    def _text(self, messages) -> str:
        rid = next(m.additional_kwargs["record_id"] for m in reversed(messages) if "record_id" in m.additional_kwargs)
        self.asked.append(int(rid))
        return str(self.store.by_ids([rid]).iloc[0]["analysis"])

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content="".join(self._stream_text(messages))))])

    def _stream_text(self, messages):
        self.active += 1
        self.overlap |= self.active > 1
        try:
            if self.started is not None:
                self.started.set()
            if self.release is not None:
                self.release.wait(10)
            for i, word in enumerate(self._text(messages).split(" ")):
                time.sleep(self.delay)
                yield word if i == 0 else " " + word
        finally:
            self.active -= 1

    def _stream(self, messages, stop=None, run_manager=None, **kwargs):
        for piece in self._stream_text(messages):
            yield ChatGenerationChunk(message=AIMessageChunk(content=piece))


@pytest.fixture
def served(flanders_store):
    """An Assistant over the Flanders test store whose generator is the stand-in, behind a lock of
    its own (the module's lock is the server's: a test must not hold it)."""
    from assistant import Assistant
    from assistant.chain import build_chain
    from assistant.store_access import StoreView

    view = StoreView.open(flanders_store)
    fake = RecordAnalysisModel(store=view, asked=[])
    lock = threading.Lock()
    model = chat_backend.SerialisedChatModel(inner=fake, lock=lock)
    return Assistant(view, build_chain(view, model), model=model), fake, lock


def _ask(assistant, question: str) -> tuple[str, dict]:
    result: dict = {}
    text = "".join(chat_backend.stream(assistant, question, result))
    return text, chat_backend.complete(assistant, question, result)


def test_generations_run_one_at_a_time_and_each_session_keeps_its_own_answer(served):
    assistant, fake, _ = served
    parcels = ("Flanders31UES-001", "Flanders31UES-004", "Flanders31UES-008")
    results = {}

    def session(pid):
        results[pid] = _ask(assistant, f"How was {pid} doing on 2019-07-25?")

    threads = [threading.Thread(target=session, args=(p,)) for p in parcels]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(fake.asked) == 3, "each question went through the generator"
    assert not fake.overlap
    for pid, (text, answer) in results.items():
        assert pid in text
        assert {c["parcel_id"] for c in answer["citations"]} == {pid}
        assert answer["plan"]["analysis_source"] == "generated"


def test_sessions_asking_about_the_same_record_share_one_generation(served):
    assistant, fake, _ = served
    results = []
    question = "How was Flanders31UES-004 doing on 2019-07-25?"
    threads = [threading.Thread(target=lambda: results.append(_ask(assistant, question))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(fake.asked) == 1 and not fake.overlap
    assert len({text for text, _ in results}) == 1
    assert all(answer["plan"]["analysis_source"] == "generated" for _, answer in results)


def test_an_answer_that_needs_no_generation_does_not_wait_for_the_lock(served):
    assistant, fake, lock = served
    fake.started, fake.release = threading.Event(), threading.Event()
    slow = threading.Thread(target=_ask, args=(assistant, "How was Flanders31UES-001 doing on 2019-07-25?"))
    slow.start()
    try:
        assert fake.started.wait(30), "the first question reached the generator"
        assert lock.locked()
        # While that generation holds the lock: a group question, a history and an unusable date.
        for question, expected in (("Which parcels had NDVI below 0.3 in July 2019?", "parcels"),
                                   ("NDVI history of Flanders31UES-004 in 2019", "Flanders31UES-004"),
                                   ("How was Flanders31UES-005 doing on 2019-08-14?", "Flanders31UES-005")):
            text, answer = _ask(assistant, question)
            assert expected in text and answer["citations"], question
            assert lock.locked(), "answered while the generation still held the lock"
    finally:
        fake.release.set()
        slow.join(60)
    assert not lock.locked()
    assert len(fake.asked) == 1, "only the first question generated"


def test_a_stream_closed_early_releases_the_lock_and_is_not_kept():
    lock = threading.Lock()
    words = _Words(calls=[])
    model = chat_backend.SerialisedChatModel(inner=words, lock=lock)
    stream = model.stream("anything")
    next(stream)
    assert lock.locked()
    stream.close()
    assert not lock.locked()
    assert "".join(c.content for c in model.stream("anything")) == "one two three"
    assert len(words.calls) == 2, "the cut text was not kept: generated again"
    assert not lock.locked()


def test_the_same_request_is_generated_once_and_served_again_without_the_lock():
    lock = threading.Lock()
    words = _Words(calls=[])
    model = chat_backend.SerialisedChatModel(inner=words, lock=lock)
    assert model.invoke("about record 1").content == "one two three"
    with lock:  # another generation holds the lock: the kept text does not wait for it
        assert "".join(c.content for c in model.stream("about record 1")) == "one two three"
        assert model.invoke("about record 1").content == "one two three"
    assert len(words.calls) == 1
    assert model.invoke("about record 2").content == "one two three" and len(words.calls) == 2


class _Words(BaseChatModel):
    calls: list = []

    @property
    def _llm_type(self) -> str:
        return "words"

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        self.calls.append(messages)
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content="one two three"))])

    def _stream(self, messages, stop=None, run_manager=None, **kwargs):
        self.calls.append(messages)
        for word in ("one", " two", " three"):
            yield ChatGenerationChunk(message=AIMessageChunk(content=word))


def test_the_assistant_loads_in_the_background_and_pages_need_not_wait(flanders_store, tmp_path, monkeypatch):
    gate = threading.Event()
    opened = []

    def slow_open(store, model):  # the real opener, held back until the test lets it go
        gate.wait(30)
        opened.append(store)
        return ("assistant of", Path(store).name)

    monkeypatch.setattr(chat_backend, "_open", slow_open)
    monkeypatch.setattr(chat_backend, "_LOADS", type(chat_backend._LOADS)())
    cfg = config.AppConfig(store=flanders_store, model=None, data_dir=tmp_path)
    start = time.perf_counter()
    future = chat_backend.preload(cfg)
    assert time.perf_counter() - start < 1 and not future.done()
    assert chat_backend.loading(cfg) is not None
    assert chat_backend.preload(cfg) is future, "one load per store generation"
    gate.set()
    assert chat_backend.load(cfg, timeout=30) == ("assistant of", flanders_store.name)
    assert chat_backend.loading(cfg) is None and opened == [str(flanders_store)]


def test_a_failed_load_is_reported_by_load(flanders_store, tmp_path, monkeypatch):
    def broken(store, model):
        raise RuntimeError(f"cannot read model {model}")

    monkeypatch.setattr(chat_backend, "_open", broken)
    monkeypatch.setattr(chat_backend, "_LOADS", type(chat_backend._LOADS)())
    cfg = config.AppConfig(store=flanders_store, model=tmp_path / "no-model", data_dir=tmp_path)
    with pytest.raises(RuntimeError, match="no-model"):
        chat_backend.load(cfg, timeout=30)


def test_the_served_assistant_generates_behind_the_lock(flanders_store, tmp_path, monkeypatch):
    from uidata import REPO

    model_dir = REPO / "models" / "tiny-demo"
    if not (model_dir / "model_card.json").is_file():
        pytest.skip("no committed demo model")
    monkeypatch.setattr(chat_backend, "_LOADS", type(chat_backend._LOADS)())
    cfg = config.AppConfig(store=flanders_store, model=model_dir, data_dir=tmp_path)
    assistant = chat_backend.load(cfg, timeout=300)
    assert isinstance(assistant.model, chat_backend.SerialisedChatModel)
    text, answer = _ask(assistant, "How was Flanders31UES-001 doing on 2019-07-25?")
    assert "Flanders31UES-001" in text and answer["citations"]
    assert assistant.model.waits, "the generator ran, under the lock"
    assert not chat_backend._GENERATE.locked()

    # Sessions asking at once about different records: written together, the same texts as alone.
    questions = [f"How was {p} doing on 2019-07-25?" for p in ("Flanders31UES-004", "Flanders31UES-008",
                                                                "Flanders31UES-011", "Flanders31UES-016")]
    together: dict = {}
    with chat_backend._GENERATE:  # hold the generator so that all four queue
        threads = [threading.Thread(target=lambda q=q: together.update({q: _ask(assistant, q)})) for q in questions]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while len(assistant.model._pending) < len(questions) and time.monotonic() < deadline:
            time.sleep(0.05)
    for t in threads:
        t.join(300)
    assert max(assistant.model.batch_sizes) == len(questions)
    assistant.model._cache.clear()
    for q in questions:  # one by one, from the start: the texts must not depend on the batch
        text, answer = _ask(assistant, q)
        assert text == together[q][0] and answer["plan"]["analysis_source"] == together[q][1]["plan"]["analysis_source"]


def test_the_ask_page_is_drawn_while_the_assistant_loads(app_env, monkeypatch):
    import ui.mapview
    from streamlit.testing.v1 import AppTest

    from uidata import REPO

    gate = threading.Event()

    def held_back(store, model):
        gate.wait(60)
        raise RuntimeError("released")

    monkeypatch.setattr(chat_backend, "_open", held_back)
    monkeypatch.setattr(chat_backend, "_LOADS", type(chat_backend._LOADS)())
    monkeypatch.setattr(ui.mapview, "st_folium", lambda fmap, **kw: {"last_active_drawing": None,
                                                                      "last_object_clicked_tooltip": None})
    at = AppTest.from_file(str(REPO / "ui" / "app.py"), default_timeout=90)
    try:
        at.run()
        at.switch_page("views/chat.py").run()
        assert not at.exception
        assert at.chat_input, "the question box is there while the model loads"
        assert any("is loading" in c.value for c in at.caption)
    finally:
        gate.set()


def test_the_server_starts_the_load_once_its_runtime_exists(flanders_store, monkeypatch):
    import streamlit.runtime

    from ui import serve

    opened = threading.Event()

    def record(store, model):
        opened.set()
        return "assistant"

    monkeypatch.setattr(chat_backend, "_open", record)
    monkeypatch.setattr(chat_backend, "_LOADS", type(chat_backend._LOADS)())
    monkeypatch.setattr(streamlit.runtime, "exists", lambda: False)
    serve._preload_when_running(["--store", str(flanders_store)], wait_s=0.2)
    assert not opened.wait(0.5), "no load before the runtime exists"
    monkeypatch.setattr(streamlit.runtime, "exists", lambda: True)
    serve._preload_when_running(["--store", str(flanders_store)])
    assert opened.wait(10)
    cfg = config.AppConfig(store=flanders_store.resolve(), model=None, data_dir=flanders_store)
    assert chat_backend.load(cfg, timeout=10) == "assistant"
