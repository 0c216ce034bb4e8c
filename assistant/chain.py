"""The assistant's LCEL chain: plan -> retrieve -> generate -> ground -> compose.

`build_chain(...)` returns one Runnable, dict in, dict out. Its input is
``{"question": str, "lang": "en" | "fr" | None, "today": date | "YYYY-MM-DD" | None}``; its output
``{"question", "plan", "answer", "citations", "similar", "history", "warnings"}`` (see
`assistant.api.Assistant.ask`). Retrievers, the chat model and the question parser are injected.

Each step is a named Runnable (`run_name`: ``plan``, ``retrieve``, ``generate``, ``ground``,
``compose``), visible to LangChain callbacks and tracers:

* plan: the question becomes a `QueryPlan` (`assistant.parsing.parse` against the store's facts).
* retrieve: the target records (TargetRetriever), then in parallel the history of the target
  parcels over the window and the comparison windows (HistoryRetriever) and the parcels most
  similar to the observation in focus (SimilarRetriever); suspect dates (`assistant.suspect`).
* generate: the chat model sees the focus record (its id in the message, see
  `assistant.generator`). `writer="analysis"` (tiny profile): it writes the record's analysis and
  the answer is composed around it; `writer="answer"` (an instruct model): it writes the answer
  from the retrieved records given as context.
* ground: the generated text is checked against the records (`assistant.grounding`); when it
  disagrees, the record's own stored analysis (or the composed answer) is used and the plan's
  notes say why.
* compose: sentences naming parcel, date and values, every figure checked once more by the gate.

Streaming: ``chain.stream(input)`` yields `AddableDict` chunks, first ``{"answer": text}`` pieces
sentence by sentence, once each has passed the gate (generated text is never shown before it is
checked), then one chunk with every other key; added up, the chunks are ``chain.invoke(input)``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from langchain_core.documents import Document
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import SystemMessage
from langchain_core.runnables import Runnable, RunnableLambda, RunnableParallel, RunnablePassthrough
from langchain_core.runnables.utils import AddableDict

from assistant import compose as C
from assistant.documents import DESCRIBE_COLUMNS, MEAN_COLUMNS, analysis_text, unique_citations
from assistant.generator import DEFAULT_PROMPTS, record_message
from assistant.grounding import Evidence, check_analysis
from assistant.plan import DateWindow, QueryPlan, StoreContext
from assistant.retrievers import (HistoryRetriever, SimilarRetriever, TargetRetriever, history_query, similar_query,
                                  target_query)
from assistant.store_access import StoreView
from assistant.suspect import find_suspects
from assistant.wording import ASPECT_NAMES, pct, say

#: Most parcels whose history a single answer reads.
MAX_HISTORY_PARCELS = 5
FOCUS_INTENTS = ("describe", "compare", "similar")


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


class _StoreFacts:
    """Store-wide facts the chain needs on every question, computed once per store state."""

    def __init__(self, store: StoreView) -> None:
        self.store = store
        self._key: object = None

    def _refresh(self) -> None:
        key = (len(self.store), self.store.manifest.get("generation"), self.store.manifest.get("updated"))
        if key != self._key:
            self.context = StoreContext.from_store(self.store)
            self.suspects = find_suspects(self.store.records()) if len(self.store) else {}
            self._key = key

    def get(self) -> tuple[StoreContext, dict]:
        self._refresh()
        return self.context, self.suspects


def _shift_year(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


def past_seasons(plan: QueryPlan, dates: list[str]) -> list[DateWindow]:
    """For a history over less than a year: the same calendar window in each earlier year the store
    covers (labelled by its dates), so the answer can set this season against the past ones."""
    w = plan.window
    if w is None or (w.end - w.start).days >= 365 or not dates:
        return []
    first = dt.date.fromisoformat(dates[0])
    out = []
    for years in range(1, w.start.year - first.year + 1):
        start, end = _shift_year(w.start, years), _shift_year(w.end, years)
        if end >= first:
            out.append(DateWindow(start, end, f"{start.isoformat()} to {end.isoformat()}"))
    return out


def _window(plan: QueryPlan) -> tuple[str | None, str | None, str]:
    """(start, end, label) of the plan's window; without one, everything up to the reference date."""
    if plan.window is not None:
        return plan.window.start.isoformat(), plan.window.end.isoformat(), plan.window.label
    if plan.intent in ("history", "rank"):
        return None, None, "the whole archive" if plan.lang == "en" else "toute l'archive"
    return None, plan.reference_date.isoformat(), plan.reference_date.isoformat()


