"""The assistant behind the Ask page: loaded once per store generation and model, shared by every session.

Three rules make it fast for the first user and for many:

* The assistant (store, parser, generator) loads in the background as soon as the server starts
  (`ui.serve`, which `xvision ui` runs, calls `preload`) and again whenever the store gets a new
  generation, then answers two questions that need no generation to warm its caches; every page
  renders meanwhile, only an answer waits for it (`load`).
* A generator is not safe to run from two threads at once, so generation is serialised by one lock,
  held only while the model generates (`SerialisedChatModel`). Planning, retrieval, composition, and
  every answer that needs no generation (groups, rankings, histories, unusable dates) never wait
  for it.
* Each session's answer is gathered from its own run of the chain, never from the shared
  `Assistant.last_result`, which another session's question may replace at any moment.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any

import numpy as np
import streamlit as st
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, Field, PrivateAttr

from ui import config, data

#: The one generation lock of this server process (every session's generator runs under it).
_GENERATE = threading.Lock()
#: Assistants loaded or loading, per (store, model, store generation); the newest few are kept.
_LOADS: OrderedDict[tuple[str, str | None, str], tuple[Future, float]] = OrderedDict()
_LOADS_LOCK = threading.Lock()
MAX_LOADED = 2


class SerialisedChatModel(BaseChatModel):
    """A chat model that runs `inner` under `lock`: one generation at a time, whoever asks.

    The lock is taken when generation starts and released when it ends (a stream closed early by
    the grounding gate releases it too), so the chain's other steps run concurrently. `waits`
    counts the seconds callers spent waiting for the lock (read by tests and the load benchmark).

    Decoding is greedy, so the same messages (the same record, language and prompt) give the same
    text: a text generated to its end is kept (`cache_size` most recent) and served again without
    the lock. Sessions asking about the same parcel and date then do not queue for it. A stream
    the caller closed early is not kept (its text is cut).

    Requests that queue for the lock are written together: whoever gets the lock writes every
    waiting record analysis of the same language and prompt in one batch (`max_batch` at most;
    the generator's `write_batch`, which writes the same texts in a batch as one by one), and the
    others find theirs written when the lock comes to them. Measured with the tiny
    demo model on the loaded 2-core machine: 20 analyses in one batch 15.6 s, one alone 2.2 s. A
    request alone keeps the sentence-by-sentence stream. Generators that write answers from a chat
    template (instruct models) are never batched.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)
    inner: Any
    lock: Any = None
    cache_size: int = 512
    max_batch: int = 16
    waits: list[float] = Field(default_factory=list)
    batch_sizes: list[int] = Field(default_factory=list)  # of each batch written (tests, benchmarks)
    _cache: OrderedDict = PrivateAttr(default_factory=OrderedDict)
    _cache_lock: Any = PrivateAttr(default_factory=threading.Lock)
    _pending: list = PrivateAttr(default_factory=list)

    def model_post_init(self, context: Any) -> None:
        if self.lock is None:
            self.lock = _GENERATE

    @property
    def _llm_type(self) -> str:
        return f"serialised-{self.inner._llm_type}"

    @property
    def chat_template(self) -> bool:
        return bool(getattr(self.inner, "chat_template", False))

    @staticmethod
    def _key(messages, stop) -> tuple:
        return tuple((m.type, str(m.content), tuple(sorted((k, str(v)) for k, v in m.additional_kwargs.items())))
                     for m in messages) + (tuple(stop or ()),)

    def _cached(self, key: tuple) -> str | None:
        with self._cache_lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        return None

    def _keep(self, key: tuple, text: str) -> None:
        with self._cache_lock:
            self._cache[key] = text
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)

    def _acquire(self) -> None:
        start = time.perf_counter()
        self.lock.acquire()
        self.waits.append(time.perf_counter() - start)

    def _request(self, key: tuple, messages) -> _Request | None:
        """A queued analysis request when the generator can write it in a batch, else None."""
        inner = self.inner
        if (self.max_batch <= 1 or not callable(getattr(inner, "write_batch", None))
                or not callable(getattr(inner, "_analysis_request", None)) or inner.chat_template):
            return None
        from assistant.generator import message_aspects

        features, record, lang, prompt = inner._analysis_request(messages)
        request = _Request(key, (lang, prompt), features, record, message_aspects(messages))
        with self._cache_lock:
            self._pending.append(request)
        return request

    def _write_batch(self, request: _Request) -> None:
        """Under the lock: write `request` with every pending request of its language and prompt."""
        with self._cache_lock:
            batch = [request] + [r for r in self._pending if r is not request and r.group == request.group]
            batch = batch[:self.max_batch]
            self._pending = [r for r in self._pending if r not in batch]
        self.batch_sizes.append(len(batch))
        try:
            lang, prompt = request.group
            texts = self.inner.write_batch(np.concatenate([r.features for r in batch]), [r.record for r in batch],
                                           lang, prompt, aspects=[r.aspects for r in batch])
            for r, text in zip(batch, texts):
                r.text = text
                self._keep(r.key, text)
        except BaseException as exc:  # every request of the batch gets the failure (the chain words it)
            for r in batch:
                r.error = exc
            raise
        finally:
            for r in batch:
                r.done.set()

    def _queued(self, key: tuple, messages) -> tuple[str | None, bool]:
        """(text, True) when this request was written in a batch (its own or another's), or
        (None, False) when it holds the lock alone and should generate itself; the lock is held
        on return only in the second case."""
        request = self._request(key, messages)
        self._acquire()
        if request is None:
            return None, False
        if not request.done.is_set():
            with self._cache_lock:
                alone = not any(r is not request and r.group == request.group for r in self._pending)
                if alone:
                    self._pending.remove(request)
            if alone:
                return None, False  # nobody to batch with: the usual stream
            try:
                self._write_batch(request)
            finally:
                self.lock.release()
        else:
            self.lock.release()
        if request.error is not None:
            raise request.error
        return request.text, True

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        key = self._key(messages, stop)
        text = self._cached(key)
        if text is None:
            text, written = self._queued(key, messages)
            if not written:
                try:  # the lock is held: another session may have generated the same text meanwhile
                    text = self._cached(key)
                    if text is None:
                        result = self.inner._generate(messages, stop=stop, run_manager=run_manager, **kwargs)
                        self._keep(key, str(result.generations[0].message.content))
                        return result
                finally:
                    self.lock.release()
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])

    def _stream(self, messages, stop=None, run_manager=None, **kwargs):
        key = self._key(messages, stop)
        text = self._cached(key)
        if text is None:
            text, written = self._queued(key, messages)
            if not written:
                try:
                    text = self._cached(key)
                    if text is None:
                        pieces = []
                        for chunk in self.inner._stream(messages, stop=stop, run_manager=run_manager, **kwargs):
                            pieces.append(str(chunk.message.content))
                            yield chunk
                        self._keep(key, "".join(pieces))  # reached only when the caller read to the end
                        return
                finally:
                    self.lock.release()
        yield ChatGenerationChunk(message=AIMessageChunk(content=text))


