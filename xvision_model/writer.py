"""What users read: the generator's analysis held to the analysis grammar, then the unusable rule.

A greedy decoder can repeat a sentence forever or never reach an aspect (measured on L1C imagery
the model never saw: "The canopy is free of surface water (NDWI -0.57)." five times, no moisture,
no cover). So the decoded text is not shown as it is: it is read back sentence by sentence against
the grammar the analyses are written in (the phrase banks of `indexer.analysis`) and rebuilt:

- a sentence is kept only when it is one of the grammar's sentences in the asked language (an
  opening, one aspect's class phrase, the unusable statement or its follow-up, a closing remark);
  anything else (a garbled or cut-off sentence) is dropped;
- each aspect is stated at most once (the model's first statement wins), every other kind once,
  so no sentence can appear twice;
- numbers are written from the record, never decoded: a model trained with number slots
  (`Profile.number_slots`, the default) writes `NUMBER_SLOT` where a number goes and the slot's
  place in the grammar sentence names the value; an older model's decoded numbers (it wrote
  "SAVI 0.41" for a record with 0.38) are replaced the same way;
- vigor, moisture and cover are each stated exactly once. The class is the one the model stated
  (its first statement wins). Where it stated none in a grammar sentence (it never reached the
  aspect, or garbled the sentence), every class phrase of that aspect is scored by the model's
  likelihood after the text so far, as the model writes it (slots, never the record's number),
  up to the end of the phrase; a class's probability is the sum over its phrasings, and the
  class is the most probable one, or the one a garbled sentence named. That repair ("fill",
  `REPAIRS`) cannot make what users see worse than the decoded text on any aspect; replacing a
  stated class by the most probable one ("override") turned right cover classes into wrong ones
  in about 7 % of the records of imagery the model never saw, and is kept only to measure it;
- a text the model opened as an unusable observation stays one (its class sentences are dropped).

Then the rule: a record flagged not valid is shown the unusable text with its reason
(`write_analysis(valid=False)`, the record's own stored wording), whatever the model wrote.
`Analysis.generated` keeps the model's grammar text before that rule, so evaluation measures the
model, not the rule; `Analysis.raw` keeps the decoded text.

Batched, single and streamed writing agree: the same decoded tokens (greedy decoding is batch
invariant, `XVisionModel.generate`) go through the same sentence filter, and the class phrases
are scored after the same text in every path. Writing a batch, the filter runs as steps
(`SentenceFilter.feed_steps`) that ask for the scores they need: the requests of every record
of the batch are answered together, one forward pass per round (`_Scoring`), instead of one
pass per record and aspect (which made evaluation 2.5x slower when every aspect began to be
scored).
"""

from __future__ import annotations

import functools
import math
import re
import string
import unicodedata
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from indexer.analysis import (
    CLOSINGS, EVALUATED_ASPECTS, classify, INTROS, INVALID, INVALID_FOLLOWUPS, LANGS, NO_INDEX, NUMBER_SLOT, PHRASES,
    RULE_BY_ASPECT, SENTENCE_END, VALID_FRACTION, analysis_seed, finite_or_none, read_classes, says_unusable,
    split_sentences, write_analysis,
)
from indexer.core.errors import InputError
from xvision_model.prompts import PROMPTS


class WritingModel(Protocol):
    """What the writer needs of a generator: `XVisionModel` (torch) or
    `xvision_model.serving.OnnxXVisionModel` (the ONNX export, no torch). Features are [N, D]
    arrays or tensors."""

    tokenizer: Any
    eos_token_id: int | None
    pad_token_id: int

    def generate(self, visual_features: Any, prompt_ids: Sequence[Sequence[int]], max_new_tokens: int = ...,
                 streamer: Any = ...) -> list[list[int]]: ...

    def continuation_logprobs(self, visual_features: Any, heads: Sequence[Sequence[int]],
                              tails: Sequence[Sequence[int]], owner: Sequence[int]) -> list[float]: ...


