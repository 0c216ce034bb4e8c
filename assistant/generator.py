"""The xvision_model generator as a LangChain chat model.

`XVisionChatModel` receives ordinary messages; the record whose visual tokens the generator should
see travels as a record id in the last human message's ``additional_kwargs["record_id"]`` (use
`record_message`). The wrapper fetches that record's embedding from the store itself, so no tensor
ever sits in a message. The text it writes is the prompt's answer from the visual tokens: for the
tiny profile the record's analysis; a full instruct model with a chat template also reads the
retrieved context the chain puts in the messages.

Importing this module costs nothing heavy: torch, transformers and the model are imported and
loaded the first time a text is generated (`XVisionChatModel.loader`), so an answer that needs no
generated text (a refusal, a history, a ranking) never pays for them.
"""

from __future__ import annotations

import functools
import queue
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, PrivateAttr, model_validator

from assistant.store_access import StoreView
from indexer.analysis import read_classes, split_sentences
from indexer.core.errors import InputError
from xvision_model.prompts import PROMPTS
from xvision_model.threads import torch_threads

if TYPE_CHECKING:
    import numpy as np

RECORD_KEY = "record_id"
LANG_KEY = "lang"
ASPECTS_KEY = "aspects"
#: The instruction the tiny profile was trained on, per language (a model card's own prompts win).
DEFAULT_PROMPTS = PROMPTS


class GenerationCancelled(Exception):
    """Raised inside `generate` (from the streamer) when the consumer of a stream stopped reading."""


class _SentenceQueue:
    """The analysis writer's sentences handed from its thread to the reader of a stream: what
    transformers' TextIteratorStreamer does for tokens, without importing transformers (the
    analysis may be written by the ONNX export, with no torch). `cancel()` makes the writer stop
    at its next sentence: a stream closed early (e.g. by the grounding gate) does not keep the
    CPU busy to the end."""

    _END = object()

    def __init__(self) -> None:
        self._queue: queue.Queue = queue.Queue()
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def on_finalized_text(self, text: str) -> None:
        self._queue.put(text)

    def end(self) -> None:
        self._queue.put(self._END)

    def __iter__(self) -> Iterator[str]:
        while (item := self._queue.get()) is not self._END:
            yield item


@functools.cache
def _streamer_class() -> type:
    """`_CancellableStreamer`, built on first use: its base class is transformers'. For an
    instruct model (chat template), whose tokens torch's `generate` streams."""
    from transformers import TextIteratorStreamer

    class _CancellableStreamer(TextIteratorStreamer):
        """A TextIteratorStreamer whose producer stops at the next token once `cancel()` is called:
        a stream closed early (e.g. by the grounding gate) does not keep the CPU busy to the end."""

        cancelled = False

        def cancel(self) -> None:
            self.cancelled = True

        def put(self, value) -> None:
            if self.cancelled:
                raise GenerationCancelled()
            super().put(value)

    return _CancellableStreamer


def record_message(text: str, record_id: int, lang: str = "en", aspects: Collection[str] = ()) -> HumanMessage:
    """A human message asking about the record `record_id` (its visual tokens go to the generator),
    in `lang` (the language the analysis is written in). With `aspects` (of
    `indexer.analysis.CLASS_RULES`), the analysis ends at the sentence by which it has stated each
    of them (`until_stated`): what the caller shows, without generating the rest."""
    kwargs: dict[str, Any] = {RECORD_KEY: int(record_id), LANG_KEY: lang}
    if aspects:
        kwargs[ASPECTS_KEY] = sorted(aspects)
    return HumanMessage(content=text, additional_kwargs=kwargs)


def message_aspects(messages: Sequence[BaseMessage]) -> tuple[str, ...]:
    """The aspects the last message that names some asks the analysis to end after."""
    for message in reversed(messages):
        aspects = message.additional_kwargs.get(ASPECTS_KEY)
        if aspects:
            return tuple(str(a) for a in aspects)
    return ()


def until_stated(sentences: Sequence[str], aspects: Collection[str]) -> int | None:
    """How many of `sentences` it takes to state every one of `aspects` (None: they never do)."""
    if not aspects:
        return None
    stated: set[str] = set()
    for n, sentence in enumerate(sentences, 1):
        stated |= set(read_classes(sentence))
        if set(aspects) <= stated:
            return n
    return None


