"""Reading an answer the way a person would, and scoring it against one question's facts.

What the checker accepts (strict on facts, tolerant on format):

* numbers: ``0.72`` or ``0,72``, signed ``+0.05`` / ``−0.05``; an index value matches an expected
  one within `VALUE_TOL` (0.02: the two decimals an answer rounds to plus the pixels a product may
  treat differently at a parcel's edge; the bank's own values equal the store's to 1e-7 on every
  clear observation of the Flanders sample), a difference within `DELTA_TOL` (0.03: two rounded values);
* dates: ISO ``2019-05-16``, ``16/05/2019``, ``16 May 2019``, ``May 16, 2019``, ``16 mai 2019``,
  ``le 1er mai``, and ranges ``between 5 and 20 July 2019`` / ``5–20 July`` / ``du 5 au 20 juillet``
  (each end is a date); a date without a year takes the next year written after it, else the year
  of the question;
* months: ``June 2019`` / ``juin 2019`` (for answers that compare month means);
* parcels: ``Flanders31UES-009``, ``parcel 9``, ``field 009``, ``parcelle n° 9``, ``#9``, lists after
  a parcel word (``parcels 3, 7 and 12``, ``parcelles 3 et 7``) and bare zero-padded ``009``.

What it looks for (each question carries only the checks its facts call for; it is right when all
of them pass; `Expect` lists them):

* the facts: the parcels, dates, values and counts; aggregates and window means stated with their
  word ("mean NDVI 0.58", "NDVI moyen de 0,58"), not merely present in a list of values; a cause
  ("harvested", "under snow", "clouded") affirmed, not negated ("with no harvest" is not one), and
  in the first sentence where the question asks why or how many;
* that it answers this question and not another: no parcel outside the question (parcels set aside
  in a caveat sentence, "no usable observation for 017", do not count), no citation outside the
  asked window, rankings of exactly the parcels asked, unusable dates named with their reason and
  clear dates never called unusable, no index value in an answer about what the archive holds;
* declines: nothing cited, no number, and a refusal ("cannot", "ne peux pas"); a question that is
  not understood may instead get a clarifying answer or the list of what can be asked.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass, field

VALUE_TOL = 0.02
DELTA_TOL = 0.03

MONTHS = {
    "january": 1, "february": 2, "march": 3, "april": 4, "may": 5, "june": 6, "july": 7, "august": 8,
    "september": 9, "october": 10, "november": 11, "december": 12,
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "jun": 6, "jul": 7, "aug": 8, "sep": 9, "sept": 9, "oct": 10,
    "nov": 11, "dec": 12,
    "janvier": 1, "fevrier": 2, "mars": 3, "avril": 4, "mai": 5, "juin": 6, "juillet": 7, "aout": 8,
    "septembre": 9, "octobre": 10, "novembre": 11, "decembre": 12, "janv": 1, "fevr": 2, "juil": 7,
}
_MONTH_RE = "|".join(sorted(MONTHS, key=len, reverse=True))
_DAY = r"(\d{1,2})(?:st|nd|rd|th|er|e)?"
_JOIN = r"\s*(?:and|et|to|au|-|–|—|/|&|,)\s*(?:the\s+|le\s+)?"


def fold(text: str) -> str:
    """Lower case without accents (``Août`` -> ``aout``), so French and English read alike."""
    text = unicodedata.normalize("NFKD", text)
    return "".join(c for c in text if not unicodedata.combining(c)).lower()


def _valid(y: int, m: int, d: int) -> str | None:
    try:
        return dt.date(y, m, d).isoformat()
    except ValueError:
        return None


def find_dates(text: str, default_year: int | None = None) -> set[str]:
    """Every calendar date the text names, as ISO strings (see the module docstring)."""
    low = fold(text)
    out: set[str] = set()
    for y, m, d in re.findall(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)", low):
        if (iso := _valid(int(y), int(m), int(d))):
            out.add(iso)
    for d, m, y in re.findall(r"(?<![\d.])(\d{1,2})/(\d{1,2})/(\d{4})(?!\d)", low):
        if (iso := _valid(int(y), int(m), int(d))):
            out.add(iso)
    years = [(mt.start(), int(mt.group(1))) for mt in re.finditer(r"(?<![\d.,-])(20\d\d)(?![\d-])", low)]

    def year_after(pos: int) -> int | None:
        later = [y for p, y in years if p >= pos]
        return later[0] if later else default_year

    # "5 and 20 July 2019", "5 July", "du 5 au 20 juillet", "1er mai 2019"
    for mt in re.finditer(rf"(?<![\d.,])(?:{_DAY}{_JOIN})?{_DAY}\s+(?:de\s+)?({_MONTH_RE})\b\.?(?:,?\s*(\d{{4}}))?", low):
        first, second, month, year = mt.group(1), mt.group(2), MONTHS[mt.group(3)], mt.group(4)
        y = int(year) if year else year_after(mt.end())
        if y is None:
            continue
        for day in (first, second):
            if day and (iso := _valid(y, month, int(day))):
                out.add(iso)
    # "July 5 and 20, 2019", "May 16, 2019", "May 16"
    for mt in re.finditer(rf"\b({_MONTH_RE})\.?\s+{_DAY}(?:{_JOIN}{_DAY})?(?![\d.,]\d)(?:,?\s*(\d{{4}}))?", low):
        month, first, second, year = MONTHS[mt.group(1)], mt.group(2), mt.group(3), mt.group(4)
        if len(first) == 4:  # "May 2019" is a month, not a day
            continue
        y = int(year) if year else year_after(mt.end())
        if y is None:
            continue
        for day in (first, second):
            if day and len(day) <= 2 and (iso := _valid(y, month, int(day))):
                out.add(iso)
    return out


def find_months(text: str) -> set[str]:
    """Every month the text names with its year ('June 2019', 'juin 2019', '2019-06'), as 'YYYY-MM'."""
    low = fold(text)
    out = {f"{y}-{m}" for y, m in re.findall(r"(?<!\d)(\d{4})-(\d{2})(?![\d-])", low)}
    for month, year in re.findall(rf"\b({_MONTH_RE})\.?\s+(?:de\s+|d')?(\d{{4}})\b", low):
        out.add(f"{year}-{MONTHS[month]:02d}")
    out |= {d[:7] for d in find_dates(text)}
    return out


_NUMBER = re.compile(r"(?<![\w.,])([+\-−]?\d+[.,]\d+)(?![.,]?\d)")


def find_numbers(text: str) -> list[float]:
    """Every decimal number in the text (``0.72``, ``0,72``, ``-0.05``, ``−0.05``), dates removed."""
    clean = re.sub(r"\d{4}-\d{2}-\d{2}", " ", text)
    clean = re.sub(r"\d{1,2}/\d{1,2}/\d{4}", " ", clean)
    return [float(x.replace(",", ".").replace("−", "-")) for x in _NUMBER.findall(clean)]


def find_integers(text: str) -> set[int]:
    """Whole numbers written in the text (digits, dates and decimals removed; small number words)."""
    clean = re.sub(r"\d{4}-\d{2}-\d{2}|\d{1,2}/\d{1,2}/\d{4}|\d+[.,]\d+", " ", text)
    out = {int(x) for x in re.findall(r"(?<![\w-])(\d{1,4})(?![\w-])", clean)}
    words = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
             "ten": 10, "un": 1, "une": 1, "deux": 2, "trois": 3, "quatre": 4, "cinq": 5, "sept": 7, "huit": 8,
             "neuf": 9, "dix": 10}
    out |= {words[w] for w in re.findall(r"\b([a-z]+)\b", fold(clean)) if w in words}
    return out


_PARCEL_WORD = r"(?:parcels?|parcelles?|fields?|champs?|plots?)"


def find_parcels(text: str, known: set[str], prefix: str = "Flanders31UES-") -> set[str]:
    """The parcels of `known` the text names (see the module docstring for the forms read)."""
    by_number = {int(p.rsplit("-", 1)[-1]): p for p in known if p.rsplit("-", 1)[-1].isdigit()}
    found = {p for p in known if p in text}
    clean = re.sub(re.escape(prefix) + r"\d+", " ", text)
    clean = re.sub(r"\d{4}-\d{2}-\d{2}|\d{1,2}/\d{1,2}/\d{4}|[+\-−]?\d+[.,]\d+|\d+\s*%", " ", clean)
    numbers: list[str] = re.findall(r"(?<![\w.,])(0\d\d)(?![\w.,]?\d)", clean)
    numbers += re.findall(r"#\s*(\d{1,3})\b", clean)
    for mt in re.finditer(rf"\b{_PARCEL_WORD}\s*(?:n°|no\.?|nr\.?|number|numéro)?\s*"
                          r"(\d{1,3}(?:\s*(?:,|and|et|&|/|or|ou)\s*(?:parcel\s+|parcelle\s+)?\d{1,3})*)\b",
                          clean, flags=re.IGNORECASE):
        numbers += re.findall(r"\d{1,3}", mt.group(1))
    found |= {by_number[int(n)] for n in numbers if int(n) in by_number}
    return found


#: A sentence that sets parcels aside ("No usable observation on 2019-07-25 for: 017, 018") names
#: them as a caveat, not as part of the answer: rankings and scope checks leave it out.
CAVEAT = (r"(no usable|not usable|unusable|aucune observation|inexploitable|not observed|non observ|too small|"
          r"trop petit|excluded|exclue?s?\b|left out|set aside|not ranked|non class|sliver|unreliable|peu fiable|"
          r"fewer than \d+ pixels|moins de \d+ pixels)")


def answer_parcels(text: str, known: set[str]) -> set[str]:
    """The parcels the answer names outside its caveat sentences (see `CAVEAT`)."""
    return {p for s in sentences(text) if not re.search(CAVEAT, fold(s)) for p in find_parcels(s, known)}


def sentences(text: str) -> list[str]:
    """The text split into sentences (a period followed by a space or a line break ends one)."""
    return [s for s in re.split(r"(?<=[.!?])\s+(?=[A-ZÀ-Ý0-9«\"(])|\n+", text.strip()) if s.strip()]


# -- the facts a question expects ------------------------------------------------------------------
@dataclass
class Expect:
    """What a right answer to one question contains; unset fields are not checked."""

    parcels: set[str] = field(default_factory=set)  # each must be named in the answer
    parcels_allowed: set[str] | None = None  # named parcels must be among these (None: any)
    parcel_sets: list[set[str]] | None = None  # the named parcels must equal one of these sets
    first_sentence_parcels: tuple[set[str], set[str]] | None = None  # the first sentence names all of the
    # first set and nothing outside the second
    max_parcels: int | None = None  # at most this many parcels named
    values: list[list[float]] = field(default_factory=list)  # each inner list: one of these values appears
    value_sets: list[list[float]] | None = None  # all values of at least one of these sets appear
    deltas: list[float] | None = None  # a signed difference matching one of these appears (or both values do)
    direction: int | None = None  # +1 / -1: the answer says it rose / fell; never 'stable' for a large change
    dates: set[str] = field(default_factory=set)  # each named
    date_windows: list[tuple[str, str]] = field(default_factory=list)  # at least one named date in each
    date_any: list[set[str]] = field(default_factory=list)  # at least one date of each set named
    event_words: str | None = None  # dates for `date_windows` count only in a clause that says this (a
    # harvest, an emergence), so a list of every date does not pass
    any_words: str | None = None  # the same for `date_any` (a peak)
    date_words: str | None = None  # each date of `dates` is named in a sentence that says this (a cause, a cloud)
    clear_dates: set[str] = field(default_factory=set)  # never named in a sentence saying `date_words` only
    values_with: list[tuple[str, list[float]]] = field(default_factory=list)  # (words, values): one of the
    # values is stated in a clause that says the words ("mean NDVI 0.58", "NDVI moyen de 0,58")
    months: set[str] = field(default_factory=set)  # each month 'YYYY-MM' named (or a date in it)
    integers: list[set[int]] = field(default_factory=list)  # one of each set written
    words: list[str] = field(default_factory=list)  # regexes (on folded text), each must match
    forbidden_words: list[str] = field(default_factory=list)  # regexes that must not match
    cite: set[tuple[str, str]] = field(default_factory=set)  # (parcel, date) records among the citations
    cite_scope: tuple[set[str], str, str] | None = None  # every citation is one of these parcels within [start, end]
    similar_allowed: set[str] | None = None  # the similar items' parcels are among these
    similar_window: tuple[str, str] | None = None  # similar items found, all dated within [start, end]
    some_of: set[str] | None = None  # at least one of these is named or among the similar items
    lead: bool = False  # the counts and words must be in the first sentence (it answers the question)
    no_values: bool = False  # no decimal number: an index value answers another question
    decline: str | None = None  # "refuse": no citation, no decimal number, a refusal; "clarify": the same, or
    # a clarifying question / a statement of what can be asked instead of a refusal
    default_year: int | None = None


DIRECTION_WORDS = {
    1: r"\b(higher|rose|risen|rise|increase|increased|up|above|greener|more|gain|hausse|superieur|plus eleve|"
       r"augment|progress|better|mieux)",
    -1: r"\b(lower|fell|fall|fallen|drop|dropped|decrease|decreased|decline|declined|down|below|less|loss|baisse|"
        r"inferieur|plus bas|plus faible|diminu|recul|chute|worse|moins)",
}
STABLE_WORDS = r"\b(stable|unchanged|inchange|similar|same level|meme niveau|no (real|significant) change)"
REFUSAL_WORDS = (r"(can ?not|can't|unable|not able|no (data|information|record)|do(n't| not) (have|hold|know|contain)|"
                 r"outside|beyond|only (answer|hold|know|cover|describe)|not (available|something|covered|in the)|"
                 r"ne (peux|peut|sais|dispose|contient|couvre)|n'ai pas|n'a pas|pas (de donnees|d'information)|"
                 r"impossible|hors de|seulement|uniquement)")
CLARIFY_WORDS = (r"(rephrase|reformul|clarif|preciser|did you mean|vouliez-vous|not understand|pas compris|which parcel|"
                 r"quelle parcelle|i (can )?answer questions|je (peux )?repon|ask (me )?about|you can ask|"
                 r"vous pouvez (me )?demander|for example|par exemple)")


NEGATION = r"\b(no|not|without|never|neither|nor|none|sans|pas|aucune?|ni|jamais)\b"
CLEAR_WORDS = r"(?<!not )(?<!no )\b(clear|usable|degagee?s?|exploitables?|visible|observed|observee?s?)\b"


def affirmed(pattern: str, text: str) -> bool:
    """True when `pattern` matches the folded text somewhere not negated by one of the three words
    before it in the same clause ("with no harvest" is not a harvest; "were clouded" is a cloud)."""
    low = fold(text)
    for mt in re.finditer(pattern, low):
        clause = re.split(r"[,;:.()]", low[: mt.start()])[-1]
        if not re.search(NEGATION, " ".join(clause.split()[-3:])):
            return True
    return False


def clauses(text: str) -> list[str]:
    """The text cut at sentence ends, semicolons, colons and commas followed by a space (not '0,72')."""
    return [c for s in sentences(text) for c in re.split(r"[;:]\s|,\s", s) if c.strip()]


def score(expect: Expect, result: dict, known: set[str]) -> dict[str, tuple[bool, str]]:
    """Each applicable check -> (passed, why it failed or '')."""
    answer = result.get("answer") or ""
    citations = result.get("citations") or []
    low = fold(answer)
    out: dict[str, tuple[bool, str]] = {}
    if not answer.strip():
        return {"answer": (False, "empty answer")}
    named = find_parcels(answer, known)
    answered = answer_parcels(answer, known)  # named, caveats left out
    numbers = find_numbers(answer)
    dates = find_dates(answer, expect.default_year)
    # dates the answer gives as its answer: not those of a caveat ("Not usable: 2019-07-10 (cloud)")
    told = {d for sent in sentences(answer) if not re.search(CAVEAT, fold(sent))
            for d in find_dates(sent, expect.default_year)}
    if expect.decline:
        worded = re.search(REFUSAL_WORDS, low) is not None or (
            expect.decline == "clarify" and re.search(CLARIFY_WORDS, low) is not None)
        ok = not citations and not numbers and worded
        out[expect.decline] = (ok, "" if ok else f"citations={len(citations)}, numbers={numbers[:4]}, "
                               f"{'refusal' if expect.decline == 'refuse' else 'refusal or clarifying'} wording="
                               f"{'yes' if worded else 'no'}")
    if expect.parcels:
        missing = expect.parcels - named
        out["parcels"] = (not missing, f"not named: {sorted(missing)}" if missing else "")
    if expect.parcels_allowed is not None:
        extra = answered - expect.parcels_allowed
        out["no other parcel"] = (not extra, f"also named: {sorted(extra)}" if extra else "")
    if expect.parcel_sets is not None:
        ok = any(answered == s for s in expect.parcel_sets)
        out["parcel set"] = (ok, "" if ok else f"named {sorted(answered)}, expected one of "
                             f"{[sorted(s) for s in expect.parcel_sets]}")
    if expect.first_sentence_parcels is not None:
        first = answer_parcels(sentences(answer)[0], known)
        must, may = expect.first_sentence_parcels
        ok = must <= first <= may
        out["first sentence"] = (ok, "" if ok else f"first sentence names {sorted(first)}, expected "
                                 f"{sorted(must)}" + (f" (may add {sorted(may - must)})" if may - must else ""))
    if expect.max_parcels is not None:
        ok = len(answered) <= expect.max_parcels
        out["not a parcel list"] = (ok, "" if ok else f"names {len(answered)} parcels")
    for i, options in enumerate(expect.values):
        ok = any(abs(x - v) <= VALUE_TOL for x in numbers for v in options)
        out[f"value {i + 1}"] = (ok, "" if ok else f"expected {' or '.join(f'{v:.3f}' for v in options)}; "
                                 f"answer has {numbers[:12]}")
    if expect.value_sets is not None:
        ok = any(all(any(abs(x - v) <= VALUE_TOL for x in numbers) for v in vs) for vs in expect.value_sets)
        out["values"] = (ok, "" if ok else "expected all of one of "
                         f"{[[round(v, 3) for v in vs] for vs in expect.value_sets]}; "
                         f"answer has {numbers[:12]}")
    if expect.deltas is not None:
        ok = any(abs(x - d) <= DELTA_TOL for x in numbers for d in expect.deltas)
        out["difference"] = (ok, "" if ok else "expected a difference of "
                             f"{' or '.join(f'{d:+.3f}' for d in expect.deltas)}; "
                             f"answer has {numbers[:12]}")
    if expect.direction is not None:
        said = re.search(DIRECTION_WORDS[expect.direction], low) is not None
        signed = any(abs(x) >= 0.05 and (x > 0) == (expect.direction > 0) for x in numbers
                     if re.search(r"[+\-−]\d", answer))
        stable = re.search(STABLE_WORDS, low) is not None
        ok = (said or signed) and not stable
        out["direction"] = (ok, "" if ok else f"expected a {'rise' if expect.direction > 0 else 'fall'}"
                            f"{' (answer says stable/similar)' if stable else ''}")
    if expect.dates:
        missing = expect.dates - dates
        out["dates"] = (not missing, f"not named: {sorted(missing)}; named {sorted(dates)[:10]}" if missing else "")
    def told_with(words: str | None) -> set[str]:
        if words is None:
            return told
        return {d for c in clauses(answer) if not re.search(CAVEAT, fold(c)) and affirmed(words, c)
                for d in find_dates(c, expect.default_year)}

    for start, end in expect.date_windows:
        ok = any(start <= d <= end for d in told_with(expect.event_words))
        out[f"date in {start}..{end}"] = (ok, "" if ok else f"no date between {start} and {end}; named {sorted(dates)[:10]}")
    for i, options in enumerate(expect.date_any):
        ok = bool(told_with(expect.any_words) & options)
        out[f"one of dates {i + 1}"] = (ok, "" if ok else f"none of {sorted(options)} named; named {sorted(dates)[:10]}")
    if expect.months:
        months = find_months(answer)
        missing = expect.months - months
        out["months"] = (not missing, f"not named: {sorted(missing)}" if missing else "")
    lead = sentences(answer)[0] if expect.lead else answer
    for i, options in enumerate(expect.integers):
        ok = bool(find_integers(lead) & options)
        out[f"count {i + 1}"] = (ok, "" if ok else f"expected {' or '.join(map(str, sorted(options)))}"
                                 + (" in the first sentence" if expect.lead else ""))
    for pattern in expect.words:
        ok = affirmed(pattern, lead)
        out[f"says /{pattern[:30]}/"] = (ok, "" if ok else f"no /{pattern}/ in the "
                                         + ("first sentence" if expect.lead else "answer"))
    if expect.no_values:
        out["no index value"] = (not numbers, f"states {numbers[:6]}" if numbers else "")
    for pattern in expect.forbidden_words:
        hit = re.search(pattern, low)
        out[f"never /{pattern[:30]}/"] = (hit is None, f"says '{hit.group(0)}'" if hit else "")
    if expect.cite:
        cited = {(c.get("parcel_id"), c.get("date")) for c in citations}
        missing = expect.cite - cited
        out["cites"] = (not missing, f"not cited: {sorted(missing)}" if missing else "")
    if expect.cite_scope is not None:
        ps, start, end = expect.cite_scope
        stray = sorted({(c.get("parcel_id"), c.get("date")) for c in citations
                        if c.get("parcel_id") not in ps or not start <= str(c.get("date")) <= end})
        out["citations in scope"] = (not stray, f"cites outside the question: {stray[:4]}" if stray else "")
    if expect.date_words is not None:
        said = {d for sent in sentences(answer) if affirmed(expect.date_words, sent)
                for d in find_dates(sent, expect.default_year)}
        missing = expect.dates - said
        out["dates with their reason"] = (not missing, f"not named with /{expect.date_words[:40]}/: {sorted(missing)}"
                                          if missing else "")
        wrong = sorted({d for sent in sentences(answer) if affirmed(expect.date_words, sent)
                        and not re.search(CLEAR_WORDS, fold(sent))
                        for d in find_dates(sent, expect.default_year)} & expect.clear_dates)
        out["clear dates not called unusable"] = (not wrong, f"calls clear dates unusable: {wrong}" if wrong else "")
    for i, (words, options) in enumerate(expect.values_with):
        ok = any(re.search(words, fold(c)) and any(abs(x - v) <= VALUE_TOL for x in find_numbers(c) for v in options)
                 for c in clauses(answer))
        out[f"stated value {i + 1}"] = (ok, "" if ok else f"no clause with /{words}/ and "
                                        f"{' or '.join(f'{v:.3f}' for v in options)}")
    if expect.similar_allowed is not None:
        items = {s.get("parcel_id") for s in (result.get("similar") or [])}
        ok = bool(items | (named - expect.parcels)) and (items | named) <= expect.similar_allowed | expect.parcels
        out["similar scope"] = (ok, "" if ok else f"similar parcels {sorted(items | named)}, allowed "
                                f"{sorted(expect.similar_allowed)}")
    if expect.similar_window is not None:
        start, end = expect.similar_window
        dated = [str(s.get("date")) for s in (result.get("similar") or [])]
        ok = bool(dated) and all(start <= d <= end for d in dated)
        out["similar in the window"] = (ok, "" if ok else f"similar items dated {sorted(set(dated))[:6]}, "
                                        f"window {start}..{end}")
    if expect.some_of is not None:
        items = {s.get("parcel_id") for s in (result.get("similar") or [])} | named
        ok = bool(items & expect.some_of)
        out["a near neighbour"] = (ok, "" if ok else f"none of {sorted(expect.some_of)} among {sorted(items)}")
    return out