DEFAULT_MAX_NEW_TOKENS = 256
# A number as written, or the slot a model trained with `Profile.number_slots` writes instead.
_NUMBER = r"(?:-?\d+(?:\.\d+)?|" + re.escape(NUMBER_SLOT) + ")"
# The same, standing alone in a sentence as written (not the "2" of "Sentinel-2", the "10" of "10th").
_NUMBER_IN_TEXT = re.compile(r"(?<![\w-])-?\d+(?:\.\d+)?(?!\w)|" + re.escape(NUMBER_SLOT))


# -- the grammar ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Form:
    """One sentence form of the grammar: its kind, what it states, and its template."""

    kind: str  # "intro" | "aspect" | "closing" | "unusable" | "followup" | "no_index"
    template: str  # with *key phrase* stars and {fields}
    aspect: str | None = None
    label: str | None = None  # the aspect's class; for a closing, the vigor class it belongs to
    pattern: re.Pattern[str] = field(default=None, compare=False, repr=False)  # type: ignore[assignment]


def _norm(text: str) -> str:
    text = unicodedata.normalize("NFKD", text.replace("\u2019", "'"))
    return re.sub(r"\s+", " ", "".join(c for c in text if not unicodedata.combining(c)).lower()).strip()


def _pattern(template: str) -> re.Pattern[str]:
    parts = []
    for literal, name, _, _ in string.Formatter().parse(template.replace("*", "")):
        text = re.sub(r"\s+", " ", _norm(f"<{literal}>")[1:-1])  # keep the literal's edge spaces
        parts.append(re.escape(text).replace(r"\ ", r"\s+"))
        if name == "frac":
            parts.append(r"(?P<frac>\s*\([^)]*\))?")
        elif name:
            parts.append(_NUMBER)
    return re.compile("".join(parts))


def _forms(lang: str) -> list[Form]:
    forms = [Form("intro", t) for t in INTROS[lang]]
    forms += [Form("aspect", t, aspect, label) for aspect, labels in PHRASES[lang].items()
              for label, templates in labels.items() for t in templates]
    forms += [Form("closing", t, "vigor", label) for label, ts in CLOSINGS[lang].items() for t in ts]
    forms += [Form("unusable", t, label=reason) for reason, ts in INVALID[lang].items() for t in ts]
    forms += [Form("followup", t) for t in INVALID_FOLLOWUPS[lang]]
    forms.append(Form("no_index", NO_INDEX[lang]))
    return [Form(f.kind, f.template, f.aspect, f.label, _pattern(f.template)) for f in forms]


GRAMMAR: dict[str, list[Form]] = {lang: _forms(lang) for lang in LANGS}


def parse_sentence(sentence: str, lang: str) -> tuple[Form, bool] | None:
    """The grammar form `sentence` is written in (and whether it quoted a valid-pixel share), or None."""
    text = _norm(sentence)
    for form in GRAMMAR[lang]:
        if found := form.pattern.fullmatch(text):
            return form, bool(found.groupdict().get("frac"))
    return None


def _values(form: Form, record: Mapping[str, object], slots: bool = False) -> dict[str, str] | None:
    """The template's fields from the record (None when the record lacks one); `slots`: each
    written `NUMBER_SLOT`, as a slot-trained model writes them."""
    out = {}
    for _, name, _, _ in string.Formatter().parse(form.template):
        if not name or name == "frac":
            continue
        stat = {"v": RULE_BY_ASPECT[form.aspect].stat if form.aspect else None, "p10": "ndvi_p10",
                "p90": "ndvi_p90", "pct": "valid_fraction"}[name]
        value = finite_or_none(record.get(stat)) if stat else None
        if value is None:
            return None
        out[name] = NUMBER_SLOT if slots else f"{100 * value:.0f}" if name == "pct" else f"{value:.2f}"
    return out


