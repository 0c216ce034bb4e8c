"""`parse`: a question in English or French -> `QueryPlan`.

The question is folded once (`text.fold`), then read in an order that keeps each number for the
part it belongs to: the threshold ("NDVI below 0.3"), then places (bounding box, radius,
coordinates, parcel ids, attribute values), then dates, then the rest (class words, k, intent
words). Each part blanks what it understood. Nothing here raises on text: what is not understood
ends up in `Places.unresolved`, `notes`, or `intent="unknown"`.
"""

from __future__ import annotations

import datetime as dt
import re

from assistant.plan import Places, QueryPlan, StoreContext
from assistant.parsing.dates import RULES, read_dates
from assistant.answers.registry import CHANGE, GROUPS, KINDS, PEERS
from assistant.parsing.intent import DEFAULT_K, INTENT_WORDS, read_ask, read_condition, value_range
from assistant.parsing.places import CROP_LEXICON, read_places
from assistant.parsing.spelling import correct, unused_words
from assistant.parsing.text import blank, detect_lang, fold

MAX_CHARS = 2000
#: Words that say the question is about fields at all (a question without any of them, and
#: without a place, date or index, is about something else).
_DOMAIN = re.compile(r"\b(?:parcels?|fields?|plots?|crops?|farm\w*|parcelles?|champs?|cultures?|exploitation|"
                     r"vegetation|vegetal\w*|ndvi|ndwi|ndmi|savi|evi|ndre|sentinel|satellite|images?|acquisitions?|"
                     r"observations?|indices?|index|harvest\w*|recolte|moisson|semis|sowing|sown|agricult\w*|agronom\w*)\b")


def _hemisphere(ctx: StoreContext, places: Places) -> str:
    """'south' when what the question is about lies south of the equator: its parcels, else the
    parcels matching its attributes, else its point, else all parcels; 'north' when unknown."""
    ids = list(places.parcel_ids)
    if not ids and places.attributes:
        ids = [p for p, attrs in ctx.parcel_attributes.items()
               if all(attrs.get(col) in values for col, values in places.attributes.items())]
    located = [p for p in ids if p in ctx.points]
    if located:
        lat = ctx.latitude(located)
    elif places.point is not None:
        lat = places.point[1]
    else:
        lat = ctx.latitude()
    return "south" if lat is not None and lat < 0 else "north"


def parse(question: str, context: StoreContext | None = None, today: dt.date | None = None,
          lang: str | None = None) -> QueryPlan:
    """Turn `question` into a `QueryPlan` against what `context` holds.

    `today` is the reference date of relative expressions (default: the newest acquisition in the
    context, else the system date); `lang` ("en"/"fr") overrides the detected language. Never
    raises on a string; an internal failure is reported as an "unknown" plan whose notes say so.
    """
    ctx = context if context is not None else StoreContext()
    text = question if isinstance(question, str) else str(question)
    if today is not None:
        ref, source = (today.date() if isinstance(today, dt.datetime) else today), "source_today"
    elif ctx.newest_date is not None:
        ref, source = ctx.newest_date, "source_store"
    else:
        ref, source = dt.date.today(), "source_clock"
    try:
        return _parse(text, ctx, ref, source, lang)
    except Exception as exc:  # a parser bug must not become a traceback for the user
        chosen = lang if lang in ("en", "fr") else "en"
        return QueryPlan(question=text, lang=chosen, intent="unknown", places=Places(), window=None,
                         compare_windows=(), index=None, condition=None, class_condition=None, k=DEFAULT_K,
                         reference_date=ref,
                         date_rule=RULES[chosen]["reference"].format(ref=ref.isoformat(), source=RULES[chosen][source]),
                         notes=(f"internal parser error: {type(exc).__name__}: {exc}",))


