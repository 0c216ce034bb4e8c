"""The assistant's LCEL chain: plan -> retrieve -> generate -> ground -> compose.

`build_chain(...)` returns one Runnable, dict in, dict out. Its input is
``{"question": str, "lang": "en" | "fr" | None, "today": date | "YYYY-MM-DD" | None}``; its output
``{"question", "plan", "answer", "citations", "similar", "history", "warnings"}`` (see
`assistant.api.Assistant.ask`). Retrievers, the chat model and the question parser are injected.

Each step is a plain function over a typed `assistant.answers.turn.Turn`, testable alone; the
store reaches them only through an `AnswerContext`. The factory wires them as named Runnables
(`run_name`: ``plan``, ``retrieve``, ``generate``, ``ground``, ``compose``):

* plan (`plan_turn`): the question becomes a `QueryPlan` (`assistant.parsing.parse` against the
  store's facts) and a kind of answer (`assistant.answers.registry.choose`).
* retrieve (`retrieve_turn`): the kind's own ``retrieve`` (records, comparison records, similar
  records, and the focus observation a generator may describe).
* generate (`generate_turn`): for kinds that describe one observation (``DESCRIBES_FOCUS``), the
  chat model sees the focus record (its id in the message). `writer="analysis"` (tiny profile): it
  writes the record's analysis; `writer="answer"` (an instruct model): it writes the answer from
  the retrieved records.
* ground (`ground_turn`): the generated text is checked against the records
  (`assistant.grounding`); when it disagrees, the record's stored analysis is used and the notes say why.
* compose (`compose_turn`): the kind's ``compose``; every figure is checked once more by the gate.

Streaming: ``chain.stream(input)`` yields `AddableDict` chunks, first ``{"answer": text}`` pieces
sentence by sentence, once each has passed the gate, then one chunk with every other key; added
up, the chunks are ``chain.invoke(input)``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import SystemMessage
from langchain_core.runnables import Runnable, RunnableLambda
from langchain_core.runnables.utils import AddableDict

from assistant.answers import common as K
from assistant.answers.registry import by_name, choose
from assistant.answers.turn import AnswerContext, StoreAnswerContext, Turn
from assistant.compose import Composition
from assistant.documents import MEAN_COLUMNS, analysis_text, unique_citations
from assistant.generator import DEFAULT_PROMPTS, record_message
from assistant.grounding import Evidence, check_analysis
from assistant.parsing.text import fold
from assistant.plan import QueryPlan, StoreContext, snap_to_acquisition
from assistant.retrievers import SimilarRetriever, TargetRetriever
from assistant.store_access import StoreView
from indexer.observations import find_suspects


def default_parse(question: str, context: StoreContext, today: dt.date | None = None,
                  lang: str | None = None) -> QueryPlan:
    """The project's question parser (imported late: the chain can be built with another one)."""
    from assistant.parsing import parse

    return parse(question, context, today=today, lang=lang)


def _as_date(value: Any) -> dt.date | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


class StoreFacts:
    """Store-wide facts every question needs (what the parser resolves against, suspect dates),
    computed once per store state, and the `AnswerContext` over them."""

    def __init__(self, store: StoreView, target: TargetRetriever, similar: SimilarRetriever) -> None:
        self.store, self.target, self.similar = store, target, similar
        self._key: object = None
        self._ctx: StoreAnswerContext | None = None

    def context(self) -> StoreAnswerContext:
        key = (len(self.store), self.store.manifest.get("generation"), self.store.manifest.get("updated"))
        if key != self._key or self._ctx is None:
            ctx = StoreContext.from_store(self.store)
            suspects = find_suspects(self.store.records()) if len(self.store) else {}
            self._ctx = StoreAnswerContext(self.store, ctx, suspects, self.target, self.similar)
            self._key = key
        return self._ctx


