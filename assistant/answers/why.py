"""Why a parcel's value changed: a harvest, cloud or snow, a suspect scene, or a real decline.

Retrieval: the parcel's whole series, and the series of the other parcels of its crop (peers).
The change examined, documented once: within the window asked (with the last usable observation
before it), the largest fall between two consecutive usable observations (the largest rise when
the question says rise / increase); without a window, the latest such change in the archive.
Causes, checked in this order and named with their evidence and dates:
1. the library's crop calendar has a harvest (a cut, on grass; on a spring-sown crop, the field
   cleared for sowing) overlapping the change;
2. the change is only in observations that are not usable (cloud, snow, a suspect scene): it is
   not the crop (the answer lists them and the usable values around);
3. otherwise a change beyond the noise is set against the same-crop parcels over the same dates
   (all of them moving alike: the season, not this field) and against the parcel's past season
   (`indexer.seasons.compare_past_seasons`); a fall that the peers do not share is "a real decline".
"""

from __future__ import annotations

import re
import statistics

from assistant.answers import checks
from assistant.answers import common as K
from assistant.answers.observe import subject
from assistant.answers.turn import AnswerContext, Found, Turn
from assistant.compose import Composition
from indexer.core.errors import InputError
from indexer.phenology import CUT, is_mown
from indexer.seasons import compare_past_seasons

_RISE = re.compile(r"\b(?:rise|rose|risen|increas\w*|jump\w*|went\s+up|grew|hausse|augment\w*|monte\w*)\b")

TEXTS = {
    "en": {
        "harvest": ("Parcel {pid}'s {index} {verb} in {label} because it was {what} between {a} and {b}: it went from "
                    "{va} to {vb}{after}."),
        "since_harvest": ("Parcel {pid}'s {index} is low in {label} ({v} on {date}) because it was {what} between {a} and "
                          "{b} ({va} to {vb}): bare soil or stubble since."),
        "after_low": " and stayed low afterwards ({vc} on {dc}): bare soil or stubble",
        "after_low_cleared": " and stayed low afterwards ({vc} on {dc}): bare soil until the crop emerges",
        "unusable": ("Parcel {pid}'s low values in {label} are not the crop: {items} {were} {why}; its usable "
                     "observations around read {around}."),
        "peers_alike": ("Parcel {pid}'s {index} {verb} from {va} on {a} to {vb} on {b} ({delta}); the other {crop} "
                        "parcels moved alike over the same dates (median {pdelta}), so it is the season, not this field."),
        "decline": ("Parcel {pid}'s {index} fell from {va} on {a} to {vb} on {b} ({delta}) while the other {crop} "
                    "parcels changed by {pdelta} (median) over the same dates: a real decline of this field, "
                    "worth a visit."),
        "change": "Parcel {pid}'s {index} {verb} from {va} on {a} to {vb} on {b} ({delta}), with no harvest, cloud or suspect scene between them.",
        "grass_cut": "On grassland a fall like this is usually a cut or grazing.",
        "past": "Against {season}: {pv} on {pdate}, the usable observation closest in day of year ({pdelta}).",
        "no_change": ("Parcel {pid}'s {index} did not change beyond the noise of repeated clear observations "
                      "({noise}) in {label}: from {va} on {a} to {vb} on {b}."),
        "few": "Parcel {pid} has too few usable observations in {label} to say how its {index} changed.",
        "fell": "fell", "rose": "rose", "the_archive": "the archive",
        "cloud": "clouded", "snow": "under snow", "suspect": "a suspect scene (haze or thin cloud)", "nodata": "without data",
        "too_small": "too small",
    },
    "fr": {
        "harvest": ("Le {index} de la parcelle {pid} a {verb} en {label} parce qu'elle a été {what} entre le {a} et le "
                    "{b} : il est passé de {va} à {vb}{after}."),
        "since_harvest": ("Le {index} de la parcelle {pid} est bas en {label} ({v} le {date}) parce qu'elle a été {what} "
                          "entre le {a} et le {b} ({va} à {vb}) : sol nu ou chaumes depuis."),
        "after_low": " et est resté bas ensuite ({vc} le {dc}) : sol nu ou chaumes",
        "after_low_cleared": " et est resté bas ensuite ({vc} le {dc}) : sol nu jusqu'à la levée de la culture",
        "unusable": ("Les valeurs basses de la parcelle {pid} en {label} ne sont pas la culture : {items} {were} "
                     "{why} ; ses observations exploitables autour donnent {around}."),
        "peers_alike": ("Le {index} de la parcelle {pid} a {verb} de {va} le {a} à {vb} le {b} ({delta}) ; les autres "
                        "parcelles de {crop} ont évolué de même sur ces dates (médiane {pdelta}) : c'est la saison, pas "
                        "cette parcelle."),
        "decline": ("Le {index} de la parcelle {pid} est tombé de {va} le {a} à {vb} le {b} ({delta}) alors que les "
                    "autres parcelles de {crop} ont varié de {pdelta} (médiane) sur ces dates : un vrai déclin de cette "
                    "parcelle, à aller voir."),
        "change": "Le {index} de la parcelle {pid} a {verb} de {va} le {a} à {vb} le {b} ({delta}), sans récolte, nuage ni scène suspecte entre les deux.",
        "grass_cut": "Sur une prairie, une telle baisse vient en général d'une fauche ou d'un pâturage.",
        "past": "Par rapport à {season} : {pv} le {pdate}, l'observation exploitable la plus proche dans l'année ({pdelta}).",
        "no_change": ("Le {index} de la parcelle {pid} n'a pas varié au-delà du bruit des observations dégagées "
                      "répétées ({noise}) en {label} : de {va} le {a} à {vb} le {b}."),
        "few": "La parcelle {pid} a trop peu d'observations exploitables en {label} pour dire comment son {index} a évolué.",
        "fell": "baissé", "rose": "augmenté", "the_archive": "l'archive",
        "cloud": "nuageux", "snow": "sous la neige", "suspect": "une scène suspecte (brume ou voile nuageux)",
        "nodata": "sans données", "too_small": "trop petites",
    },
}
_WHAT = {"en": {"harvest": "harvested", "grass": "cut (mowing or grazing)",
                "cleared": "cleared for sowing (a winter cover or the previous vegetation removed)"},
         "fr": {"harvest": "récoltée", "grass": "fauchée ou pâturée",
                "cleared": "préparée pour le semis (couvert d'hiver ou végétation précédente détruits)"}}


