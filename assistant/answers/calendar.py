"""Trends and the crop calendar: emergence or green-up, peak, senescence, harvest (bare soil).

Retrieval: each parcel's whole series (an event needs the observations around it, even when the
window asked cuts through it); a group's parcels, at most `MAX_PARCELS`.
Composition: the events come from the library's rule (`indexer.phenology.crop_calendar`) on the
usable observations: a peak is dated, the other events lie between two observations and are said
as that window ("harvested between 2019-07-05 and 2019-07-20: NDVI fell from 0.78 to 0.24"). An event
asked for ("when was it harvested") is answered first; a trend is the series' events in order, then
its highest and lowest usable values and how many acquisitions were not usable and why.
"""

from __future__ import annotations

import re
from collections import Counter

from assistant.answers import checks
from assistant.answers import common as K
from assistant.answers.observe import parcels_asked
from assistant.answers.turn import AnswerContext, Found, Turn
from assistant.compose import Composition
from indexer.phenology import CUT, is_mown

MAX_PARCELS = 19
#: "Is it growing?", "what changed since last week?", "est-ce que ça pousse ?": the latest change.
_PROGRESS = re.compile(r"\b(?:growing|grows?|improv\w*|declin\w*|getting\s+(?:better|worse|greener)|recover\w*|"
                       r"what\s+(?:has\s+)?changed|changed?\s+since|pousse\w*|croiss\w*|ameliore\w*|degrade\w*|"
                       r"qu'est-ce\s+qui\s+a\s+change|a\s+change)\b")
#: "How many times was it mown?", "combien de fois": the number of events, said first.
_COUNT = re.compile(r"\b(?:how\s+many\s+times|how\s+often|how\s+many\s+(?:cuts|harvests|peaks)|combien\s+de\s+(?:fois|fauches|recoltes))\b")
#: "How many parcels were harvested in July?": the group's count said first.
_COUNT_PARCELS = re.compile(r"\b(?:how\s+many\s+(?:\w+\s+){0,2}(?:parcels|fields|plots)|combien\s+de\s+(?:\w+\s+){0,2}"
                            r"(?:parcelles|champs))\b")
#: "Which parcel was mown most often?": the parcels ranked by how many events they had.
_OFTEN = re.compile(r"\b(?:most\s+(?:often|frequently)|(?:the\s+)?most\s+times|le\s+plus\s+(?:souvent|de\s+fois))\b")
#: "When was it sown?", "quand", "what date": a date asked of each parcel.
_WHEN = re.compile(r"\b(?:when|quand|what\s+date|quelle\s+date|a\s+quelle\s+date)\b")
#: "The first cut", "la première fauche": the earliest event answered first.
_FIRST = re.compile(r"\b(?:first|earliest|premiere?|1st|1re|1er)\b")
#: Words asking for one kind of event (folded), in the library's event names.
ASKED = (
    # Cuts first: "mown", "cut", "grazed" ask for a grass cut (and, of another crop, its harvest).
    ("cut", re.compile(r"\b(?:fauch\w*|mow\w*|mown|cut|cuts|cutting|coupee?s?|graz\w*|patur\w*|silage|ensil\w*)\b")),
    # Ploughing leaves the same bare soil a harvest does: the drop is the event to date.
    ("harvest", re.compile(r"\b(?:harvest\w*|recolt\w*|moisson\w*|bare\s+soil|sol\s+nu|stubble|chaumes?|plough\w*|plow\w*|"
                           r"tilled|tillage|laboure\w*)\b")),
    # Sowing is not seen; it lies between the bare field and the crop's emergence (`_sowing`).
    ("sowing", re.compile(r"\b(?:sowing|sown|sowed|sow|planted|planting|drilled|semis|semee?s?|seme|plante(?:e|es|s)?)\b")),
    ("green-up", re.compile(r"\b(?:green[- ]?up|emergence|emerg\w*|levee|reprise)\b")),
    ("peak", re.compile(r"\b(?:peak\w*|pic|maximum|max)\b")),
    ("senescence", re.compile(r"\b(?:senescen\w*|ripening|maturation|jaunissement|dry(?:ing)?\s+down)\b")),
)

