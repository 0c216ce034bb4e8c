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
valid, suspect, valid_fraction, cloud_fraction``). After each `ask` or finished `stream`,
`last_timings` holds the seconds spent (see `StepTimer` and `Assistant.timings`). Library errors (an unreadable store, a model
directory that is not one) raise `indexer.core.errors.XVisionError` subclasses with their data.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.runnables import Runnable

from assistant.chain import build_chain, default_parse
from assistant.models import ModelChoice, choose_model
from assistant.store_access import StoreView
from indexer.core.errors import InputError, WeightsError

RESULT_KEYS = ("question", "plan", "answer", "citations", "similar", "history", "warnings")
#: The chain's named steps (their `run_name`s), in order.
STEPS = ("plan", "retrieve", "generate", "ground", "compose")


class StepTimer(BaseCallbackHandler):
    """Seconds spent in each named step of a chain run, read from LangChain's chain callbacks
    (each step is a Runnable with its `run_name`): the chain is timed without being changed."""

    run_inline = True  # called in the step's own thread, at its start and end

    def __init__(self, steps: tuple[str, ...] = STEPS) -> None:
        self.steps = steps
        self.seconds: dict[str, float] = {}
        self._started: dict[UUID, tuple[str, float]] = {}

    def on_chain_start(self, serialized: dict[str, Any] | None, inputs: Any, *, run_id: UUID,
                       name: str | None = None, **kwargs: Any) -> None:
        name = name or (serialized or {}).get("name")
        if name in self.steps:
            self._started[run_id] = (name, time.perf_counter())

    def _end(self, run_id: UUID) -> None:
        if run_id in self._started:
            name, start = self._started.pop(run_id)
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id)


class Assistant:
    """Questions about one store, answered by the chain of `assistant.chain`."""

    def __init__(self, view: StoreView, chain: Runnable, choice: ModelChoice | None = None,
                 today: dt.date | None = None, model=None, generator=None, open_seconds: float | None = None) -> None:
        self.view = view
        self.chain = chain
        self.choice = choice
        self.today = today
        #: The chat model the chain generates with (`XVisionChatModel`, possibly wrapped by the
        #: caller's `wrap_model`), None without a generator.
        self.model = model
        #: The `XVisionChatModel` itself (unwrapped): it loads its model at its first generation.
        self.generator = generator if generator is not None else model
        #: Seconds `open` took (the store and the model choice; the generator loads later).
        self.open_seconds = open_seconds
        #: The full result of the last `ask` or finished `stream`.
        self.last_result: dict | None = None
        #: Seconds per step of the last `ask` or finished `stream` (`timings`).
        self.last_timings: dict | None = None

    @classmethod
    def open(cls, store_dir: str | Path, model_dir: str | Path | None = None, today: dt.date | str | None = None,
             *, parse: Callable = default_parse, max_new_tokens: int | None = None,
             wrap_model: Callable | None = None) -> Assistant:
        """Open the store and the generator that fits it (see `assistant.models.choose_model`).

        `today` anchors relative dates ("last month"); by default the newest acquisition.
        `wrap_model` (chat model -> chat model) wraps the loaded generator before the chain gets it,
        e.g. the app's generation lock (`ui.chat_backend.SerialisedChatModel`).
        """
        start = time.perf_counter()
        view = StoreView.open(store_dir)
        choice = choose_model(view, model_dir)
        model, generator, writer, prompts = None, None, "analysis", None
        if choice.path is not None:
            generator, writer, prompts = _chat_model(choice, view, max_new_tokens)
            model = generator if wrap_model is None else wrap_model(generator)
        if isinstance(today, str):
            today = dt.date.fromisoformat(today)
        chain = build_chain(view, model, parse=parse, writer=writer, prompts=prompts,
                            model_notes=tuple(choice.notes), today=today)
        return cls(view, chain, choice, today, model, generator, time.perf_counter() - start)

    def _input(self, question: str, lang: str | None, today: dt.date | None) -> dict:
        return {"question": question, "lang": lang, "today": today or self.today}

    def _finish(self, result: dict) -> dict:
        out = {key: result.get(key) for key in RESULT_KEYS}
        if self.choice is not None and self.choice.warnings:
            out["warnings"] = [*self.choice.warnings, *(out["warnings"] or [])]
        self.last_result = out
        return out

    def _loaded(self) -> bool:
        return self.generator is None or bool(getattr(self.generator, "loaded", True))

    def timings(self, timer: StepTimer, total: float, loaded_before: bool) -> dict:
        """Seconds of one answer: ``open`` (the store and model choice, once per Assistant),
        ``load`` (the generator's load with its imports, when this answer loaded it; else None),
        each step of `STEPS` (None when it did not run; ``generate`` without the load) and
        ``total`` (the answer, the load included)."""
        load = None
        if not loaded_before and self._loaded():
            load = getattr(self.generator, "load_seconds", None)
        steps: dict[str, float | None] = {step: timer.seconds.get(step) for step in timer.steps}
        if load is not None and steps.get("generate") is not None:
            steps["generate"] = max(0.0, steps["generate"] - load)
        return {"open": self.open_seconds, "load": load, **steps, "total": total}

    def ask(self, question: str, lang: str | None = None, today: dt.date | None = None) -> dict:
        """Answer `question` (`lang` "en"/"fr" forces the answer's language; default: the question's)."""
        timer, loaded, start = StepTimer(), self._loaded(), time.perf_counter()
        result = self.chain.invoke(self._input(question, lang, today), config={"callbacks": [timer]})
        self.last_timings = self.timings(timer, time.perf_counter() - start, loaded)
        return self._finish(dict(result))

    def stream(self, question: str, lang: str | None = None, today: dt.date | None = None) -> Iterator[str]:
        """The answer's text in pieces as they pass the grounding gate; then `last_result` holds the dict."""
        total = None
        timer, loaded, start = StepTimer(), self._loaded(), time.perf_counter()
        for chunk in self.chain.stream(self._input(question, lang, today), config={"callbacks": [timer]}):
            total = chunk if total is None else total + chunk
            if chunk.get("answer"):
                yield chunk["answer"]
        self.last_timings = self.timings(timer, time.perf_counter() - start, loaded)
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