# ----------------------------------------------------------------------------- the steps
def plan_turn(state: Mapping, ctx: AnswerContext, parse: Callable[..., QueryPlan] = default_parse,
              today: dt.date | None = None, notes: tuple[str, ...] = ()) -> Turn:
    """The question as a plan and a kind of answer."""
    question = str(state.get("question") or "")
    day = _as_date(state.get("today")) or today
    lang = state.get("lang") if state.get("lang") in ("en", "fr") else None
    warnings: list[str] = []
    try:
        plan = parse(question, ctx.context, today=day, lang=lang)
    except Exception as exc:  # an answer, never a traceback: the parser's failure is reported
        plan = None
        warnings.append("the question could not be read; please rephrase it")
        notes = (*notes, f"parser error: {type(exc).__name__}: {exc}")
    if plan is not None and lang in ("en", "fr") and plan.lang != lang:
        plan = dataclasses.replace(plan, lang=lang)
    if plan is not None:
        plan = snap_to_acquisition(plan, ctx.context)
    kind = choose(plan, fold(question))
    if plan is not None:
        plan = dataclasses.replace(plan, kind=kind.name)
    return Turn(question=question, lang=(plan.lang if plan else lang) or "en", plan=plan, kind=kind.name,
                notes=tuple(notes), warnings=tuple(warnings))


def retrieve_turn(turn: Turn, ctx: AnswerContext) -> Turn:
    """What the kind of answer reads from the store."""
    if not ctx.dates():
        return turn
    return dataclasses.replace(turn, found=by_name(turn.kind).load().retrieve(turn, ctx))


def _describes_focus(turn: Turn, ctx: AnswerContext) -> bool:
    focus = turn.found.focus
    return (getattr(by_name(turn.kind).load(), "DESCRIBES_FOCUS", False) and focus is not None
            and K.usable(focus, ctx.suspects))


def context_lines(turn: Turn, ctx: AnswerContext) -> str:
    """The retrieved records, one line each, for an instruct model writing the answer."""
    docs = {d.metadata["record_id"]: d for d in turn.found.all}
    lines = []
    for d in sorted(docs.values(), key=lambda d: (d.metadata["parcel_id"], d.metadata["date"]))[:60]:
        m = d.metadata
        lines.append(f"- parcel {m['parcel_id']}, {m['date']}, {K.status(d, ctx.suspects)}, "
                     f"{K.pct(m.get('valid_fraction'))} % valid, {K.pct(m.get('cloud_fraction'))} % cloud: "
                     f"{K.values(d, MEAN_COLUMNS)}")
    return "\n".join(lines)


def generate_turn(turn: Turn, ctx: AnswerContext, model: BaseChatModel | None, writer: str = "analysis",
                  prompts: Mapping[str, str] = DEFAULT_PROMPTS) -> Turn:
    """The chat model's text about the focus observation (nothing when the kind has none)."""
    if model is None or turn.plan is None or not _describes_focus(turn, ctx):
        return turn
    focus = turn.found.focus
    rid = focus.metadata["record_id"]
    if writer == "analysis":
        # The aspects the answer shows (the kind's `focus_aspects`): the generator stops once it has
        # written them, instead of spending time on sentences no one reads.
        shown = getattr(by_name(turn.kind).load(), "focus_aspects", None)
        messages = [record_message(prompts.get(turn.lang, prompts["en"]), rid, lang=turn.lang,
                                   aspects=shown(turn.plan.index) if shown else ())]
    else:
        instructions = ("Answer the question from these Sentinel-2 parcel records only. Name the parcel, the "
                        "date and the values for every statement; quote values with 2 decimals; do not "
                        "treat unusable or suspect records as the crop's condition. Answer in "
                        f"{'French' if turn.lang == 'fr' else 'English'}.\nRecords:\n{context_lines(turn, ctx)}")
        messages = [SystemMessage(content=instructions), record_message(turn.question, rid)]
    try:
        if writer == "analysis":
            text, stopped = _gated_stream(model, messages, focus.metadata)
            return dataclasses.replace(turn, generated=text, generation_stopped=stopped)
        return dataclasses.replace(turn, generated=str(model.invoke(messages).content))
    except Exception as exc:  # a failing generator must not cost the answer: compose without it
        return dataclasses.replace(turn, warnings=(*turn.warnings, "the text generator failed; the answer uses "
                                                   "the records' own analyses"),
                                   notes=(*turn.notes, f"generator error: {type(exc).__name__}: {exc}"))