TEXTS = {
    "en": {
        "sowing": ("Parcel {pid} ({crop}) was sown between {since} and {b}: the imagery sees the crop emerge "
                   "between {a} and {b} (NDVI {va} to {vb}), not the sowing itself, which comes before it."),
        "sowing_before": ("Parcel {pid} ({crop}) was sown before {b}: the imagery sees the crop emerge between "
                          "{a} and {b} (NDVI {va} to {vb}), not the sowing itself, which comes before it."),
        "sowing_bare": "The field was bare from {what} between {a} and {b} (NDVI {va} to {vb}).",
        "harvest_what": "the previous harvest or ploughing",
        "cleared_what": "its winter cover removed for sowing",
        "sowing_none": "No emergence of a crop on parcel {pid} is visible in {label}, so its sowing cannot be dated.",
        "sowing_grass": ("Parcel {pid} is {crop}: grassland is not sown every season, and the imagery shows no "
                         "sowing, only its regrowth."),
        "sowing_regrowth": "Its latest regrowth: between {a} and {b} (NDVI {va} to {vb}).",
        "harvest": "harvested", "harvest_grass": "cut (mowing or grazing)", "green-up": "greening up",
        "cleared": "cleared for sowing (a winter cover or the previous vegetation removed)",
        "emergence": "emerging", "senescence": "senescing", "peak": "at its peak",
        "event": "Parcel {pid} was {what} between {a} and {b}: {index} {verb} from {va} to {vb}.",
        "peak_event": "Parcel {pid}'s {index} peaked at {v} on {date}{censored}.",
        "highest": "Parcel {pid}'s {index} peaked at {v} on {date}, the highest of its {n} usable observations in {label}.",
        "censored": " (the first or last usable observation: the true peak may lie outside the archive)",
        "rose": "rose", "fell": "fell",
        "none": "No {what} of parcel {pid} is visible in {label} ({n} usable observations){nearest}.",
        "none_near": "; the nearest is between {a} and {b}",
        "trend_head": "Parcel {pid}, {index} over {label}: averaged {mean} over {n} usable observations of {total}; {events}.",
        "trend_flat": "Parcel {pid}, {index} over {label}: averaged {mean} over {n} usable observations of {total}, no crop-calendar event.",
        "item_peak": "peak {v} on {date}",
        "item_window": "{what} between {a} and {b} ({va} to {vb})",
        "extremes": "Highest {hi} on {dhi}, lowest {lo} on {dlo}.",
        "unusable": "Not usable: {items}.",
        "reason_n": "{n} {reason}",
        "group": "{what} in {label}: {items}.",
        "group_none": "No parcel of the {n} was {what} in {label}.",
        "group_count": "{k} of the {n} parcels: {what} in {label}.",
        "group_often": "{what} in {label}, most often first: {items}.", "often_item": "{pid} ({times})",
        "group_item": "{pid} (between {a} and {b})",
        "group_peak": "{pid} ({v} on {date})",
        "not_seen": "Not seen {what}: {pids}.",
        "the_archive": "the whole archive", "earlier": "Earlier: ", "later": "Later: ",
        "recent": ("Parcel {pid}'s {index} went from {va} on {a} to {vb} on {b}, its latest usable observation "
                   "({delta} in {days} days): {verdict}."),
        "recent_higher": "growing", "recent_lower": "declining", "recent_stable": "stable",
        "stable_within": "{verdict} (within the {noise} a repeated clear observation varies by)",
        "recent_one": "Parcel {pid} has only one usable observation up to {b} ({index} {vb}): no change to measure.",
        "count_events": "Parcel {pid}: {noun} seen {times} in {label}.", "once": "once", "times": "{n} times",
        "since": "Since then, its {index} went from {va} on {a} to {vb} on {b}, its latest usable observation ({delta}): {verdict}.",
        "recent_group": ("Each parcel's latest {index} change (its latest usable observation against the one before; "
                         "stable within {noise}): {parts}."),
        "recent_part": "{verdict}: {items}", "recent_item": "{pid} {delta} ({a} to {b})",
        "recent_none": "no two usable observations for {pids}",
        "few": "Parcel {pid} has {n} usable observations in {label}: too few for a trend.",
        "few_one": "Parcel {pid} has 1 usable observation in {label}: too few for a trend.",
    },
    "fr": {
        "sowing": ("La parcelle {pid} ({crop}) a été semée entre le {since} et le {b} : l'imagerie voit la culture "
                   "lever entre le {a} et le {b} (NDVI {va} à {vb}), pas le semis lui-même, qui la précède."),
        "sowing_before": ("La parcelle {pid} ({crop}) a été semée avant le {b} : l'imagerie voit la culture lever "
                          "entre le {a} et le {b} (NDVI {va} à {vb}), pas le semis lui-même, qui la précède."),
        "sowing_bare": "Le champ était nu depuis {what} entre le {a} et le {b} (NDVI {va} à {vb}).",
        "harvest_what": "la récolte ou le labour précédents",
        "cleared_what": "la destruction de son couvert d'hiver pour le semis",
        "sowing_none": ("Aucune levée de culture n'est visible sur la parcelle {pid} en {label} : son semis ne peut "
                        "pas être daté."),
        "sowing_grass": ("La parcelle {pid} est en {crop} : une prairie n'est pas semée chaque saison, et l'imagerie "
                         "ne montre pas de semis, seulement sa repousse."),
        "sowing_regrowth": "Sa dernière repousse : entre le {a} et le {b} (NDVI {va} à {vb}).",
        "harvest": "récoltée", "harvest_grass": "fauchée ou pâturée", "green-up": "en reprise de végétation",
        "cleared": "préparée pour le semis (couvert d'hiver ou végétation précédente détruits)",
        "emergence": "en levée", "senescence": "en sénescence", "peak": "à son pic",
        "event": "La parcelle {pid} a été {what} entre le {a} et le {b} : le {index} est {verb} de {va} à {vb}.",
        "peak_event": "Le {index} de la parcelle {pid} a culminé à {v} le {date}{censored}.",
        "highest": "Le {index} de la parcelle {pid} a culminé à {v} le {date}, le plus haut de ses {n} observations exploitables en {label}.",
        "censored": " (première ou dernière observation exploitable : le vrai pic peut être hors de l'archive)",
        "rose": "monté", "fell": "tombé",
        "none": "Aucune {what} de la parcelle {pid} n'est visible en {label} ({n} observations exploitables){nearest}.",
        "none_near": " ; la plus proche se situe entre le {a} et le {b}",
        "trend_head": "Parcelle {pid}, {index} sur {label} : moyenne {mean} sur {n} observations exploitables sur {total} ; {events}.",
        "trend_flat": "Parcelle {pid}, {index} sur {label} : moyenne {mean} sur {n} observations exploitables sur {total}, aucun événement cultural.",
        "item_peak": "pic {v} le {date}",
        "item_window": "{what} entre le {a} et le {b} ({va} à {vb})",
        "extremes": "Maximum {hi} le {dhi}, minimum {lo} le {dlo}.",
        "unusable": "Inexploitables : {items}.",
        "reason_n": "{n} {reason}",
        "group": "{what} en {label} : {items}.",
        "group_none": "Aucune des {n} parcelles n'a été {what} en {label}.",
        "group_count": "{k} des {n} parcelles : {what} en {label}.",
        "group_often": "{what} en {label}, les plus fréquentes d'abord : {items}.", "often_item": "{pid} ({times})",
        "group_item": "{pid} (entre le {a} et le {b})",
        "group_peak": "{pid} ({v} le {date})",
        "not_seen": "Pas vues {what} : {pids}.",
        "the_archive": "toute l'archive", "earlier": "Auparavant : ", "later": "Ensuite : ",
        "recent": ("Le {index} de la parcelle {pid} est passé de {va} le {a} à {vb} le {b}, sa dernière observation "
                   "exploitable ({delta} en {days} jours) : {verdict}."),
        "recent_higher": "en croissance", "recent_lower": "en baisse", "recent_stable": "stable",
        "stable_within": "{verdict} (dans les {noise} de variation de deux observations claires répétées)",
        "recent_one": "La parcelle {pid} n'a qu'une observation exploitable jusqu'au {b} ({index} {vb}) : aucun changement à mesurer.",
        "count_events": "Parcelle {pid} : {noun} vue {times} en {label}.", "once": "une fois", "times": "{n} fois",
        "since": ("Depuis, son {index} est passé de {va} le {a} à {vb} le {b}, sa dernière observation exploitable "
                  "({delta}) : {verdict}."),
        "recent_group": ("Dernier changement du {index} de chaque parcelle (sa dernière observation exploitable contre la "
                         "précédente ; stable à {noise} près) : {parts}."),
        "recent_part": "{verdict} : {items}", "recent_item": "{pid} {delta} (du {a} au {b})",
        "recent_none": "pas deux observations exploitables pour {pids}",
        "few": "La parcelle {pid} n'a que {n} observations exploitables en {label} : trop peu pour une tendance.",
        "few_one": "La parcelle {pid} n'a qu'une observation exploitable en {label} : trop peu pour une tendance.",
    },
}
#: Event names as nouns, for "no harvest of ..." and trend items.
NOUNS = {
    "en": {"harvest": "harvest", "green-up": "green-up", "emergence": "emergence", "senescence": "senescence",
           "peak": "peak", "harvest_grass": "cut", "cleared": "clearing for sowing", "sowing": "emergence"},
    "fr": {"harvest": "récolte", "green-up": "reprise de végétation", "emergence": "levée",
           "senescence": "sénescence", "peak": "pic", "harvest_grass": "fauche", "cleared": "préparation du semis",
           "sowing": "levée"},
}
_GROUP_WHAT = {
    "en": {"harvest": "Harvested", "cut": "Cut (mowing or grazing)", "green-up": "Greening up", "peak": "Peak",
           "senescence": "Senescing", "sowing": "Emerging (sown shortly before: the imagery sees the young crop)"},
    "fr": {"harvest": "Récoltées", "cut": "Fauchées ou pâturées", "green-up": "En reprise de végétation", "peak": "Pic",
           "senescence": "En sénescence", "sowing": "En levée (semées peu avant : l'imagerie voit la jeune culture)"},
}