#: Which generator runtime serves a model: "auto" (the ONNX export when the model has a current
#: one and onnxruntime is installed, else torch), "onnx" or "torch". Environment: XVISION_GENERATOR.
BACKENDS = ("auto", "onnx", "torch")


def generator_backend() -> str:
    """The runtime asked for in the environment (``XVISION_GENERATOR``, default "auto")."""
    import os

    backend = os.environ.get("XVISION_GENERATOR", "auto").strip().lower() or "auto"
    if backend not in BACKENDS:
        raise InputError(f"XVISION_GENERATOR must be one of {', '.join(BACKENDS)}, got {backend!r}",
                         field="XVISION_GENERATOR", value=backend)
    return backend


def _load_served(choice: ModelChoice) -> object | None:
    """The model's ONNX export on ONNX Runtime (no torch import: a generated answer from a cold
    process costs the export's load, not torch's), or None when torch must serve it: asked
    for, an instruct model, no export, or one that no longer matches the model's files (then
    a warning goes with every answer, `choice.warnings`)."""
    from xvision_model.artifacts import has_chat_template
    from xvision_model.serving import load_serving, serving_status
    from xvision_model.threads import tiny_cpu_threads

    backend = generator_backend()
    if backend == "torch" or has_chat_template(choice.path):
        return None
    status = serving_status(choice.path)
    if not status.usable:
        if backend == "onnx":
            raise WeightsError(status.reason, path=choice.path)
        if status.present:
            choice.warnings.append(f"The generator starts slower than it could: {status.reason}.")
        return None
    try:
        # One thread for the tiny profile, as torch serves it (`xvision_model.threads`).
        return load_serving(choice.path, threads=tiny_cpu_threads((choice.card or {}).get("profile"), False),
                            status=status)
    except WeightsError as exc:
        if backend == "onnx":
            raise
        choice.warnings.append(f"The generator starts slower than it could: {exc}.")
        return None


def _load_model(choice: ModelChoice, view: StoreView, max_new_tokens: int | None, chat) -> object:
    """Load the chosen generator and size the chat model's generation from it: called by
    `XVisionChatModel.load` at the first generation. The ONNX export when it serves the model
    (`_load_served`), else the XVisionModel (merged LoRA, on the GPU when there is one)."""
    model = _load_served(choice)
    if model is None:
        model = _load_torch(choice, chat)
    training = (choice.card or {}).get("training") or {}
    chat.max_new_tokens = max_new_tokens or min(int(training.get("max_new_tokens") or 256),
                                                _longest_analysis(view, model.tokenizer))
    return model


def _load_torch(choice: ModelChoice, chat) -> object:
    import torch

    from xvision_model.artifacts import load_model
    from xvision_model.threads import tiny_cpu_threads, torch_threads

    # The serving rule of `xvision_model.threads` (one thread for the tiny profile on the CPU), from
    # the load on: folding LoRA's small matrices into the weights on two threads of a busy 2-core
    # machine took 0.2-0.6 s, on one 0.17 s.
    threads = tiny_cpu_threads((choice.card or {}).get("profile"), torch.cuda.is_available())
    with torch_threads(threads):
        model = load_model(choice.path, merge=True).eval()
    if torch.cuda.is_available():
        model = model.to("cuda")
    if threads is not None:
        chat.threads = threads
    return model


def _chat_model(choice: ModelChoice, view: StoreView, max_new_tokens: int | None):
    """The chosen model as a chat model that loads it at its first generation, its writer role
    and its prompts. Nothing heavy happens here: the role comes from the card and the tokenizer's
    files, so an answer that generates nothing never imports torch."""
    from assistant.generator import XVisionChatModel
    from xvision_model.artifacts import has_chat_template

    training = (choice.card or {}).get("training") or {}
    template = has_chat_template(choice.path)

    def load():
        return _load_model(choice, view, max_new_tokens, chat)

    chat = XVisionChatModel(store=view, model_name=str(choice.path), has_chat_template=template, loader=load,
                            max_new_tokens=max_new_tokens or int(training.get("max_new_tokens") or 256))
    return chat, writer_of(choice.card or {}, template), training.get("prompts")