def build_chain(
    store: StoreView,
    model: BaseChatModel | None = None,
    *,
    target: TargetRetriever | None = None,
    similar: SimilarRetriever | None = None,
    history: HistoryRetriever | None = None,
    parse: Callable[..., QueryPlan] = default_parse,
    writer: str = "analysis",
    prompts: Mapping[str, str] | None = None,
    model_notes: tuple[str, ...] = (),
    today: dt.date | None = None,
) -> Runnable:
    """The assistant chain over `store` with the given retrievers (defaults: over `store`) and model.

    `model` None: answers are composed from the records' own analyses. `writer` is "analysis"
    (the model writes a record's analysis; tiny profile) or "answer" (an instruct model writes the
    answer from the retrieved context). `model_notes` join the plan's notes (which model, why).
    `today` is the default reference date for relative dates (an input's "today" wins).
    """
    if writer not in ("analysis", "answer"):
        raise ValueError(f"writer must be 'analysis' or 'answer', got {writer!r}")
    target = target or TargetRetriever(store=store)
    similar = similar or SimilarRetriever(store=store)
    history = history or HistoryRetriever(store=store)
    prompts = {**DEFAULT_PROMPTS, **(prompts or {})}
    facts = _StoreFacts(store)

    # -- plan ----------------------------------------------------------------------------------
    def plan_step(state: dict) -> dict:
        question = str(state.get("question") or "")
        context, _ = facts.get()
        day = _as_date(state.get("today")) or today
        warnings: list[str] = []
        lang = state.get("lang") if state.get("lang") in ("en", "fr") else None
        try:
            plan = parse(question, context, today=day, lang=lang)
        except Exception as exc:  # an answer, never a traceback: the parser's failure is reported
            plan = None
            warnings.append(f"the question could not be read ({type(exc).__name__}: {exc})")
        if plan is not None and lang in ("en", "fr") and plan.lang != lang:
            plan = dataclasses.replace(plan, lang=lang)
        return {"question": question, "plan": plan, "lang": (plan.lang if plan else lang) or "en",
                "notes": list(model_notes), "warnings": warnings}

    # -- retrieve ------------------------------------------------------------------------------
    def targets_step(state: dict) -> dict:
        plan: QueryPlan | None = state["plan"]
        _, suspects = facts.get()
        docs: list[Document] = []
        if plan is not None and plan.intent != "unknown" and len(store):
            places = plan.places
            start, end, _ = _window(plan)
            named = bool(places.parcel_ids)
            if named or places.attributes or places.bbox or places.point or places.all_parcels or plan.intent == "rank":
                docs = target.invoke(target_query(
                    parcel_ids=places.parcel_ids if named else None, date_from=start, date_to=end,
                    attributes=None if named else places.attributes, bbox=places.bbox,
                    point=places.point if places.radius_m else None, radius_m=places.radius_m))
        return {**state, "targets": docs, "suspects": suspects}

    def focus_of(state: dict) -> Document | None:
        plan = state["plan"]
        if plan is None or not state["targets"]:
            return None
        first = C.by_parcel(state["targets"])
        pid = plan.places.parcel_ids[0] if plan.places.parcel_ids and plan.places.parcel_ids[0] in first else next(iter(first))
        return C.pick(first[pid], state["suspects"])

    def history_step(state: dict) -> list[Document]:
        plan = state["plan"]
        if plan is not None and plan.intent in FOCUS_INTENTS:
            focus = focus_of(state)
            if focus is not None and not C.usable(focus, state["suspects"]):
                # Unusable or suspect: the parcel's whole history, to offer the nearest usable dates.
                return history.invoke(history_query(focus.metadata["parcel_id"]))
        if plan is None or plan.intent not in ("history", "compare") or not state["targets"] and not plan.places.parcel_ids:
            return []
        parcels = list(dict.fromkeys([*plan.places.parcel_ids, *C.by_parcel(state["targets"])]))[:MAX_HISTORY_PARCELS]
        windows = []
        if plan.window is not None:
            windows.append((plan.window.start.isoformat(), plan.window.end.isoformat(), plan.window.label))
        windows += [(w.start.isoformat(), w.end.isoformat(), w.label) for w in plan.compare_windows]
        if plan.intent == "compare" and plan.window is None:
            windows.insert(0, (None, plan.reference_date.isoformat(), plan.reference_date.isoformat()))
        if plan.intent == "history" and not plan.compare_windows:
            windows += [(w.start.isoformat(), w.end.isoformat(), w.label) for w in past_seasons(plan, store.dates())]
        docs: list[Document] = []
        for pid in parcels:
            docs += history.invoke(history_query(pid, windows))
        return docs

    def similar_step(state: dict) -> list[Document]:
        plan = state["plan"]
        focus = focus_of(state)
        if plan is None or plan.intent != "similar" or focus is None or not C.usable(focus, state["suspects"]):
            return []
        places = plan.places
        # The plan's window (or a comparison window) restricts the candidates as well as the focus date.
        window = plan.compare_windows[0] if plan.compare_windows else plan.window
        return similar.invoke(similar_query(
            focus.metadata["record_id"], k=plan.k or 5,
            date_from=window.start.isoformat() if window else None, date_to=window.end.isoformat() if window else None,
            attributes=places.attributes if places.parcel_ids else None, bbox=places.bbox))

    def join_step(state: dict) -> dict:
        merged = {**state["state"], "history": state["history"], "similar": state["similar"]}
        merged["focus"] = focus_of(merged)
        return merged

    retrieve = (
        RunnableLambda(targets_step, name="targets")
        | RunnableParallel(state=RunnablePassthrough(), history=RunnableLambda(history_step, name="history"),
                           similar=RunnableLambda(similar_step, name="similar"))
        | RunnableLambda(join_step, name="focus")
    ).with_config(run_name="retrieve")

    # -- generate ------------------------------------------------------------------------------
    def context_lines(state: dict) -> str:
        docs = {d.metadata["record_id"]: d for d in [*state["targets"], *state["history"], *state["similar"]]}
        lines = []
        for d in sorted(docs.values(), key=lambda d: (d.metadata["parcel_id"], d.metadata["date"]))[:60]:
            m = d.metadata
            status = "usable" if C.usable(d, state["suspects"]) else ("suspect" if m["valid"] else f"unusable ({m['invalid_reason']})")
            lines.append(f"- parcel {m['parcel_id']}, {m['date']}, {status}, {pct(m.get('valid_fraction'))} % valid, "
                         f"{pct(m.get('cloud_fraction'))} % cloud: {C.values_text(d, MEAN_COLUMNS)}")
        return "\n".join(lines)

    def generate_step(state: dict) -> dict:
        plan, focus = state["plan"], state["focus"]
        out = {**state, "generated": None}
        if model is None or plan is None or focus is None or not C.usable(focus, state["suspects"]):
            return out
        if writer == "analysis" and (plan.intent not in FOCUS_INTENTS or _parcels_compared(plan, state["targets"])):
            return out  # no analysis in these answers: nothing to generate
        rid = focus.metadata["record_id"]
        if writer == "analysis":
            messages = [record_message(prompts.get(state["lang"], prompts["en"]), rid)]
        else:
            instructions = ("Answer the question from these Sentinel-2 parcel records only. Name the parcel, the "
                            "date and the values for every statement; quote values with 2 decimals; do not "
                            "treat unusable or suspect records as the crop's condition. Answer in "
                            f"{'French' if state['lang'] == 'fr' else 'English'}.\nRecords:\n{context_lines(state)}")
            messages = [SystemMessage(content=instructions), record_message(state["question"], rid)]
        try:
            if writer == "analysis":
                out["generated"], out["generation_stopped"] = _gated_stream(model, messages, focus.metadata)
            else:
                out["generated"] = str(model.invoke(messages).content)
        except Exception as exc:  # a failing generator must not cost the answer: compose without it
            out["warnings"] = [*state["warnings"], f"the generator failed ({type(exc).__name__}: {exc}); "
                                                   "the answer uses the records' own analyses"]
        return out

    # -- ground --------------------------------------------------------------------------------
    def evidence_of(state: dict) -> Evidence:
        ev = Evidence()
        for d in [*state["targets"], *state["history"], *state["similar"]]:
            ev.add_record(d.metadata)
            if d.metadata.get("distance") is not None:
                ev.allow(f"{d.metadata['distance']:.3f}")
        ev.allow_text(state["question"])
        plan = state["plan"]
        if plan is not None:
            ev.allow_text(plan.date_rule or "")
            for w in [plan.window, *plan.compare_windows]:
                if w is not None:
                    ev.allow_text(w.label)
                    ev.allow(w.start.year, w.end.year)
            if plan.condition is not None:
                ev.allow(plan.condition.value)
        return ev

    def ground_step(state: dict) -> dict:
        focus, generated, lang = state["focus"], state["generated"], state["lang"]
        out = {**state, "analysis": None, "answer_text": None}
        notes = list(state["notes"])
        if (focus is not None and writer == "analysis" and state["plan"] is not None and state["plan"].intent in FOCUS_INTENTS
                and not _parcels_compared(state["plan"], state["targets"])):
            stored = analysis_text(focus, lang)
            if generated is None:
                out["analysis"] = {"text": stored, "source": "stored"}
                if model is not None and C.usable(focus, state["suspects"]):
                    notes.append("the generator was not used; the record's own analysis is quoted")
            else:
                verdict = check_analysis(generated, focus.metadata)
                if verdict.ok:
                    out["analysis"] = {"text": generated, "source": "generated"}
                    notes.append(f"generated analysis of record {focus.metadata['record_id']} passed the grounding gate")
                else:
                    out["analysis"] = {"text": stored, "source": "stored", "rejected": generated,
                                       "problems": list(verdict.problems)}
                    stopped = " (generation stopped at the first sentence the gate rejected)" if state.get("generation_stopped") else ""
                    notes.append("generated analysis set aside (" + "; ".join(verdict.problems)
                                 + f"){stopped}; the record's own analysis is used instead")
        elif generated is not None and writer == "answer":
            bad = evidence_of(state).ungrounded(generated)
            verdict = check_analysis(generated, focus.metadata) if focus is not None else None
            class_problems = [p for p in (verdict.problems if verdict else ()) if p.startswith("states ") and "'" in p]
            if bad or class_problems:
                notes.append("the model's answer was set aside (" + "; ".join(
                    [*(f"number {b} is in no retrieved record" for b in bad), *class_problems])
                    + "); the answer is composed from the records")
            else:
                out["answer_text"] = generated
                notes.append("the model's answer passed the grounding gate")
        out["notes"] = notes
        return out

    # -- compose -------------------------------------------------------------------------------
    def compose_step(state: dict) -> Iterator[AddableDict]:
        comp = compose_answer(state, store)
        evidence = evidence_of(state)
        evidence.allow(*comp.counts)
        first_last = _archive_years(store)
        evidence.allow(*first_last)
        evidence.identifiers.update(facts.get()[0].parcel_ids)
        sentences: list[str] = []
        warnings = list(state["warnings"]) + comp.warnings
        if state.get("answer_text"):
            comp.sentences = [state["answer_text"]]
        for sentence in comp.sentences:
            bad = evidence.ungrounded(sentence)
            if bad:  # a composer bug must not put an unsupported number in front of a user
                warnings.append(f"a sentence was withheld: {', '.join(bad)} not found in the retrieved records")
                continue
            piece = sentence if not sentences else " " + sentence
            sentences.append(sentence)
            yield AddableDict(answer=piece)
        if not sentences:
            yield AddableDict(answer="")
        plan = state["plan"]
        plan_dict = plan.to_dict() if plan is not None else {"question": state["question"], "intent": "unknown", "notes": []}
        plan_dict["notes"] = [*plan_dict.get("notes", []), *state["notes"]]
        if state.get("analysis"):
            plan_dict["analysis_source"] = state["analysis"]["source"]
            if state["analysis"].get("problems"):
                plan_dict["rejected_analysis"] = {"text": state["analysis"]["rejected"],
                                                  "problems": state["analysis"]["problems"]}
        plan_dict["suspect_dates"] = {d: s.to_dict() for d, s in sorted(state["suspects"].items())
                                      if any(doc.metadata["date"] == d for doc in [*state["targets"], *state["history"]])}
        yield AddableDict(
            question=state["question"], plan=plan_dict, citations=unique_citations(comp.cited),
            similar=comp.similar, history=comp.history, warnings=warnings,
        )

    chain = (
        RunnableLambda(plan_step, name="plan").with_config(run_name="plan")
        | retrieve
        | RunnableLambda(generate_step, name="generate").with_config(run_name="generate")
        | RunnableLambda(ground_step, name="ground").with_config(run_name="ground")
        | RunnableLambda(compose_step, name="compose").with_config(run_name="compose")
    )
    return chain


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