def say(lang: str, key: str, **values: object) -> str:
    return TEXTS.get(lang, TEXTS["en"])[key].format(**values)


def asked(question: str) -> list[str]:
    """The events the question asks for (empty: a trend)."""
    folded = K.fold_text(question)
    return [name for name, pattern in ASKED if pattern.search(folded)]


def retrieve(turn: Turn, ctx: AnswerContext) -> Found:
    ids = parcels_asked(turn, ctx, MAX_PARCELS)
    if not ids:
        return Found()
    return Found(extra=tuple(ctx.records(parcel_ids=ids)))


def _bounds(turn: Turn) -> tuple[str | None, str | None, str]:
    """The window events are looked for in: the plan's, spanning the other windows it names
    ("this season (2019)")."""
    w = turn.plan.window
    if w is None:
        return None, None, say(turn.lang, "the_archive")
    windows = [w, *turn.plan.compare_windows]
    start, end = min(x.start for x in windows), max(x.end for x in windows)
    label = w.label if len(windows) == 1 else " / ".join(x.label for x in windows)
    return start.isoformat(), end.isoformat(), label


def _kinds(wanted: list[str], single: bool) -> set[str]:
    """The library's event kinds that answer the events asked: a green-up may be an emergence; a cut
    asked is a grass cut or another crop's harvest; a harvest asked of one parcel is its cuts too
    when it is grass ("when was parcel 5 harvested"), while "which parcels were harvested" means crops."""
    kinds = set(wanted) - {"cut", "sowing"}
    if "green-up" in wanted or "sowing" in wanted:
        kinds.add("emergence")
    if "cut" in wanted:
        kinds |= {CUT, "harvest"}
    if "harvest" in wanted and single:
        kinds.add(CUT)
    return kinds