def say(lang: str, key: str, **values: object) -> str:
    return TEXTS.get(lang, TEXTS["en"])[key].format(**values)


def retrieve(turn: Turn, ctx: AnswerContext) -> Found:
    pid = subject(turn, ctx)
    if pid is None:
        # "What happened on 19 August?": no parcel, so what the scene shows (observation quality).
        from assistant.answers import quality
        return quality.retrieve(turn, ctx)
    series = ctx.records(parcel_ids=[pid])
    return Found(records=tuple(series), extra=tuple(K.crop_peers(ctx, series)))


def compose(turn: Turn, ctx: AnswerContext) -> Composition:
    out = Composition()
    lang, plan = turn.lang, turn.plan
    if checks.preamble(turn, ctx, out):
        return out
    pid = subject(turn, ctx)
    if pid is None:
        from assistant.answers import clarify, quality
        return quality.compose(turn, ctx) if plan.window is not None else clarify.compose(turn, ctx)
    column = K.column_of(plan.index)
    index = K.label_of(column)
    series = list(turn.found.records)
    w = plan.window
    start, end = (w.start.isoformat(), w.end.isoformat()) if w else (None, None)
    label = w.label if w else say(lang, "the_archive")
    rise = bool(_RISE.search(K.fold_text(turn.question)))
    good = K.good(series, ctx.suspects, column)
    in_window = [d for d in series if (start is None or d.metadata["date"] >= start) and (end is None or d.metadata["date"] <= end)]
    # 1. harvest (or clearing for sowing) overlapping the window
    events = [e for e in K.events(series, ctx.suspects, column, south=K.southern(ctx, series))
              if e.kind in ("harvest", "cleared", CUT) and e.overlaps(start, end)]
    by_date = {d.metadata["date"]: d for d in series}
    if events and not rise:
        e = events[-1]
        later = [d for d in good if d.metadata["date"] > e.end][:1]
        after = ""
        if later and K.value(later[0], column) < 0.45:
            after = say(lang, "after_low_cleared" if e.kind == "cleared" else "after_low", vc=K.num(K.value(later[0], column)), dc=later[0].metadata["date"])
            out.cite(later[0], (column,))
        grass = is_mown(K.crop_of(series[0]))
        what = "cleared" if e.kind == "cleared" else "grass" if grass or e.kind == CUT else "harvest"
        out.add(say(lang, "harvest", pid=pid, index=index, verb=say(lang, "fell"), label=label,
                    what=_WHAT[lang if lang in _WHAT else "en"][what], a=e.start, b=e.end,
                    va=K.num(e.value_start), vb=K.num(e.value_end), after=after))
        K.cite_all(out, [by_date[e.start], by_date[e.end]], (column,))
        return out
    # 1b. still bare soil or stubble from a harvest shortly before the window
    earlier = [e for e in K.events(series, ctx.suspects, column, south=K.southern(ctx, series))
               if e.kind in ("harvest", CUT) and start is not None
               and e.end < start and (K.day(start) - K.day(e.end)).days <= 120]
    low_now = [d for d in good if start <= d.metadata["date"] <= end and K.value(d, column) < 0.3] if start else []
    if earlier and low_now and not rise:
        e = earlier[-1]
        grass = is_mown(K.crop_of(series[0]))
        out.add(say(lang, "since_harvest", pid=pid, index=index, label=label, v=K.num(K.value(low_now[-1], column)),
                    date=low_now[-1].metadata["date"], what=_WHAT[lang if lang in _WHAT else "en"]["grass" if grass else "harvest"],
                    a=e.start, b=e.end, va=K.num(e.value_start), vb=K.num(e.value_end)))
        K.cite_all(out, [by_date[e.start], by_date[e.end], low_now[-1]], (column,))
        return out
    # 2. low values only in unusable observations
    bad = [d for d in in_window if not K.usable(d, ctx.suspects)]
    step = _step_of(good, start, end, rise, column)
    noise = K.noise(column)
    if bad and (step is None or abs(K.value(step[1], column) - K.value(step[0], column)) <= noise):
        say_unusable(out, lang, pid, label, bad, series, ctx.suspects, column)
        return out
    if step is None:
        out.add(say(lang, "few", pid=pid, label=label, index=index))
        return out
    a, b = step
    delta = K.hundredths(K.value(b, column)) - K.hundredths(K.value(a, column))
    verb = say(lang, "rose" if delta > 0 else "fell")
    values = dict(pid=pid, index=index, va=K.num(K.value(a, column)), a=a.metadata["date"],
                  vb=K.num(K.value(b, column)), b=b.metadata["date"], delta=K.signed(delta))
    K.cite_all(out, [a, b], (column,))
    if abs(delta) <= round(noise * 100):
        out.add(say(lang, "no_change", label=label, noise=K.num(noise), **values))
        out.derived.append(K.num(noise))
        return out
    # 3. peers over the same dates, and the past season
    moves = peer_moves(a, b, K.by_parcel(turn.found.extra), ctx.suspects, column)
    crop = K.crop_name(K.crop_of(a) or "?", lang)
    if moves:
        pdelta = statistics.median(m for m, _, _ in moves)
        ptext = K.signed(int(round(pdelta)))
        out.derived.append(ptext)
        for _, pa, pb in moves:
            K.cite_all(out, [pa, pb], (column,))
        if moved_alike(delta, pdelta, noise):
            out.add(say(lang, "peers_alike", verb=verb, crop=crop, pdelta=ptext, **values))
        elif delta < 0:
            out.add(say(lang, "decline", crop=crop, pdelta=ptext, **values))
            if is_mown(K.crop_of(a)):
                out.add(say(lang, "grass_cut"))
        else:
            out.add(say(lang, "change", verb=verb, **values))
    else:
        out.add(say(lang, "change", verb=verb, **values))
    try:
        past = compare_past_seasons(K.frame(series, ctx.suspects), b.metadata["date"], column)
    except InputError:
        past = None
    for p in (past.pairs if past else ())[:1]:
        then = next(d for d in series if d.metadata["record_id"] == p.past_record_id)
        out.add(say(lang, "past", season=p.past_season, pv=K.num(p.past_value), pdate=p.past_date,
                    pdelta=K.signed(K.hundredths(p.value) - K.hundredths(p.past_value))))
        out.cite(then, (column,))
    return out