@dataclass(eq=False)
class _Request:
    """One record analysis waiting for the generator (see `SerialisedChatModel`)."""

    key: tuple
    group: tuple[str, str]  # (language, prompt): requests written in one batch share them
    features: Any
    record: dict
    aspects: tuple[str, ...] = ()  # the analysis ends once it has stated these (`record_message`)
    done: threading.Event = dataclass_field(default_factory=threading.Event)
    text: str | None = None
    error: BaseException | None = None


def serialised(model: BaseChatModel) -> SerialisedChatModel:
    """`model` behind the server's generation lock (the `wrap_model` of `Assistant.open`)."""
    return SerialisedChatModel(inner=model, lock=_GENERATE)


def _open(store: str, model: str | None):
    from assistant import Assistant

    assistant = Assistant.open(store, model_dir=model, wrap_model=serialised)
    # A generator that loads its weights at its first generation is loaded now, in this background
    # thread, so the first user's first answer does not pay for it.
    inner = getattr(assistant.model, "inner", None)
    if callable(getattr(inner, "load", None)):
        inner.load()
    _warm_up(assistant)
    return assistant


def _warm_up(assistant) -> None:
    """Ask what needs no generation once, in the loading thread: the chain's store facts, the parser's
    lexicon and the answer modules' imports are then ready before the first user asks."""
    try:
        parcels = assistant.view.parcels()["parcel_id"].astype(str).tolist()
    except Exception:  # an empty or unreadable store: the first question will say so
        return
    for question in ("What does the archive hold?", *([f"NDVI history of {parcels[0]}"] if parcels else [])):
        try:
            assistant.chain.invoke({"question": question, "lang": None, "today": assistant.today})
        except Exception:  # a warm-up failure must not fail the load: the real question reports it
            return