def _grass(doc) -> bool:
    return is_mown(K.crop_of(doc))


def _name(kind: str, grass: bool) -> str:
    """The wording of an event kind: a cut (the library's `CUT`), and a harvest asked of grass, read "cut"."""
    return "harvest_grass" if kind == CUT or (kind == "harvest" and grass) else kind


def compose(turn: Turn, ctx: AnswerContext) -> Composition:
    out = Composition()
    lang, plan = turn.lang, turn.plan
    if checks.preamble(turn, ctx, out):
        return out
    ids = parcels_asked(turn, ctx, MAX_PARCELS)
    if not ids:
        from assistant.answers import clarify
        return clarify.compose(turn, ctx)
    column = "ndvi_mean" if plan.index in (None, "ndvi") else K.column_of(plan.index)
    start, end, label = _bounds(turn)
    wanted = asked(turn.question)
    series = K.by_parcel(turn.found.extra)
    # "When was the wheat sown?": each parcel's own season (`_sowing`); "which parcels were sown in
    # May?" stays a list of the group's emergences in the window.
    folded = K.fold_text(turn.question)
    each_sowing = bool(wanted) and wanted[0] == "sowing" and bool(_WHEN.search(folded))
    if len(ids) > 1 and wanted and not each_sowing:
        _group(out, lang, ids, series, ctx, wanted[0], start, end, label,
               count=wanted[0] != "peak" and bool(_COUNT_PARCELS.search(folded)),
               often=wanted[0] != "peak" and bool(_OFTEN.search(folded)))
        return out
    newest = _newest(ctx)
    recent = bool(_PROGRESS.search(folded)) and (
        plan.window is None or (newest is not None and plan.window.end >= newest))
    if len(ids) > 1 and recent:
        _recent_group(out, lang, ids, series, ctx, end, column)
        return out
    for pid in ids[:5]:
        docs = series.get(pid, [])
        if wanted and wanted[0] == "sowing":
            _sowing(out, lang, pid, docs, ctx, start, end, label, column)
        elif wanted:
            first = bool(_FIRST.search(folded))
            head = len(out.sentences)
            hits = _events(out, lang, pid, docs, ctx, wanted, start, end, label, column, first=first)
            if hits and _COUNT.search(folded):
                # "How many times was it mown?": the count first, then each event.
                noun = NOUNS[lang if lang in NOUNS else "en"][_name(hits[0].kind, bool(docs) and _grass(docs[0]))]
                times = say(lang, "once") if len(hits) == 1 else say(lang, "times", n=len(hits))
                out.sentences.insert(head, say(lang, "count_events", pid=pid, noun=noun, times=times, label=label))
                out.counts.append(len(hits))
            if recent and hits:
                # "Has it recovered since the harvest?": the latest event, then where it stands now
                # (right after that event's sentence, before the earlier ones).
                before = len(out.sentences)
                _since(out, lang, pid, docs, ctx, max(hits, key=lambda e: e.end), column)
                if not first and len(out.sentences) > before and before > head + 1:
                    out.sentences.insert(head + 1, out.sentences.pop())
        elif recent:
            # "Is it growing?", "what changed since last week?": its latest change, not a season's events.
            _recent(out, lang, pid, docs, ctx, end, column)
        else:
            trend(out, lang, pid, docs, ctx, start, end, label, column)
    return out


