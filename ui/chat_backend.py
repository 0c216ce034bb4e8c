"""The assistant, loaded once per store generation and model, shared by every session.

Cached resources are shared between sessions and a generator is not safe to run from two threads
at once, so generation is serialised with one lock.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator

import streamlit as st

from ui import config, data

_GENERATE = threading.Lock()


@st.cache_resource(max_entries=2, show_spinner="Loading the assistant and its models…")
def _load(store: str, model: str | None, token: str):
    from assistant import Assistant

    return Assistant.open(store, model_dir=model)


def load(cfg: config.AppConfig):
    """The Assistant for the app's store and model (reloaded after the store gets new records)."""
    return _load(str(cfg.store), str(cfg.model) if cfg.model else None, data.store_token(cfg.store))


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


def stream(assistant, question: str, result: dict) -> Iterator[str]:
    """The answer's text as the assistant streams it, under the generation lock; when the stream
    has ended, `result` receives the whole answer (plan, citations, similar, warnings).

    The assistant keeps that dict in `last_result`; it is copied before the lock is released, so
    another session's question cannot replace it in between.
    """
    with _GENERATE:
        yield from assistant.stream(question)
        last = getattr(assistant, "last_result", None)
        if isinstance(last, dict):
            result.update(last)


def complete(assistant, question: str, result: dict) -> dict:
    """The whole answer of the question just streamed (asked again only if the stream left none)."""
    if result:
        return result
    with _GENERATE:
        return assistant.ask(question)


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