def render(form: Form, record: Mapping[str, object], lang: str, with_fraction: bool = False,
           slots: bool = False) -> str | None:
    """`form` written with the record's values (None when the record lacks one of them); `slots`:
    with `NUMBER_SLOT` in their place."""
    values = _values(form, record, slots)
    if values is None:
        return None
    if "{frac}" in form.template:
        pct = finite_or_none(record.get("valid_fraction"))
        shown = NUMBER_SLOT if slots else f"{100 * pct:.0f}" if pct is not None else ""
        values["frac"] = VALID_FRACTION[lang].format(pct=shown) if with_fraction and pct is not None else ""
    return form.template.replace("*", "").format(**values)


def fill_slots(text: str, record: Mapping[str, object], lang: str) -> str:
    """`text` with each `NUMBER_SLOT` a model wrote replaced by the record's value, sentence by
    sentence: the slot's place in the grammar sentence says which value. A slot in a sentence
    outside the grammar, or for a value the record lacks, stays as written; numbers the model
    decoded are never changed (they are what `failures` checks)."""
    if NUMBER_SLOT not in text or lang not in GRAMMAR:
        return text
    return " ".join(_fill(s, record, lang) if NUMBER_SLOT in s else s for s in split_sentences(text))


def _fill(sentence: str, record: Mapping[str, object], lang: str) -> str:
    parsed = parse_sentence(sentence, lang)
    rendered = render(parsed[0], record, lang, parsed[1]) if parsed is not None else None
    if rendered is None:
        return sentence
    values = [m.group() for m in _NUMBER_IN_TEXT.finditer(rendered)]
    written = list(_NUMBER_IN_TEXT.finditer(sentence))
    if len(values) != len(written):
        return sentence
    out, at = [], 0
    for found, value in zip(written, values):
        out += [sentence[at:found.start()], value if found.group() == NUMBER_SLOT else found.group()]
        at = found.end()
    return "".join(out) + sentence[at:]


def required_aspects(record: Mapping[str, object]) -> tuple[str, ...]:
    """The evaluated aspects the record has a value for: each must be stated exactly once."""
    known = classify(record)
    return tuple(a for a in EVALUATED_ASPECTS if a in known)


#: (text so far, candidate continuations) -> each candidate's log-likelihood after the text.
Scorer = Callable[[str, list[str]], list[float]]

#: When the model's likelihood decides an aspect's class (`SentenceFilter`): "fill" only where the
#: model stated none in a grammar sentence (it keeps a class it named in a garbled sentence, and
#: its phrasing is the most probable of that class); "override" also replaces a stated class that
#: is not the most probable one (summed over its phrasings). "fill" is the default: what users see
#: can then never be worse than the decoded text on any aspect, and "override" was measured to
#: change right classes into wrong ones (docs/experiments.md).
REPAIRS: tuple[str, ...] = ("fill", "override")
DEFAULT_REPAIR = "fill"


@functools.cache
def _heads(aspect: str, lang: str) -> tuple[Form, ...]:
    """The aspect's forms that state the class before any number (the ones a class can be scored
    on). Cached: every record asks for them once per aspect."""
    return tuple(f for f in GRAMMAR[lang] if f.kind == "aspect" and f.aspect == aspect
                 and (f.template.find("{") < 0 or f.template.rfind("*") < f.template.find("{")))


def _head_text(form: Form) -> str:
    """The form's words up to the end of its class phrase: "Moisture content is low"."""
    return form.template[:form.template.rfind("*")].replace("*", "")


@functools.cache
def _head_texts(aspect: str, lang: str) -> tuple[str, ...]:
    return tuple(_head_text(f) for f in _heads(aspect, lang))


#: A scoring request: (text so far, candidate continuations); answered with their log-likelihoods.
Request = tuple[str, tuple[str, ...]]
#: A step of the grammar filter that may need the model: yields requests, returns its result.
Steps = Generator[Request, list[float], Any]