def _usable_until(docs, ctx, end, column) -> list:
    """The parcel's usable observations up to `end` (all of them without one), oldest first."""
    return [d for d in K.good(docs, ctx.suspects, column) if end is None or d.metadata["date"] <= end]


def _noise_text(column: str) -> str:
    return f"{K.noise(column):.3f}".rstrip("0")


def _change(out: Composition, a, b, column: str) -> tuple[int, str]:
    """The change from observation `a` to `b` in hundredths, and "higher", "lower" or "stable"
    within the noise of repeated clear observations (`indexer.seasons`); both are cited and the
    delta and the noise are declared to the grounding gate."""
    delta = K.hundredths(K.value(b, column)) - K.hundredths(K.value(a, column))
    K.cite_all(out, [a, b], (column,))
    out.derived.append(K.signed(delta))
    out.rules.append(float(_noise_text(column)))
    return delta, K.stable_words("en", delta, K.noise(column))


def _verdict(lang: str, verdict: str, column: str) -> str:
    """A change's verdict as one parcel's answer says it ("stable" with the noise it is read against)."""
    words = say(lang, "recent_" + verdict)
    return say(lang, "stable_within", verdict=words, noise=_noise_text(column)) if verdict == "stable" else words


def _recent_group(out, lang, ids, series, ctx, end, column) -> None:
    """Each parcel's latest change (see `_recent`), growing ones first, then declining, then stable."""
    groups: dict[str, list[tuple[int, str, object, object]]] = {"higher": [], "lower": [], "stable": []}
    missing = []
    for pid in ids:
        good = _usable_until(series.get(pid, []), ctx, end, column)
        if len(good) < 2:
            missing.append(pid)
            continue
        a, b = good[-2:]
        delta, verdict = _change(out, a, b, column)
        groups[verdict].append((delta, pid, a, b))
    parts = []
    for verdict, items in groups.items():
        items.sort(key=lambda t: -t[0] if verdict == "higher" else t[0])
        if items:
            parts.append(say(lang, "recent_part", verdict=say(lang, "recent_" + verdict),
                             items=", ".join(say(lang, "recent_item", pid=pid, delta=K.signed(d), a=a.metadata["date"],
                                                 b=b.metadata["date"]) for d, pid, a, b in items)))
    if missing:
        parts.append(say(lang, "recent_none", pids=", ".join(missing)))
    out.add(say(lang, "recent_group", index=K.label_of(column), noise=_noise_text(column), parts=K.semicolon(lang).join(parts)))


def _newest(ctx: AnswerContext):
    dates = ctx.dates()
    return K.day(max(dates)) if dates else None