def _parcels_compared(plan: QueryPlan, targets: list[Document]) -> bool:
    """A comparison of several parcels with each other (not with past seasons)."""
    return plan.intent == "compare" and not plan.compare_windows and len({d.metadata["parcel_id"] for d in targets}) > 1


def _archive_years(store: StoreView) -> list[int]:
    dates = store.dates()
    return sorted({int(d[:4]) for d in dates}) if dates else []


def compose_answer(state: dict, store: StoreView) -> C.Composition:
    """The answer for the chain's state (everything retrieved, the checked analysis)."""
    comp = C.Composition()
    plan: QueryPlan | None = state["plan"]
    lang = state["lang"]
    suspects = state["suspects"]
    if len(store) == 0:
        comp.add(say(lang, "empty_store", path=store.path))
        return comp
    parcels = StoreContext.from_store(store) if plan is None else None
    if plan is None or plan.intent == "unknown":
        dates = store.dates()
        ids = (parcels or StoreContext.from_store(store)).parcel_ids
        comp.add(say(lang, "off_topic", n=len(ids), m=len(dates), first=dates[0], last=dates[-1],
                     pid=ids[0] if ids else "?", year=dates[-1][:4]))
        comp.counts += [len(ids), len(dates)]
        return comp
    places = plan.places
    ids = store.parcels()["parcel_id"].astype(str).tolist()
    examples = ", ".join(ids[:5])
    if places.unresolved and not places.parcel_ids and not places.attributes:
        comp.add(say(lang, "unknown_parcel", names=", ".join(f"'{u}'" for u in places.unresolved), n=len(ids),
                     examples=examples))
        comp.counts.append(len(ids))
        values = StoreContext.from_store(store).attributes
        if values:
            comp.add(say(lang, "known_values", values="; ".join(
                f"{k.removeprefix('attr_')}: {', '.join(v[:12])}" for k, v in values.items() if v)))
        return comp
    if places.unresolved:
        comp.add(say(lang, "unknown_some", names=", ".join(f"'{u}'" for u in places.unresolved)))
    start, end, label = _window(plan)
    if plan.window is not None and not state["targets"] and not state["history"]:
        dates = store.dates()
        window_dates = [d for d in dates if start <= d <= end]
        if not window_dates:
            day = plan.window.start
            nearest = sorted(dates, key=lambda d: abs((dt.date.fromisoformat(d) - day).days))[:3]
            comp.add(say(lang, "no_acquisition", label=plan.window.label, start=start, end=end, first=dates[0],
                         last=dates[-1], nearest=", ".join(sorted(nearest))))
            return comp
    if not state["targets"] and not state["history"]:
        if places.attributes or places.bbox or places.point:
            known = sorted({v for vals in StoreContext.from_store(store).attributes.values() for v in vals})[:10]
            what = ", ".join(f"{k.removeprefix('attr_')} = {'/'.join(v)}" for k, v in places.attributes.items()) or (
                "that area" if lang == "en" else "cette zone")
            comp.add(say(lang, "empty_area", what=what, known=", ".join(known) or "-"))
            return comp
        if not places.parcel_ids:
            comp.add(say(lang, "no_place", n=len(ids), examples=examples))
            comp.counts.append(len(ids))
            return comp
        comp.add(say(lang, "nothing", pid=", ".join(places.parcel_ids), label=label))
        return comp

    by_parcel = C.by_parcel(state["targets"])
    column = C.column_of(plan.index)
    if plan.intent == "rank":
        C.rank(comp, lang, plan, state["targets"], suspects, label)
    elif plan.intent == "history":
        hist = C.by_parcel(state["history"])
        for pid, docs in hist.items():
            in_window = [d for d in docs if plan.window is None or d.metadata.get("window") == plan.window.label]
            C.trend(comp, lang, pid, label, in_window, suspects, column)
            comp.history += C.history_rows(docs, suspects, column)
            for w in plan.compare_windows or past_seasons(plan, store.dates()):
                past = [d for d in docs if d.metadata.get("window") == w.label]
                _peak_compare(comp, lang, column, in_window, past, suspects, w.label, pid)
    elif plan.intent in ("describe", "compare", "similar"):
        focus = state["focus"]
        listed = list(by_parcel.items())
        if _parcels_compared(plan, state["targets"]):
            # "Compare A and B": each parcel's observation of the window set against the first one's.
            chosen = [(pid, C.pick(docs, suspects)) for pid, docs in listed[:C.MAX_LISTED]]
            first = next((d for _, d in chosen if C.usable(d, suspects)), None)
            for pid, d in chosen:
                if not C.usable(d, suspects):
                    _not_usable(comp, lang, d, by_parcel[pid], suspects)
                elif d is first:
                    C.describe_record(comp, lang, d, (column,))
                elif first is not None and d.metadata.get(column) is not None and first.metadata.get(column) is not None:
                    C.compare_parcels(comp, lang, column, d, first)
        elif len(listed) > 1 and plan.intent == "describe":
            comp.add(say(lang, "multi_head", n=len(listed), which=_which(plan, lang)))
            comp.counts.append(len(listed))
            for pid, docs in listed[:C.MAX_LISTED]:
                chosen = C.pick(docs, suspects)
                if not C.usable(chosen, suspects):
                    _not_usable(comp, lang, chosen, docs, suspects)
                    continue
                comp.add(say(lang, "record_short", pid=pid, date=chosen.metadata["date"],
                             values=C.values_text(chosen, ("ndvi_mean", "ndmi_mean", "savi_mean"))) + ";")
                comp.cite(chosen, ("ndvi_mean", "ndmi_mean", "savi_mean"))
            comp.end_list()
            if len(listed) > C.MAX_LISTED:
                comp.add(say(lang, "and_more", n=len(listed) - C.MAX_LISTED))
                comp.counts.append(len(listed) - C.MAX_LISTED)
        else:
            pid = focus.metadata["parcel_id"]
            docs = by_parcel[pid]
            if not C.usable(focus, suspects):
                own = [d for d in state["history"] if d.metadata["parcel_id"] == pid] or docs
                _not_usable(comp, lang, focus, own, suspects)
            else:
                if plan.window is not None and len(docs) > 1:
                    comp.add(say(lang, "window_pick", n=len(docs), label=plan.window.label,
                                 dates=", ".join(d.metadata["date"] for d in docs), date=focus.metadata["date"]))
                    comp.counts.append(len(docs))
                columns = DESCRIBE_COLUMNS if plan.intent == "describe" else (column,)
                C.describe_record(comp, lang, focus, columns)
                if plan.intent == "compare":
                    past_docs = [d for d in state["history"] if d.metadata["parcel_id"] == pid
                                 and d.metadata.get("window") != (plan.window.label if plan.window else plan.reference_date.isoformat())]
                    _compare_windows(comp, lang, plan, column, focus, past_docs, suspects)
                    comp.history += C.history_rows([d for d in state["history"] if d.metadata["parcel_id"] == pid],
                                                   suspects, column)
                if plan.intent == "similar":
                    C.similar_items(comp, lang, focus, state["similar"])
                analysis = state.get("analysis")
                if analysis and plan.intent != "similar":
                    key = "analysis_generated" if analysis["source"] == "generated" else "analysis_stored"
                    comp.add(say(lang, key, text=analysis["text"]))
    if plan.date_rule and plan.window is not None:
        comp.add(say(lang, "date_rule", rule=plan.date_rule))
    return comp