def decide_class(scorer: Scorer, prefix: str, aspect: str, lang: str) -> tuple[dict[str, float], Form]:
    """The model's probability of each class of `aspect` after `prefix` (log, summed over the
    class's phrasings; unnormalized) and the most probable phrasing of the most probable class."""
    return _decided(aspect, lang, scorer(prefix, list(_head_texts(aspect, lang))))


def _decide_steps(prefix: str, aspect: str, lang: str, label: str | None = None) -> Steps:
    """`decide_class` as a step: the scores are asked for (yielded) instead of computed. With
    `label`, the form returned is the most probable phrasing of that class."""
    scores = yield (prefix, _head_texts(aspect, lang))
    return _decided(aspect, lang, scores, label)


def _drive(steps: Steps, scorer: Scorer) -> Any:
    """Run `steps` to its end, answering each of its requests with `scorer`."""
    try:
        request = next(steps)
        while True:
            request = steps.send(scorer(request[0], list(request[1])))
    except StopIteration as done:
        return done.value


def _decided(aspect: str, lang: str, scores: Sequence[float], label: str | None = None) -> tuple[dict[str, float], Form]:
    forms = _heads(aspect, lang)
    by_class: dict[str, list[float]] = {}
    for form, score in zip(forms, scores):
        by_class.setdefault(form.label, []).append(score)
    total = {label: _logsumexp(values) for label, values in by_class.items()}
    best = label if label in total else max(total, key=total.__getitem__)  # the grammar's first class on a tie
    form, _ = max(((f, score) for f, score in zip(forms, scores) if f.label == best), key=lambda pair: pair[1])
    return total, form


def _logsumexp(values: Sequence[float]) -> float:
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