def _recent(out, lang, pid, docs, ctx, end, column) -> None:
    """The parcel's latest usable observation (up to `end`) against the one before it: the change,
    and whether it is beyond the noise of repeated clear observations (`indexer.seasons`)."""
    good = _usable_until(docs, ctx, end, column)
    index = K.label_of(column)
    if len(good) < 2:
        if good:
            out.add(say(lang, "recent_one", pid=pid, b=good[-1].metadata["date"], index=index,
                        vb=K.num(K.value(good[-1], column))))
            out.cite(good[-1], (column,))
        else:
            out.add(say(lang, "few", pid=pid, n=0, label=say(lang, "the_archive")))
        return
    a, b = good[-2:]
    delta, verdict = _change(out, a, b, column)
    out.add(say(lang, "recent", pid=pid, index=index, va=K.num(K.value(a, column)), a=a.metadata["date"],
                vb=K.num(K.value(b, column)), b=b.metadata["date"], delta=K.signed(delta),
                days=(K.day(b) - K.day(a)).days, verdict=_verdict(lang, verdict, column)))
    out.counts.append((K.day(b) - K.day(a)).days)
    out.history += K.history_rows(good[-2:], ctx.suspects, column)


def _event_sentence(out: Composition, lang: str, pid: str, e, docs, column: str) -> None:
    index = K.label_of(column)
    by_date = {d.metadata["date"]: d for d in docs}
    if e.kind == "peak":
        out.add(say(lang, "peak_event", pid=pid, index=index, v=K.num(e.value_start), date=e.start,
                    censored=say(lang, "censored") if e.censored else ""))
        out.cite(by_date[e.start], (column,))
        return
    grass = bool(docs) and _grass(docs[0])
    out.add(say(lang, "event", pid=pid, what=say(lang, _name(e.kind, grass)), a=e.start, b=e.end, index=index,
                verb=say(lang, "rose" if e.value_end > e.value_start else "fell"), va=K.num(e.value_start),
                vb=K.num(e.value_end)))
    out.cite(by_date[e.start], (column,))
    out.cite(by_date[e.end], (column,))


def _since(out, lang, pid, docs, ctx, event, column) -> None:
    """Where the parcel stands now against the end of `event`: its latest usable observation."""
    good = K.good(docs, ctx.suspects, column)
    if not good or good[-1].metadata["date"] <= event.end:
        return
    a, b = {d.metadata["date"]: d for d in docs}[event.end], good[-1]
    delta, verdict = _change(out, a, b, column)
    out.add(say(lang, "since", index=K.label_of(column), va=K.num(K.value(a, column)), a=event.end,
                vb=K.num(K.value(b, column)), b=b.metadata["date"], delta=K.signed(delta),
                verdict=_verdict(lang, verdict, column)))


def _events(out, lang, pid, docs, ctx, wanted, start, end, label, column, first: bool = False) -> list:
    events = K.events(docs, ctx.suspects, column, south=K.southern(ctx, docs))
    if wanted == ["peak"]:
        # "The peak in 2019": the highest usable observation of the window (the calendar's peaks
        # need a prominence a short window may not show).
        good = [d for d in K.good(docs, ctx.suspects, column)
                if (start is None or d.metadata["date"] >= start) and (end is None or d.metadata["date"] <= end)]
        if good:
            top = max(good, key=lambda d: K.value(d, column))
            out.add(say(lang, "highest", pid=pid, index=K.label_of(column), v=K.num(K.value(top, column)),
                        date=top.metadata["date"], label=label, n=len(good)))
            out.counts.append(len(good))
            out.cite(top, (column,))
            return []
    kinds = _kinds(wanted, single=True)
    hits = [e for e in events if e.kind in kinds and e.overlaps(start, end)]
    if len(hits) > 1 and not first:
        # "When was it harvested?": the latest first, the earlier ones after it ("the first cut":
        # the earliest first, the later ones after it).
        hits = hits[::-1]
    for i, e in enumerate(hits):
        _event_sentence(out, lang, pid, e, docs, column)
        if i:
            out.sentences[-1] = say(lang, "later" if first else "earlier") + out.sentences[-1]
    if not hits:
        good = [d for d in K.good(docs, ctx.suspects, column)
                if (start is None or d.metadata["date"] >= start) and (end is None or d.metadata["date"] <= end)]
        others = [e for e in events if e.kind in kinds]
        nearest = ""
        if others and start is not None:
            near = min(others, key=lambda e: abs((K.day(e.start) - K.day(start)).days))
            nearest = say(lang, "none_near", a=near.start, b=near.end)
            by_date = {d.metadata["date"]: d for d in docs}
            K.cite_all(out, [by_date[near.start], by_date[near.end]], (column,))
        grass = bool(docs) and _grass(docs[0])
        out.add(say(lang, "none", what=NOUNS[lang if lang in NOUNS else "en"][_name(wanted[0], grass)], pid=pid,
                    label=label, n=len(good), nearest=nearest))
        out.counts.append(len(good))
        K.cite_all(out, good, (column,))
        out.history += K.history_rows(good, ctx.suspects, column)
    return hits