def say_unusable(out: Composition, lang: str, pid: str, label: str, bad: list, series: list, suspects,
                 column: str) -> None:
    """Say that the low values of `bad` (the parcel's unusable observations in the window) are not
    the crop: why each is unusable, and the usable observations around them."""
    reasons = sorted({K.status(d, suspects) for d in bad})
    around = checks.nearest_usable(series, K.day(bad[0]), suspects, column)
    were = ("was" if len(bad) == 1 else "were") if lang != "fr" else ("était" if len(bad) == 1 else "étaient")
    out.add(say(lang, "unusable", pid=pid, label=label, were=were, items=", ".join(d.metadata["date"] for d in bad[:8]),
                why=" / ".join(say(lang, r) if r in TEXTS["en"] else r for r in reasons),
                around=", ".join(f"{K.num(K.value(d, column))} ({d.metadata['date']})" for d in around)))
    K.cite_all(out, [*bad[:8], *around], (column,))


def peer_moves(a, b, peers: dict, suspects, column: str) -> list[tuple[int, object, object]]:
    """How each other parcel of `peers` (parcel id -> its records) changed between the dates of
    observations `a` and `b`, in hundredths, with its two records: only parcels usable on both."""
    moves = []
    for items in peers.values():
        pa = [d for d in items if d.metadata["date"] == a.metadata["date"] and K.usable(d, suspects)]
        pb = [d for d in items if d.metadata["date"] == b.metadata["date"] and K.usable(d, suspects)]
        if pa and pb and pa[0].metadata.get(column) is not None and pb[0].metadata.get(column) is not None:
            moves.append((K.hundredths(K.value(pb[0], column)) - K.hundredths(K.value(pa[0], column)), pa[0], pb[0]))
    return moves


def moved_alike(delta: float, peer_delta: float, noise: float) -> bool:
    """Whether a parcel's change (`delta`, hundredths) is the season's: the same as its peers' median
    change within twice the noise, or peers that moved at least as much the same way."""
    return (abs(delta - peer_delta) <= 2 * round(noise * 100) or (delta < 0 and peer_delta <= delta)
            or (delta > 0 and peer_delta >= delta))


def _step_of(good, start, end, rise: bool, column: str):
    pairs = [(a, b) for a, b in zip(good, good[1:])
             if (start is None or b.metadata["date"] >= start) and (end is None or b.metadata["date"] <= end)]
    if not pairs:
        return None
    sign = 1 if rise else -1
    return max(pairs, key=lambda p: sign * (K.value(p[1], column) - K.value(p[0], column)))