class SentenceFilter:
    """Reads a decoded analysis sentence by sentence and keeps what the grammar allows.

    `usable=True` keeps only a description of the parcel (unusable statements are dropped), for
    the text a valid record is shown; None lets the model's first statement decide.

    `scorer` (the model's likelihood of continuations) decides each evaluated aspect's class
    (`decide_class`); without one the model's decoded class stands and nothing is filled in.

    `feed` returns the sentence to show now (re-written with the record's numbers) or None;
    `finish` returns the sentences that close the text: the aspects never stated and a closing
    remark consistent with the vigor stated.
    """

    def __init__(self, record: Mapping[str, object], lang: str, *, usable: bool | None = None,
                 scorer: Scorer | None = None, repair: str = DEFAULT_REPAIR, slots: bool = True) -> None:
        if lang not in GRAMMAR:
            raise InputError(f"language must be one of {', '.join(GRAMMAR)}, got {lang!r}", field="lang", value=lang)
        if repair not in REPAIRS:
            raise InputError(f"repair must be one of {', '.join(REPAIRS)}, got {repair!r}", field="repair", value=repair)
        self.record, self.lang, self.scorer, self.repair, self.slots = record, lang, scorer, repair, slots
        self.kept: list[str] = []
        # The kept sentences as the model writes them (number slots for a slot-trained model): the
        # text the class phrases are scored after.
        self.written: list[str] = []
        self.stated: dict[str, str] = {}  # aspect -> class
        self.named: dict[str, str] = {}  # aspect -> class a sentence outside the grammar named
        self.kinds: set[str] = set()
        # Whether the text describes the parcel or declares the observation unusable: decided by
        # the model's first statement unless `usable` is given (the shown text of a valid record).
        self.unusable: bool | None = None if usable is None else not usable
        self.closing: Form | None = None

    def feed(self, sentence: str) -> str | None:
        return _drive(self.feed_steps(sentence), self.scorer)

    def finish(self) -> list[str]:
        return _drive(self.finish_steps(), self.scorer)

    def feed_steps(self, sentence: str) -> Steps:
        """`feed` as a step: the class scores it needs are yielded as requests (`write_analyses`
        answers the requests of many records with one batch)."""
        parsed = parse_sentence(sentence, self.lang)
        if parsed is None:
            if self.unusable is not True:  # a garbled sentence still names the class the model chose
                for aspect, label in read_classes(sentence).items():
                    self.named.setdefault(aspect, label)
            return None
        form, with_fraction = parsed
        if form.kind in ("aspect", "unusable", "no_index") and self.unusable is None:
            self.unusable = form.kind == "unusable"
        allowed = {
            "intro": not self.kept,
            "aspect": self.unusable is False and form.aspect not in self.stated,
            "closing": self.unusable is False and self.closing is None,
            "unusable": self.unusable is True and "unusable" not in self.kinds,
            "followup": self.unusable is True and "followup" not in self.kinds and "unusable" in self.kinds,
            "no_index": self.unusable is False and "no_index" not in self.kinds,
        }[form.kind]
        if not allowed:
            return None
        if form.kind == "closing":  # held back: it closes the text, after any fill-in
            self.closing = form
            return None
        if (form.kind == "aspect" and self.repair == "override" and self.scorer is not None
                and form.aspect in required_aspects(self.record)):
            total, best = yield from _decide_steps(self.prefix, form.aspect, self.lang)
            if total.get(form.label, -math.inf) < total[best.label]:
                form, with_fraction = best, False
        return self._keep(form, with_fraction)

    def _keep(self, form: Form, with_fraction: bool = False) -> str | None:
        text = render(form, self.record, self.lang, with_fraction)
        if text is None:
            return None
        self.kinds.add(form.kind)
        if form.kind == "aspect":
            self.stated[form.aspect] = form.label
        self.kept.append(text)
        self.written.append(render(form, self.record, self.lang, with_fraction, slots=True) if self.slots else text)
        return text

    @property
    def prefix(self) -> str:
        """The text so far as the model would have written it (what class phrases are scored after)."""
        return " ".join(self.written)

    def finish_steps(self) -> Steps:
        """`finish` as a step (see `feed_steps`)."""
        if self.unusable:
            return []
        out = []
        for aspect in required_aspects(self.record):
            if aspect in self.stated or self.scorer is None:
                continue
            # Only where the model stated no class: the class it named outside the grammar, else
            # its most probable one; the phrasing is the model's most probable of that class.
            _, form = yield from _decide_steps(self.prefix, aspect, self.lang, self.named.get(aspect))
            if (text := self._keep(form)) is not None:
                out.append(text)
        if self.closing is not None and self.stated.get("vigor") == self.closing.label:
            if (text := self._keep(self.closing)) is not None:
                out.append(text)
        return out

    @property
    def text(self) -> str:
        return " ".join(self.kept)


def grammar_text(raw: str, record: Mapping[str, object], lang: str, scorer: Scorer | None = None,
                 repair: str = DEFAULT_REPAIR, slots: bool = True) -> str:
    """`raw` held to the grammar (see the module docstring); `scorer` None: the decoded classes
    stand and nothing is filled in."""
    keep = SentenceFilter(record, lang, scorer=scorer, repair=repair, slots=slots)
    for sentence in split_sentences(raw):
        keep.feed(sentence)
    keep.finish()
    return keep.text


def unusable_text(record: Mapping[str, object], lang: str) -> str:
    """The unusable-observation text with its reason, as the indexer writes it for the record."""
    reason = str(record.get("invalid_reason") or "") or None
    return write_analysis(record, valid=False, reason=reason, lang=lang,
                          seed=analysis_seed(str(record.get("parcel_id")), str(record.get("date"))))


# -- failures a reader would see ----------------------------------------------------------------------
def failures(text: str, record: Mapping[str, object], lang: str = "en") -> dict[str, bool]:
    """Which failures `text` (in `lang`) shows for `record`: a sentence stated twice, an evaluated
    aspect not stated (valid records), an unusable record described as usable, a number that is
    not the record's value at the precision written (or a number in a sentence outside the
    grammar, which cannot be checked)."""
    sentences = [_norm(s) for s in split_sentences(text)]
    valid = bool(record.get("valid", True))
    stated = read_classes(text)
    return {
        "repeated_sentence": len(sentences) != len(set(sentences)),
        "missing_aspect": valid and any(a not in stated for a in required_aspects(record)),
        "unusable_as_usable": not valid and (not says_unusable(text) or bool(set(EVALUATED_ASPECTS) & set(stated))),
        "wrong_number": any(not _numbers_are_the_records(s, record, lang) for s in split_sentences(text)),
    }