def _sowing(out, lang, pid, docs, ctx, start, end, label, column) -> None:
    """When the parcel's crop was sown, as far as the imagery can tell: between the field bare (a
    harvest, the field cleared for sowing, or the bare observation before the emergence) and the
    crop's emergence. The crop of the parcels file is the one whose emergence comes last before its
    harvest (the last harvest in the window asked), else the latest emergence (in the window). A mown crop
    (permanent grass) is not sown each season: said so, with its regrowths."""
    events = K.events(docs, ctx.suspects, column, south=K.southern(ctx, docs))
    by_date = {d.metadata["date"]: d for d in docs}
    crop = K.crop_of(docs[0]) if docs else None
    crop_word = K.crop_name(crop or "?", lang)
    if crop is not None and is_mown(crop):
        regrowth = [e for e in events if e.kind in ("green-up", "emergence") and e.overlaps(start, end)]
        out.add(say(lang, "sowing_grass", pid=pid, crop=crop_word))
        for e in regrowth[-1:]:
            out.add(say(lang, "sowing_regrowth", a=e.start, b=e.end, va=K.num(e.value_start), vb=K.num(e.value_end)))
            K.cite_all(out, [by_date[e.start], by_date[e.end]], (column,))
        return
    emergences = [e for e in events if e.kind == "emergence"]
    # The season's crop: the one harvested last (in the window asked), sown before that harvest;
    # with no harvest, the latest emergence (in the window).
    harvests = [e for e in events if e.kind == "harvest" and e.overlaps(start, end)]
    if harvests:
        chosen = [e for e in emergences if e.end <= harvests[-1].start][-1:]
    else:
        chosen = [e for e in emergences if e.overlaps(start, end)][-1:]
    if not chosen:
        out.add(say(lang, "sowing_none", pid=pid, label=label))
        return
    e = chosen[0]
    bare = [x for x in events if x.kind in ("harvest", "cleared", CUT) and x.end <= e.start]
    # Sown after the field was last cleared (a harvest, ploughing or the cover destroyed) and before
    # the crop emerged; with no such event in the months before, only "before".
    since = bare[-1].end if bare and (K.day(e.start) - K.day(bare[-1].end)).days <= 150 else e.start
    out.add(say(lang, "sowing" if since != e.start else "sowing_before", pid=pid, crop=crop_word, since=since,
                a=e.start, b=e.end, va=K.num(e.value_start), vb=K.num(e.value_end)))
    K.cite_all(out, [by_date[d] for d in dict.fromkeys((since, e.start, e.end)) if d in by_date], (column,))
    if since != e.start:
        x = bare[-1]
        out.add(say(lang, "sowing_bare", what=say(lang, "cleared_what" if x.kind == "cleared" else "harvest_what"),
                    a=x.start, b=x.end, va=K.num(x.value_start), vb=K.num(x.value_end)))
        K.cite_all(out, [by_date[x.start], by_date[x.end]], (column,))