def _key(cfg: config.AppConfig) -> tuple[str, str | None, str]:
    return str(cfg.store), str(cfg.model) if cfg.model else None, data.store_token(cfg.store)


def preload(cfg: config.AppConfig) -> Future:
    """Start loading the assistant of `cfg` in a background thread, unless it is loaded or loading.

    Cheap when it is: every page calls it. The thread is a daemon, so stopping the server does not
    wait for a load in progress. A failed load stays failed (its error is shown by `load`) until
    the store changes: retrying on every page would reload a broken model again and again.
    """
    key = _key(cfg)
    with _LOADS_LOCK:
        if key in _LOADS:
            _LOADS.move_to_end(key)
            return _LOADS[key][0]
        future: Future = Future()
        _LOADS[key] = (future, time.monotonic())
        while len(_LOADS) > MAX_LOADED:
            _LOADS.popitem(last=False)

    def work() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(_open(key[0], key[1]))
        except BaseException as exc:  # handed to whoever waits in `load`
            future.set_exception(exc)

    threading.Thread(target=work, name="xvision-assistant-load", daemon=True).start()
    return future


def loading(cfg: config.AppConfig) -> float | None:
    """Seconds since the assistant of `cfg` started loading while it still loads; None once loaded
    (or failed). Starts the load when nothing has."""
    future = preload(cfg)
    if future.done():
        return None
    with _LOADS_LOCK:
        started = _LOADS.get(_key(cfg), (None, time.monotonic()))[1]
    return time.monotonic() - started


def load_error(cfg: config.AppConfig) -> BaseException | None:
    """What the finished load of `cfg`'s assistant raised (None while it loads, or when it loaded)."""
    future = preload(cfg)
    return future.exception() if future.done() else None


def load(cfg: config.AppConfig, timeout: float | None = None):
    """The Assistant for the app's store and model, waiting for its background load if needed
    (reloaded after the store gets new records). Raises what the load raised."""
    future = preload(cfg)
    if not future.done():
        with st.spinner("Loading the assistant and its models…"):
            return future.result(timeout)
    return future.result()


@st.cache_resource(max_entries=2, show_spinner="Loading the store's encoder…")
def _encoder(store: str, token: str):
    from assistant import encoder_for

    return encoder_for(store)


def encoder(cfg: config.AppConfig):
    """The encoder that wrote the store (new records must be comparable with the stored ones)."""
    try:
        token = data.store_token(cfg.store)
    except data.StoreError:
        token = "new store"
    return _encoder(str(cfg.store), token)


def _finish(assistant, total: dict) -> dict:
    """The chain's output as `Assistant.ask` returns it (the model choice's warnings first)."""
    from assistant.api import RESULT_KEYS

    out = {key: total.get(key) for key in RESULT_KEYS}
    choice = getattr(assistant, "choice", None)
    if choice is not None and choice.warnings:
        out["warnings"] = [*choice.warnings, *(out["warnings"] or [])]
    return out


def stream(assistant, question: str, result: dict) -> Iterator[str]:
    """The answer's text as the chain streams it; when the stream has ended, `result` receives the
    whole answer (plan, citations, similar, warnings) of this very question.

    No lock here: the generator takes the generation lock itself, only while it generates.
    """
    total: dict | None = None
    for chunk in assistant.chain.stream({"question": question, "lang": None, "today": assistant.today}):
        total = chunk if total is None else total + chunk
        if chunk.get("answer"):
            yield chunk["answer"]
    result.update(_finish(assistant, dict(total or {})))


def complete(assistant, question: str, result: dict) -> dict:
    """The whole answer of the question just streamed (asked again only if the stream left none)."""
    if result:
        return result
    return _finish(assistant, dict(assistant.chain.invoke({"question": question, "lang": None,
                                                           "today": assistant.today})))


def with_subject(question: str, parcel_id: str | None, parcel_ids: list[str]) -> str:
    """The question with the selected parcel named, unless it already names a parcel of the store."""
    if not parcel_id:
        return question
    text = question.lower()
    if any(re.search(rf"(?<![\w-]){re.escape(p.lower())}(?![\w-])", text) for p in parcel_ids):
        return question
    return f"{question.rstrip()} (parcel {parcel_id})"


def cited_parcels(answer: dict) -> list[str]:
    """Parcel ids an answer cites, in order, each once."""
    ids = [c.get("parcel_id") for c in answer.get("citations") or []]
    return list(dict.fromkeys(i for i in ids if i))