def _numbers_are_the_records(sentence: str, record: Mapping[str, object], lang: str) -> bool:
    parsed = parse_sentence(sentence, lang) if lang in GRAMMAR else None
    if parsed is None:
        return re.search(r"\d", sentence) is None
    rendered = render(parsed[0], record, lang, parsed[1])
    return rendered is not None and _norm(rendered) == _norm(sentence)


# -- writing with a model ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Analysis:
    """One record's analysis: `text` what users see, `generated` the model's grammar text (before
    the unusable rule), `raw` the decoded text (its number slots filled from the record,
    `fill_slots`)."""

    text: str
    generated: str
    raw: str


class _Scoring:
    """Scores continuations by the model's log-likelihood (summed over their tokens) after
    [visual | prompt | text], for the requests of many records together.

    What repeats is computed once: every record asks for the same phrasings (their token ids are
    cached, `ids`), and a request's candidates share its text so far, so each request's
    ``[visual | prompt | text]`` runs through the model once, its key/value cache is shared by its
    candidates, and only their few tokens run after it. `max_rows` bounds one pass's candidates.
    """

    def __init__(self, model: WritingModel, prompt_ids: list[int], max_rows: int = 256) -> None:
        self.model, self.prompt_ids, self.max_rows = model, prompt_ids, max_rows
        self._ids: dict[str, list[int]] = {}

    def ids(self, text: str) -> list[int]:
        if text not in self._ids:
            self._ids[text] = self.model.tokenizer(text, add_special_tokens=False)["input_ids"]
        return self._ids[text]

    def score(self, features: Any, requests: Sequence[Request]) -> list[list[float]]:
        """Each request's candidates' scores; request i is asked about the record of `features[i]`."""
        out: list[list[float]] = []
        start = 0
        while start < len(requests):  # as many requests as fit in max_rows candidates (at least one)
            stop, rows = start, 0
            while stop < len(requests) and (stop == start or rows + len(requests[stop][1]) <= self.max_rows):
                rows += len(requests[stop][1])
                stop += 1
            out += self._score(features[start:stop], requests[start:stop])
            start = stop
        return out

    def _score(self, features: Any, requests: Sequence[Request]) -> list[list[float]]:
        # The texts so far: [visual | prompt + text]; each candidate continues its request's row.
        heads = [self.prompt_ids + (self.ids(prefix) if prefix else []) for prefix, _ in requests]
        owner = [i for i, (_, candidates) in enumerate(requests) for _ in candidates]
        tails = [self.ids((" " if prefix else "") + c) for prefix, candidates in requests for c in candidates]
        flat = self.model.continuation_logprobs(features, heads, tails, owner)
        out, at = [], 0
        for _, candidates in requests:
            out.append(flat[at:at + len(candidates)])
            at += len(candidates)
        return out


def _scorer(scoring: _Scoring, features: Any) -> Scorer:
    """One record's scorer (`features` [1, D]): the shown and the model's text ask the same
    requests, so each is computed once."""
    scored: dict[Request, list[float]] = {}

    def score(prefix: str, candidates: list[str]) -> list[float]:
        key = (prefix, tuple(candidates))
        if key not in scored:
            scored[key] = scoring.score(features, [key])[0]
        return scored[key]

    return score


def _asked(prefix: str, candidates: list[str]) -> list[float]:
    """The scorer of filters driven step by step: their requests are answered by the driver."""
    raise RuntimeError("this filter's scores are asked for through its steps (feed_steps, finish_steps)")