def trend(out, lang, pid, docs, ctx, start, end, label, column) -> None:
    """One parcel's `column` over `start`..`end` (`label`): its mean, crop-calendar events,
    extremes and unusable dates, added to `out` (fewer than two usable observations: said so)."""
    in_window = [d for d in docs if (start is None or d.metadata["date"] >= start)
                 and (end is None or d.metadata["date"] <= end)]
    good = K.good(in_window, ctx.suspects, column)
    out.history += K.history_rows(in_window, ctx.suspects, column)
    if len(good) < 2:
        out.add(say(lang, "few_one" if len(good) == 1 else "few", pid=pid, n=len(good), label=label))
        out.counts.append(len(good))
        K.cite_all(out, good, (column,))
        return
    events = [e for e in K.events(docs, ctx.suspects, column, south=K.southern(ctx, docs)) if e.overlaps(start, end)]
    grass = _grass(docs[0])
    nouns = NOUNS[lang if lang in NOUNS else "en"]
    items = []
    by_date = {d.metadata["date"]: d for d in docs}
    for e in events:
        if e.kind == "peak":
            items.append(say(lang, "item_peak", v=K.num(e.value_start), date=e.start))
        else:
            items.append(say(lang, "item_window", what=nouns[_name(e.kind, grass)], a=e.start, b=e.end,
                             va=K.num(e.value_start), vb=K.num(e.value_end)))
        K.cite_all(out, [by_date[e.start], by_date[e.end]], (column,))
    index = K.label_of(column)
    mean = K.mean_of(out, [K.value(d, column) for d in good])
    K.cite_all(out, good, (column,))
    if items:
        out.add(say(lang, "trend_head", pid=pid, index=index, label=label, n=len(good), total=len(in_window), mean=mean,
                    events=(" ; " if lang == "fr" else "; ").join(items)))
    else:
        out.add(say(lang, "trend_flat", pid=pid, index=index, label=label, n=len(good), total=len(in_window), mean=mean))
    out.counts += [len(good), len(in_window)]
    hi = max(good, key=lambda d: K.value(d, column))
    lo = min(good, key=lambda d: K.value(d, column))
    out.add(say(lang, "extremes", hi=K.num(K.value(hi, column)), dhi=hi.metadata["date"],
                lo=K.num(K.value(lo, column)), dlo=lo.metadata["date"]))
    K.cite_all(out, [hi, lo], (column,))
    bad = [d for d in in_window if not K.usable(d, ctx.suspects)]
    if bad and len(bad) <= 8:
        out.add(say(lang, "unusable", items=", ".join(
            f"{d.metadata['date']} ({K.reason_words(K.status(d, ctx.suspects), lang)})" for d in bad)))
        K.cite_all(out, bad, ())
    elif bad:
        counts = Counter(K.status(d, ctx.suspects) for d in bad)
        out.add(say(lang, "unusable", items=", ".join(
            say(lang, "reason_n", n=n, reason=K.reason_words(r, lang)) for r, n in counts.most_common())))
        out.counts += list(counts.values())


def _group(out, lang, ids, series, ctx, kind, start, end, label, count: bool = False, often: bool = False) -> None:
    """Which of the parcels `ids` had an event of `kind` in the window (`count`: how many, said
    first; `often`: ranked by how many times). A cut asked of a group that holds mown crops (grass)
    is about those: another crop's "cut" is its harvest, which the harvest question answers."""
    what = _GROUP_WHAT.get(lang, _GROUP_WHAT["en"]).get(kind, kind)
    if kind == "cut" and (grass := [p for p in ids if series.get(p) and _grass(series[p][0])]):
        ids = grass
    items, unseen, times = [], [], {}
    for pid in ids:
        docs = series.get(pid, [])
        kinds = _kinds([kind], single=False)
        hits = [e for e in K.events(docs, ctx.suspects, south=K.southern(ctx, docs)) if e.kind in kinds and e.overlaps(start, end)]
        by_date = {d.metadata["date"]: d for d in docs}
        if not hits:
            unseen.append(pid)
            continue
        times[pid] = hits
        if often:  # every event counted is cited, not only the one listed
            K.cite_all(out, [by_date[d] for x in hits for d in (x.start, x.end)], ("ndvi_mean",))
        e = max(hits, key=lambda e: e.value_start) if kind == "peak" else (hits[-1] if start is None else hits[0])
        if e.kind == "peak":
            items.append(say(lang, "group_peak", pid=pid, v=K.num(e.value_start), date=e.start))
        else:
            items.append(say(lang, "group_item", pid=pid, a=e.start, b=e.end))
        K.cite_all(out, [by_date[e.start], by_date[e.end]], ("ndvi_mean",))
    if items and often:
        ranked = sorted(times.items(), key=lambda kv: (-len(kv[1]), kv[0]))
        out.add(say(lang, "group_often", what=what, label=label, items=", ".join(
            say(lang, "often_item", pid=pid, times=say(lang, "once") if len(hits) == 1 else say(lang, "times", n=len(hits)))
            for pid, hits in ranked)))
        out.counts += [len(hits) for hits in times.values()]
        if unseen:
            out.add(say(lang, "not_seen", what=what.lower(), pids=", ".join(unseen)))
        return
    if items:
        if count:
            out.add(say(lang, "group_count", k=len(items), n=len(ids), what=what.lower(), label=label))
            out.counts += [len(items), len(ids)]
        out.add(say(lang, "group", what=what, label=label, items=", ".join(items)))
        if unseen:
            out.add(say(lang, "not_seen", what=what.lower(), pids=", ".join(unseen)))
    else:
        out.add(say(lang, "group_none", n=len(ids), what=what.lower(), label=label))
        out.counts.append(len(ids))