def evidence_of(turn: Turn) -> Evidence:
    """What the answer may state: the retrieved records, the question's numbers, the windows' years."""
    ev = Evidence()
    for d in turn.found.all:
        ev.add_record(d.metadata)
        if d.metadata.get("distance") is not None:
            ev.allow(f"{d.metadata['distance']:.3f}")
    ev.allow_text(turn.question)
    plan = turn.plan
    if plan is not None:
        ev.allow_text(plan.date_rule or "")
        for w in [plan.window, *plan.compare_windows]:
            if w is not None:
                ev.allow_text(w.label)
                ev.allow(w.start.year, w.end.year)
        if plan.condition is not None:
            ev.allow(plan.condition.value)
    return ev


def ground_turn(turn: Turn, ctx: AnswerContext, writer: str = "analysis", has_model: bool = False) -> Turn:
    """The generated text checked against the focus record (or, for an answer writer, every record)."""
    focus, generated, lang = turn.found.focus, turn.generated, turn.lang
    notes = list(turn.notes)
    analysis, answer_text = None, None
    if writer == "analysis" and _describes_focus(turn, ctx):
        stored = analysis_text(focus, lang)
        if generated is None:
            analysis = {"text": stored, "source": "stored"}
            if has_model:
                notes.append("the generator was not used; the record's own analysis is quoted")
        else:
            verdict = check_analysis(generated, focus.metadata)
            if verdict.ok:
                analysis = {"text": generated, "source": "generated"}
                notes.append(f"generated analysis of record {focus.metadata['record_id']} passed the grounding gate")
            else:
                analysis = {"text": stored, "source": "stored", "rejected": generated, "problems": list(verdict.problems)}
                stopped = " (generation stopped at the first sentence the gate rejected)" if turn.generation_stopped else ""
                notes.append("generated analysis set aside (" + "; ".join(verdict.problems)
                             + f"){stopped}; the record's own analysis is used instead")
    elif generated is not None and writer == "answer":
        bad = evidence_of(turn).ungrounded(generated)
        verdict = check_analysis(generated, focus.metadata) if focus is not None else None
        class_problems = [p for p in (verdict.problems if verdict else ()) if p.startswith("states ") and "'" in p]
        if bad or class_problems:
            notes.append("the model's answer was set aside (" + "; ".join(
                [*(f"number {b} is in no retrieved record" for b in bad), *class_problems])
                + "); the answer is composed from the records")
        else:
            answer_text = generated
            notes.append("the model's answer passed the grounding gate")
    return dataclasses.replace(turn, analysis=analysis, answer_text=answer_text, notes=tuple(notes))


def compose_turn(turn: Turn, ctx: AnswerContext) -> Composition:
    """The kind's composed answer (the misspellings read are echoed at its end)."""
    from assistant.answers import checks

    comp = by_name(turn.kind).load().compose(turn, ctx)
    if comp.sentences:
        checks.readings(turn, comp)
        checks.snapped(turn, comp)
        checks.not_dates(turn, comp)
    comp.sentences = [K.tidy(turn.lang, s) for s in comp.sentences]
    return comp


def stream_answer(turn: Turn, ctx: AnswerContext) -> Iterator[AddableDict]:
    """The composed answer, sentence by sentence through the gate, then the other keys."""
    comp = compose_turn(turn, ctx)
    evidence = evidence_of(turn)
    for doc, _ in comp.cited:
        evidence.add_record(doc.metadata)
    evidence.allow(*comp.counts, *comp.derived, *comp.rules)
    dates = ctx.dates()
    evidence.allow(*sorted({int(d[:4]) for d in dates}))
    evidence.identifiers.update(ctx.context.parcel_ids)
    notes = list(turn.notes)
    warnings = list(turn.warnings) + comp.warnings
    if turn.answer_text:
        comp.sentences = [turn.answer_text]
    sentences: list[str] = []
    withheld = 0
    for sentence in comp.sentences:
        bad = evidence.ungrounded(sentence)
        if bad:  # a composer bug must not put an unsupported number in front of a user
            withheld += 1
            notes.append(f"sentence withheld by the grounding gate ({', '.join(bad)} in no retrieved record): {sentence}")
            continue
        sentences.append(sentence)
        yield AddableDict(answer=sentence if len(sentences) == 1 else " " + sentence)
    if withheld:
        warnings.append("Part of the answer was left out because a number in it could not be checked against the "
                        "records." if turn.lang != "fr" else
                        "Une partie de la réponse a été retirée : un de ses chiffres n'a pas pu être vérifié.")
    if not sentences:
        yield AddableDict(answer="")
    plan = turn.plan
    plan_dict = plan.to_dict() if plan is not None else {"question": turn.question, "intent": "unknown",
                                                         "kind": turn.kind, "notes": []}
    plan_dict["notes"] = [*plan_dict.get("notes", []), *notes]
    if turn.analysis:
        plan_dict["analysis_source"] = turn.analysis["source"]
        if turn.analysis.get("problems"):
            plan_dict["rejected_analysis"] = {"text": turn.analysis["rejected"], "problems": turn.analysis["problems"]}
    used = {d.metadata["date"] for d, _ in comp.cited}
    plan_dict["suspect_dates"] = {d: s.to_dict() for d, s in sorted(ctx.suspects.items()) if d in used}
    yield AddableDict(question=turn.question, plan=plan_dict, citations=unique_citations(comp.cited),
                      similar=comp.similar, history=comp.history, warnings=warnings)