class _SentenceStreamer:
    """Feeds each complete decoded sentence to the `SentenceFilter`s, passing what the first keeps on
    (a token streamer as `generate` calls it: ``put`` with the prompt first, then each token; ``end``)."""

    def __init__(self, model: WritingModel, filters: Sequence[SentenceFilter],
                 on_text: Callable[[str], None] | None) -> None:
        self.model, self.filters, self.on_text = model, filters, on_text
        self.ids: list[int] = []
        self.done = 0  # sentences fed
        self.first = True  # the first put() is the prompt (empty with inputs_embeds)
        self.stopped = False

    def _feed(self, sentences: list[str]) -> None:
        for sentence in sentences[self.done:]:
            for k, keep in enumerate(self.filters):
                if (text := keep.feed(sentence)) is not None and k == 0 and self.on_text is not None:
                    self.on_text(text)
        self.done = len(sentences)

    def put(self, value: Any) -> None:
        if self.first:
            self.first = False
            return
        for token in value.flatten().tolist():
            if self.stopped or token == self.model.eos_token_id:
                self.stopped = True
                return
            self.ids.append(token)
        # Every piece but the last is a complete sentence (the next one has begun after its ".").
        self._feed([p for p in SENTENCE_END.split(self.text.lstrip())[:-1] if p])

    def end(self) -> None:
        self._feed(split_sentences(self.text))

    @property
    def text(self) -> str:
        return self.model.tokenizer.decode(self.ids, skip_special_tokens=True)


def _write_one(model: WritingModel, features: Any, prompt_ids: list[int], record: Mapping[str, object],
               lang: str, on_text: Callable[[str], None], max_new_tokens: int, repair: str, slots: bool) -> Analysis:
    """One record, decoded now and streamed to `on_text` sentence by sentence."""
    valid = bool(record.get("valid", True))
    score = _scorer(_Scoring(model, prompt_ids), features)
    model_text = SentenceFilter(record, lang, scorer=score, repair=repair, slots=slots)
    filters = [SentenceFilter(record, lang, usable=True, scorer=score, repair=repair, slots=slots),
               model_text] if valid else [model_text]
    emit = on_text if valid else None
    if not valid:
        on_text(unusable_text(record, lang))
    streamer = _SentenceStreamer(model, filters, emit)
    model.generate(features, [prompt_ids], max_new_tokens=max_new_tokens, streamer=streamer)
    for k, keep in enumerate(filters):
        for text in keep.finish():
            if k == 0 and emit is not None:
                emit(text)
    shown = filters[0].text if valid else unusable_text(record, lang)
    return Analysis(shown, model_text.text, fill_slots(streamer.text, record, lang))


def _write_steps(raw: str, record: Mapping[str, object], lang: str, scored: bool = True,
                 repair: str = DEFAULT_REPAIR, slots: bool = True) -> Steps:
    """One record's analyses from its decoded text `raw`, as steps: the class scores it needs are
    yielded as requests (each distinct request once: the shown and the model's text mostly ask
    the same); returns the `Analysis`. `scored=False`: the decoded classes stand, nothing asked."""
    valid = bool(record.get("valid", True))
    scorer = _asked if scored else None
    model_text = SentenceFilter(record, lang, scorer=scorer, repair=repair, slots=slots)
    filters = [SentenceFilter(record, lang, usable=True, scorer=scorer, repair=repair, slots=slots),
               model_text] if valid else [model_text]
    answered: dict[Request, list[float]] = {}

    def once(steps: Steps) -> Steps:
        try:
            request = next(steps)
            while True:
                if request not in answered:
                    answered[request] = yield request
                request = steps.send(answered[request])
        except StopIteration as done:
            return done.value

    for sentence in split_sentences(raw):
        for keep in filters:
            yield from once(keep.feed_steps(sentence))
    for keep in filters:
        yield from once(keep.finish_steps())
    shown = filters[0].text if valid else unusable_text(record, lang)
    return Analysis(shown, model_text.text, fill_slots(raw, record, lang))