def _parse(question: str, ctx: StoreContext, ref: dt.date, source: str, lang: str | None) -> QueryPlan:
    notes: list[str] = []
    text = question
    if len(text) > MAX_CHARS:
        text = text[:MAX_CHARS]
        notes.append(f"only the first {MAX_CHARS} characters were read")
    folded, readings = correct(fold(text), _crop_words(ctx), _UNDERSTOOD)
    for pattern, same in _SYNONYMS:
        folded = pattern.sub(same, folded)
    for said, meant in readings:
        notes.append(f"reading {said!r} as {meant}")
    detected = detect_lang(folded)
    if lang in ("en", "fr"):
        chosen = lang
    else:
        chosen = detected
        if lang is not None:
            notes.append(f"unknown language {lang!r}: detected {detected}")

    condition, work = read_condition(folded)
    if condition is None and (m := value_range(work)):
        notes.append(f"a range of index values is not a supported filter: {m.group()!r}; "
                     "ask for one bound (below / above)")
        work = blank(work, m.start("rng"), m.end("rng"))
    place = read_places(work, ctx, original=text)
    places = Places(parcel_ids=tuple(place.parcel_ids),
                    attributes={k: tuple(v) for k, v in place.attributes.items()},
                    point=place.point, radius_m=place.radius_m, bbox=place.bbox,
                    all_parcels=place.all_parcels, unresolved=tuple(place.unresolved), nearest=place.nearest)
    notes.extend(place.notes)
    hemi = _hemisphere(ctx, places)
    # "Compare A with B on <date>": the date is when both are compared, not a second window.
    compare_verb = bool(re.search(r"\bcompar\w*\b", place.text)) and len(place.parcel_ids) < 2
    dates = read_dates(place.text, ref, hemi, chosen, source,
                       oldest=min(ctx.dates) if ctx.dates else None, compare_verb=compare_verb, original=text,
                       parcels_compared=len(place.parcel_ids) >= 2 or bool(place.parcel_ids and PEERS.search(place.text))
                       or _groups_compared(place.attributes, text))
    notes.extend(dates.notes)
    ask = read_ask(dates.text, text, condition, words=work)
    notes.extend(ask.notes or [])

    n_ids = len(places.parcel_ids)
    filtered = ask.condition is not None or ask.class_condition is not None
    signal = (not places.empty or dates.window is not None or ask.index is not None or filtered
              or _DOMAIN.search(folded) is not None)
    if not signal:
        intent = "unknown"
    elif ask.similar:
        intent = "similar"
    elif ask.rank or (filtered and n_ids != 1 and not ask.yes_no and not (ask.compare and n_ids >= 2)):
        intent = "rank"
    elif dates.compare_windows or (ask.compare and (n_ids >= 2 or dates.window is not None)):
        intent = "compare"
    # One day holds no trend: "how did parcel 5 look at Easter 2019" asks about that day.
    elif (ask.history and not _one_day(dates.window)) or (dates.ranged and n_ids <= 1):
        intent = "history"
    elif not places.empty or dates.window is not None or ask.index is not None or ask.describe or filtered:
        intent = "describe"
    else:
        intent = "unknown"
    if intent == "unknown" and signal:
        notes.append("no parcel, date, index or question word understood")
    elif intent == "unknown":
        notes.append("this does not look like a question about the parcels")

    if intent in ("describe", "history", "compare", "rank") and places.empty:
        places = Places(all_parcels=True)
        notes.append("no place named: all parcels")
    if intent == "similar" and not places.parcel_ids:
        notes.append("similar parcels: no reference parcel named")
    if intent == "rank":
        k = ask.k or max(len(ctx.parcel_ids), 1)
    else:
        k = ask.k or DEFAULT_K
    if chosen != detected and lang in ("en", "fr"):
        notes.append(f"language set to {chosen} (detected {detected})")

    date_rule = "; ".join(dates.rules) if dates.rules else RULES[chosen]["reference"].format(
        ref=ref.isoformat(), source=RULES[chosen][source])
    return QueryPlan(
        question=question, lang=chosen, intent=intent, places=places, window=dates.window,
        compare_windows=dates.compare_windows, index=ask.index, condition=ask.condition,
        class_condition=ask.class_condition, k=k, reference_date=ref, date_rule=date_rule,
        notes=tuple(dict.fromkeys(notes)), order=ask.order if intent == "rank" else None,
        unresolved=tuple(unused_words(ask.text, _UNDERSTOOD)), corrections=tuple(readings),
    )


#: Words asking for another season ("than last year"): two crops compared then are not compared with each other.
_SEASONS_ASKED = re.compile(r"\b(?:last\s+year|previous\s+(?:years?|seasons?)|past\s+seasons?|earlier\s+years?|years?\s+ago|"
                            r"l'an\s+(?:dernier|passe)|l'annee\s+(?:derniere|passee)|annees?\s+precedentes?|"
                            r"saisons?\s+precedentes?)\b")


def _one_day(window) -> bool:
    return window is not None and window.start == window.end


def _groups_compared(attributes, text: str) -> bool:
    """Two groups compared with each other ("are the maize fields drier than the wheat fields in
    July 2019?"): two attribute values named, and no second season asked (a past-season word, or
    two different years), so that a date after "than" is when both are compared."""
    named = sum(len(v) for v in attributes.values())
    folded = fold(text)
    return named >= 2 and not _SEASONS_ASKED.search(folded) and len(set(re.findall(r"\b(?:19|20)\d\d\b", folded))) <= 1


#: "the other fields", "its peers": a comparison with other parcels, not with another window.


#: Phrasings read as the date parser's own words (folded): "than a year before" = "than last year".
_SYNONYMS = (
    (re.compile(r"\b(?:a|one|the)\s+year\s+(?:before|earlier|ago|prior)\b|\bthe\s+(?:previous|prior)\s+year\b|"
                r"\bprevious\s+year\b"), "last year"),
    (re.compile(r"\bl'annee\s+(?:precedente|d'avant)\b|\bun\s+an\s+(?:avant|plus\s+tot)\b"), "l'an dernier"),
    (re.compile(r"\b(?:at\s+the\s+)?(?:start|beginning)\s+of\s+(?=(?:january|february|march|april|may|june|july|august|"
                r"september|october|november|december)\b)"), "early "),
    (re.compile(r"\b(?:at\s+the\s+)?end\s+of\s+(?=(?:january|february|march|april|may|june|july|august|"
                r"september|october|november|december)\b)"), "late "),
)


def _crop_words(ctx: StoreContext) -> set[str]:
    """Words of the store's text attribute values and of the crop lexicon (targets of `correct`)."""
    words = {w for key, value in CROP_LEXICON.items() for w in re.findall(r"[a-z]+", f"{key} {value}")}
    for values in ctx.attributes.values():
        for v in values:
            words.update(re.findall(r"[a-z]+", fold(str(v))))
    return words


#: Everything some part of the parser or a kind of answer understands (for `QueryPlan.unresolved`).
_UNDERSTOOD = (_DOMAIN, GROUPS, CHANGE, *INTENT_WORDS, *(k.triggers for k in KINDS if k.triggers is not None))