def _cut(text: str, aspects: Collection[str]) -> str:
    """`text` up to the sentence by which it has stated every one of `aspects` (all of it otherwise)."""
    sentences = split_sentences(text)
    n = until_stated(sentences, aspects)
    return text if n is None else " ".join(sentences[:n])


def message_record_id(messages: Sequence[BaseMessage]) -> int | None:
    """The record id carried by the last message that has one."""
    for message in reversed(messages):
        rid = message.additional_kwargs.get(RECORD_KEY)
        if rid is not None:
            return int(rid)
    return None


class XVisionChatModel(BaseChatModel):
    """`xvision_model.XVisionModel` behind `BaseChatModel` (`invoke`, `stream`, callbacks).

    `model` is a loaded XVisionModel (with its tokenizer), or None with a `loader` that returns
    one: it is then called once, the first time a text is generated (thread-safe: the app shares
    one chat model between sessions), and `model` holds its result. `store` is the `StoreView`
    the record ids refer to. `has_chat_template` says, before loading, whether the tokenizer has
    a chat template (None: ask the loaded tokenizer). Greedy decoding, `max_new_tokens` at most.
    `threads` sets torch's intra-op threads while generating (None: unchanged): the tiny
    profile's 256-wide matrices are too small to share between cores, and on a busy 2-core
    machine one thread decodes ~10x faster than two (measured: 100 tokens in 0.52 s against
    5.3 s, load average 5).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)
    model: Any = None
    store: StoreView
    max_new_tokens: int = 256
    model_name: str = "xvision"
    threads: int | None = None
    loader: Callable[[], Any] | None = None
    has_chat_template: bool | None = None
    _load_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _load_seconds: float | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _model_or_loader(self) -> XVisionChatModel:
        if self.model is None and self.loader is None:
            raise InputError.about("generator", "XVisionChatModel needs a model or a loader", field="model")
        return self

    @property
    def _llm_type(self) -> str:
        return "xvision-model"

    @property
    def loaded(self) -> bool:
        """Whether the model is in memory (a lazy one loads at its first generation)."""
        return self.model is not None

    def load(self) -> Any:
        """The XVisionModel, loaded now by `loader` if it was not yet."""
        if self.model is None:
            with self._load_lock:
                if self.model is None:
                    start = time.perf_counter()
                    self.model = self.loader()
                    self._load_seconds = time.perf_counter() - start
        return self.model

    @property
    def load_seconds(self) -> float | None:
        """Seconds the loader took (None: the model was handed in loaded, or is not loaded yet)."""
        return self._load_seconds

    @property
    def chat_template(self) -> bool:
        """Whether the tokenizer has a chat template (an instruct LM that reads the whole conversation)."""
        if self.model is None and self.has_chat_template is not None:
            return self.has_chat_template
        return bool(getattr(self.load().tokenizer, "chat_template", None))

    def _inputs(self, messages: Sequence[BaseMessage]) -> tuple[np.ndarray, list[list[int]]]:
        rid = message_record_id(messages)
        if rid is None:
            raise InputError.about("generator", f"no message carries a {RECORD_KEY!r}; the generator needs a "
                                   "record to see", field=RECORD_KEY)
        features = self.store.vectors([rid])  # [1, D]; both generators take arrays
        tokenizer = self.load().tokenizer
        if self.chat_template:
            roles = {"human": "user", "ai": "assistant", "system": "system"}
            chat = [{"role": roles.get(m.type, "user"), "content": str(m.content)} for m in messages]
            ids = tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=True)
            if hasattr(ids, "keys"):  # transformers 5 returns a BatchEncoding
                ids = ids["input_ids"]
        else:
            prompt = next(str(m.content) for m in reversed(messages) if isinstance(m, HumanMessage))
            ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        return features, [list(ids)]

    def _analysis_request(self, messages: Sequence[BaseMessage]) -> tuple[np.ndarray, dict, str, str]:
        """For a model without a chat template: the record's embedding, its row, language and prompt."""
        rid = message_record_id(messages)
        features, _ = self._inputs(messages)
        record = self.store.by_ids([rid]).iloc[0].to_dict()
        lang = next((m.additional_kwargs.get(LANG_KEY) for m in reversed(messages)
                     if m.additional_kwargs.get(LANG_KEY)), "en")
        prompt = next(str(m.content) for m in reversed(messages) if isinstance(m, HumanMessage))
        return features, record, lang, prompt

    def write_batch(self, features: np.ndarray, records: Sequence[dict], lang: str = "en",
                    prompt: str | None = None, aspects: Sequence[Collection[str]] | None = None) -> list[str]:
        """The analyses users are shown for several records at once (store rows and their
        embeddings [N, D]), written in one batch: the texts `invoke` writes one record at a time
        (the writer's batched and single paths agree). Loads the model if it was not yet, and
        writes with this model's `threads`, so a caller (the app's generation queue) needs no
        import of torch's side of the model."""
        model = self.load()
        from xvision_model.writer import write_analyses

        with torch_threads(self.threads):
            written = write_analyses(model, features, list(records), lang, prompt=prompt,
                                     max_new_tokens=self.max_new_tokens)
        ends = aspects or [()] * len(written)
        return [_cut(analysis.text, until) for analysis, until in zip(written, ends)]

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        model = self.load()  # first: the load time measured is the model's and its imports'
        from xvision_model.writer import write_analyses

        if not self.chat_template:
            # The tiny profile writes the record's analysis: shown as the writer holds it to the
            # analysis grammar (each aspect once, no sentence twice, numbers from the record, the
            # unusable text for a record flagged not valid).
            features, record, lang, prompt = self._analysis_request(messages)
            with torch_threads(self.threads):
                text = write_analyses(model, features, [record], lang, prompt=prompt,
                                      max_new_tokens=self.max_new_tokens)[0].text
            text = _cut(text, message_aspects(messages))
        else:
            features, ids = self._inputs(messages)
            with torch_threads(self.threads):
                rows = model.generate(features, ids, max_new_tokens=self.max_new_tokens)
            text = model.tokenizer.decode(rows[0], skip_special_tokens=True)
        message = AIMessage(content=text, response_metadata={"model_name": self.model_name,
                                                             RECORD_KEY: message_record_id(messages)})
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        model = self.load()  # first: the load time measured is the model's and its imports'
        from xvision_model.writer import write_analyses

        failure: list[BaseException] = []
        if not self.chat_template:
            streamer = _SentenceQueue()
            features, record, lang, prompt = self._analysis_request(messages)
            aspects = message_aspects(messages)

            def write() -> None:
                # The writer hands over its shown text sentence by sentence; a stream closed early
                # raises GenerationCancelled from `put` at the next sentence, and so does the
                # sentence by which the aspects asked are all stated (the same text `_cut` keeps).
                said: list[str] = []

                def on_text(sentence: str) -> None:
                    streamer.on_finalized_text(sentence if not said else " " + sentence)
                    said.append(sentence)
                    if streamer.cancelled or until_stated(said, aspects) is not None:
                        raise GenerationCancelled()

                write_analyses(model, features, [record], lang, prompt=prompt,
                               max_new_tokens=self.max_new_tokens, on_text=on_text)
                streamer.end()
        else:
            streamer = _streamer_class()(model.tokenizer, skip_prompt=True, skip_special_tokens=True)
            features, ids = self._inputs(messages)

            def write() -> None:
                model.generate(features, ids, max_new_tokens=self.max_new_tokens, streamer=streamer)

        def work() -> None:
            try:
                with torch_threads(self.threads):
                    write()
            except GenerationCancelled:
                streamer.end()
            except BaseException as exc:  # re-raised in the caller's thread below
                failure.append(exc)
                streamer.end()

        worker = threading.Thread(target=work, daemon=True)
        worker.start()
        finished = False
        try:
            for piece in streamer:
                if not piece:
                    continue
                if run_manager is not None:
                    run_manager.on_llm_new_token(piece)
                yield ChatGenerationChunk(message=AIMessageChunk(content=piece))
            finished = True
        finally:
            if not finished:  # the consumer closed the stream early: stop the producer, read to its end
                streamer.cancel()
                for _ in streamer:
                    pass
            worker.join()
        if failure:
            raise failure[0]