#: How `write_analyses` scores the class phrases: all records of a batch together (one forward
#: pass per round of requests), one record at a time (the reference the batch must equal), or not
#: at all (the decoded classes stand: the writer before class scoring, for speed comparisons).
SCORING = ("batched", "per_record", "none")


def _score_together(scoring: _Scoring, features: Any, tasks: list[Steps]) -> list[Analysis]:
    """Run every record's steps side by side: each round answers the pending request of every
    record that has one with one batched `scoring.score`, until all have returned."""
    results: list[Analysis | None] = [None] * len(tasks)
    pending: dict[int, Request] = {}

    def advance(i: int, answer: list[float] | None) -> None:
        try:
            pending[i] = next(tasks[i]) if answer is None else tasks[i].send(answer)
        except StopIteration as done:
            results[i] = done.value
            pending.pop(i, None)

    for i in range(len(tasks)):
        advance(i, None)
    while pending:
        order = sorted(pending)
        answers = scoring.score(features[order], [pending[i] for i in order])
        for i, answer in zip(order, answers):
            advance(i, answer)
    return results  # type: ignore[return-value]


def write_analyses(model: WritingModel, features: Any, records: Sequence[Mapping[str, object]],
                   lang: str = "en", *, prompt: str | None = None, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
                   batch_size: int = 32, on_text: Callable[[str], None] | None = None,
                   scoring: str = "batched", repair: str = DEFAULT_REPAIR) -> list[Analysis]:
    """The analyses of `records` (store rows: statistics, `valid`, `invalid_reason`, `parcel_id`,
    `date`) from their embeddings `features` [N, D], greedy, in `lang` ("en" or "fr").

    `on_text` (one record only) receives the shown text as it is written, sentence by sentence;
    the pieces joined with spaces are `Analysis.text`. `scoring` (see `SCORING`): "batched" and
    "per_record" write the same texts; "none" skips the class scoring (not what users are shown).
    `repair` (see `REPAIRS`): when the model's likelihood decides a class. Whether the model
    writes number slots is `model.number_slots` (set from its card by `load_model`; True when unset).
    """
    if len(features) != len(records):
        raise InputError(f"{len(features)} embeddings for {len(records)} records", field="features", value=len(features))
    if on_text is not None and len(records) != 1:
        raise InputError("streaming writes one record at a time", field="records", value=len(records))
    if model.tokenizer is None:
        raise InputError("the model has no tokenizer; it cannot write text", field="model")
    if scoring not in SCORING:
        raise InputError(f"scoring must be one of {', '.join(SCORING)}, got {scoring!r}", field="scoring", value=scoring)
    if repair not in REPAIRS:
        raise InputError(f"repair must be one of {', '.join(REPAIRS)}, got {repair!r}", field="repair", value=repair)
    slots = bool(getattr(model, "number_slots", True))
    prompt_ids = model.tokenizer(prompt or PROMPTS[lang], add_special_tokens=False)["input_ids"]
    if on_text is not None:
        return [_write_one(model, features[:1], prompt_ids, records[0], lang, on_text, max_new_tokens, repair, slots)]
    scorer = _Scoring(model, prompt_ids)
    out: list[Analysis] = []
    for start in range(0, len(records), batch_size):
        chunk = features[start:start + batch_size]
        rows = model.generate(chunk, [prompt_ids] * len(chunk), max_new_tokens=max_new_tokens)
        raws = model.tokenizer.batch_decode(rows, skip_special_tokens=True)
        tasks = [_write_steps(raw, records[start + i], lang, scored=scoring != "none", repair=repair, slots=slots)
                 for i, raw in enumerate(raws)]
        if scoring == "per_record":
            out += [_drive(task, _scorer(scorer, chunk[i:i + 1])) for i, task in enumerate(tasks)]
        else:
            out += _score_together(scorer, chunk, tasks)
    return out