def _which(plan: QueryPlan, lang: str) -> str:
    if plan.places.attributes:
        return ", ".join("/".join(v) for v in plan.places.attributes.values())
    return "all parcels" if lang == "en" else "toutes les parcelles"


def _not_usable(comp: C.Composition, lang: str, doc: Document, parcel_docs, suspects) -> None:
    suspect = suspects.get(doc.metadata["date"])
    if doc.metadata["valid"] and suspect is not None:
        C.report_suspect(comp, lang, doc, suspect, parcel_docs)
        near = C.nearest_usable(parcel_docs, dt.date.fromisoformat(doc.metadata["date"]), suspects)
        if near:
            comp.add(say(lang, "nearest_usable", pid=doc.metadata["parcel_id"],
                         dates=", ".join(f"{d.metadata['date']} (NDVI {d.metadata['ndvi_mean']:.2f})" for d in near)))
            for d in near:
                comp.cite(d, ("ndvi_mean",))
    else:
        C.report_unusable(comp, lang, doc, parcel_docs, suspects)


def _compare_windows(comp: C.Composition, lang: str, plan: QueryPlan, column: str, focus: Document,
                     past_docs: list[Document], suspects) -> None:
    focus_day = dt.date.fromisoformat(focus.metadata["date"])
    windows = plan.compare_windows
    if not windows:  # "compare" without a second window: the first and last usable of the window
        good = [d for d in past_docs if C.usable(d, suspects) and d.metadata["date"] < focus.metadata["date"]
                and d.metadata.get(column) is not None]
        if good:
            C.compare_pair(comp, lang, column, focus, good[0])
        return
    for w in windows:
        cands = [d for d in past_docs if d.metadata.get("window") == w.label and C.usable(d, suspects)
                 and d.metadata.get(column) is not None]
        if not cands:
            comp.add(say(lang, "compare_none", pid=focus.metadata["parcel_id"], label=w.label))
            continue
        best = min(cands, key=lambda d: (C._doy_distance(dt.date.fromisoformat(d.metadata["date"]), focus_day),
                                         d.metadata["date"]))
        C.compare_pair(comp, lang, column, focus, best)


def _peak_compare(comp: C.Composition, lang: str, column: str, now: list[Document], past: list[Document],
                  suspects, label: str, pid: str) -> None:
    a = [d for d in now if C.usable(d, suspects) and d.metadata.get(column) is not None]
    b = [d for d in past if C.usable(d, suspects) and d.metadata.get(column) is not None]
    if not a or not b:
        comp.add(say(lang, "compare_none", pid=pid, label=label))
        return
    top_a = max(a, key=lambda d: d.metadata[column])
    top_b = max(b, key=lambda d: d.metadata[column])
    C.compare_pair(comp, lang, column, top_a, top_b)