def build_chain(
    store: StoreView,
    model: BaseChatModel | None = None,
    *,
    target: TargetRetriever | None = None,
    similar: SimilarRetriever | None = None,
    history: Any = None,
    parse: Callable[..., QueryPlan] = default_parse,
    writer: str = "analysis",
    prompts: Mapping[str, str] | None = None,
    model_notes: tuple[str, ...] = (),
    today: dt.date | None = None,
) -> Runnable:
    """The assistant chain over `store` with the given retrievers (defaults: over `store`) and model.

    `model` None: answers are composed from the records. `writer` is "analysis" (the model writes a
    record's analysis; tiny profile) or "answer" (an instruct model writes the answer from the
    retrieved context). `model_notes` join the plan's notes (which model, why). `today` is the
    default reference date for relative dates (an input's "today" wins). `history` is accepted for
    callers of the earlier interface; each kind reads a parcel's series through the target retriever.
    """
    if writer not in ("analysis", "answer"):
        raise ValueError(f"writer must be 'analysis' or 'answer', got {writer!r}")
    facts = StoreFacts(store, target or TargetRetriever(store=store), similar or SimilarRetriever(store=store))
    prompts = {**DEFAULT_PROMPTS, **(prompts or {})}

    def plan_step(state: dict) -> Turn:
        return plan_turn(state, facts.context(), parse, today, model_notes)

    def retrieve_step(turn: Turn) -> Turn:
        return retrieve_turn(turn, facts.context())

    def generate_step(turn: Turn) -> Turn:
        return generate_turn(turn, facts.context(), model, writer, prompts)

    def ground_step(turn: Turn) -> Turn:
        return ground_turn(turn, facts.context(), writer, model is not None)

    def compose_step(turn: Turn) -> Iterator[AddableDict]:
        yield from stream_answer(turn, facts.context())

    return (
        RunnableLambda(plan_step, name="plan").with_config(run_name="plan")
        | RunnableLambda(retrieve_step, name="retrieve").with_config(run_name="retrieve")
        | RunnableLambda(generate_step, name="generate").with_config(run_name="generate")
        | RunnableLambda(ground_step, name="ground").with_config(run_name="ground")
        | RunnableLambda(compose_step, name="compose").with_config(run_name="compose")
    )


_SENTENCE_END = re.compile(r"[.!?](?=\s)")


def _gated_stream(model: BaseChatModel, messages: list, meta: Mapping) -> tuple[str, bool]:
    """The model's analysis, streamed; reading stops at the first complete sentence the grounding
    gate rejects (the text would be set aside anyway), which stops the generator too.
    Returns (text, stopped early)."""
    text = ""
    checked = 0
    stream = model.stream(messages)
    try:
        for chunk in stream:
            text += str(chunk.content)
            ends = [m.end() for m in _SENTENCE_END.finditer(text, checked)]
            if ends:
                checked = ends[-1]
                if not check_analysis(text[:checked], meta).ok:
                    return text, True
    finally:
        stream.close()
    return text, False


__all__ = ["StoreFacts", "build_chain", "compose_turn", "default_parse", "evidence_of", "generate_turn",
           "ground_turn", "plan_turn", "retrieve_turn", "stream_answer"]
