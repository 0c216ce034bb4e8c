"""The assistant's Python API.

    from assistant import Assistant

    assistant = Assistant.open("flanders-store")            # model: registered / bundled / none
    result = assistant.ask("How is parcel 001 doing in June 2019?")
    result["answer"], result["citations"]

    for text in assistant.stream("NDVI history of parcel 001 in 2019"):
        print(text, end="")                                  # sentence by sentence
    assistant.last_result                                    # the whole dict, once the stream ended

`ask` returns ``{"question", "plan", "answer", "citations", "similar", "history", "warnings"}``:
`plan` is the parsed `QueryPlan` as a dict, its `notes` extended with what the assistant did
(which model, whether the generated analysis passed the grounding gate); each citation is
``{"record_id", "parcel_id", "date", "indices": {column: store value}, "valid", "valid_fraction",
"cloud_fraction", "source"}``; `similar` items ``{"parcel_id", "date", "distance", "score",
"record_id"}``; `history` items one per record read (``parcel_id, date, window, <index>_mean,
valid, suspect, valid_fraction, cloud_fraction``). Library errors (an unreadable store, a model
directory that is not one) raise `indexer.core.errors.XVisionError` subclasses with their data.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path

from langchain_core.runnables import Runnable

from assistant.chain import build_chain, default_parse
from assistant.models import ModelChoice, choose_model
from assistant.store_access import StoreView

RESULT_KEYS = ("question", "plan", "answer", "citations", "similar", "history", "warnings")


class Assistant:
    """Questions about one store, answered by the chain of `assistant.chain`."""

    def __init__(self, view: StoreView, chain: Runnable, choice: ModelChoice | None = None,
                 today: dt.date | None = None, model=None) -> None:
        self.view = view
        self.chain = chain
        self.choice = choice
        self.today = today
        #: The chat model the chain generates with (`XVisionChatModel`), None without a generator.
        self.model = model
        #: The full result of the last `ask` or finished `stream`.
        self.last_result: dict | None = None

    @classmethod
    def open(cls, store_dir: str | Path, model_dir: str | Path | None = None, today: dt.date | str | None = None,
             *, parse: Callable = default_parse, max_new_tokens: int | None = None,
             wrap_model: Callable | None = None) -> Assistant:
        """Open the store and the generator that fits it (see `assistant.models.choose_model`).

        `today` anchors relative dates ("last month"); by default the newest acquisition.
        `wrap_model` (chat model -> chat model) wraps the loaded generator before the chain gets it,
        e.g. the app's generation lock (`ui.chat_backend.SerialisedChatModel`).
        """
        view = StoreView.open(store_dir)
        choice = choose_model(view, model_dir)
        model, writer, prompts = None, "analysis", None
        if choice.path is not None:
            model, writer, prompts = _load_chat_model(choice, view, max_new_tokens)
            if wrap_model is not None:
                model = wrap_model(model)
        if isinstance(today, str):
            today = dt.date.fromisoformat(today)
        chain = build_chain(view, model, parse=parse, writer=writer, prompts=prompts,
                            model_notes=tuple(choice.notes), today=today)
        return cls(view, chain, choice, today, model)

    def _input(self, question: str, lang: str | None, today: dt.date | None) -> dict:
        return {"question": question, "lang": lang, "today": today or self.today}

    def _finish(self, result: dict) -> dict:
        out = {key: result.get(key) for key in RESULT_KEYS}
        if self.choice is not None and self.choice.warnings:
            out["warnings"] = [*self.choice.warnings, *(out["warnings"] or [])]
        self.last_result = out
        return out

    def ask(self, question: str, lang: str | None = None, today: dt.date | None = None) -> dict:
        """Answer `question` (`lang` "en"/"fr" forces the answer's language; default: the question's)."""
        return self._finish(dict(self.chain.invoke(self._input(question, lang, today))))

    def stream(self, question: str, lang: str | None = None, today: dt.date | None = None) -> Iterator[str]:
        """The answer's text in pieces as they pass the grounding gate; then `last_result` holds the dict."""
        total = None
        for chunk in self.chain.stream(self._input(question, lang, today)):
            total = chunk if total is None else total + chunk
            if chunk.get("answer"):
                yield chunk["answer"]
        self._finish(dict(total or {}))


def writer_of(card: dict, has_chat_template: bool) -> str:
    """"answer" when the model is an instruct model that can write the answer from the retrieved
    records (the card says ``"writer": "answer"``, or its base model is an *Instruct* checkpoint
    with a chat template); else "analysis": it writes a record's analysis, as it was trained to
    (the tiny profile, and the full profile fine-tuned from a base Qwen2)."""
    if card.get("writer") in ("answer", "analysis"):
        return card["writer"]
    instruct = any(tag in str(card.get("base_model", "")).lower() for tag in ("instruct", "-chat", "-it"))
    return "answer" if instruct and has_chat_template else "analysis"


def _longest_analysis(view: StoreView, tokenizer, sample: int = 256) -> int:
    """Tokens of the longest stored analysis (of a sample) plus a margin: a generated analysis needs no
    more, and a model that loops then stops there instead of at the card's (higher) limit."""
    records = view.records()
    if records.empty or tokenizer is None:
        return 256
    rows = records.sample(min(sample, len(records)), random_state=0)
    texts = [str(t) for c in ("analysis", "analysis_fr") if c in rows for t in rows[c] if t]
    return max(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts) + 24 if texts else 256


def _load_chat_model(choice: ModelChoice, view: StoreView, max_new_tokens: int | None):
    """The chosen model as a chat model, its writer role and its prompts."""
    import torch

    from assistant.generator import XVisionChatModel
    from xvision_model.artifacts import load_model

    model = load_model(choice.path, merge=True).eval()
    if torch.cuda.is_available():
        model = model.to("cuda")
    training = (choice.card or {}).get("training") or {}
    limit = max_new_tokens or min(int(training.get("max_new_tokens") or 256), _longest_analysis(view, model.tokenizer))
    # One thread for the tiny profile on the CPU (see XVisionChatModel.threads); larger models keep torch's default.
    threads = 1 if (choice.card or {}).get("profile") == "tiny" and not torch.cuda.is_available() else None
    chat = XVisionChatModel(model=model, store=view, max_new_tokens=limit, model_name=str(choice.path), threads=threads)
    writer = writer_of(choice.card or {}, chat.chat_template)
    return chat, writer, training.get("prompts")
