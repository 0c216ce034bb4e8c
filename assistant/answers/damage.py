"""Damage asked about (hail, frost, disease, pests, storm, lodging): what the imagery can say.

Sentinel-2 indices do not see hail, frost or a disease; they see a canopy that falls. So the
answer says whether the parcel's vegetation fell when nothing else explains it, and names the
limit. Retrieval: the parcel's whole series (the crop calendar reads it whole) and the series of
the other parcels of its crop; with no parcel named, every parcel of the group asked (a crop, or
all of them). Each fall between two consecutive usable observations whose later one lies in the
window (without one, the whole archive), beyond the noise of repeated clear observations, is
explained, in this order, by:

1. the crop calendar (`indexer.phenology`): a harvest, a cut of grass, the field cleared for
   sowing or the crop ripening (senescence) over those dates, or bare soil or stubble after a
   harvest (`common.after_harvest`);
2. a one-date dip (`indexer.phenology.one_date_dips`): residual cloud or shadow, not the crop;
3. the season: the other parcels of the crop moved alike over the same dates (`why.moved_alike`,
   the rule the "why" answers use).

A fall left over is a decline of that field, worth a visit; the imagery cannot say what caused it.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass, replace

from langchain_core.documents import Document

from assistant.answers import checks
from assistant.answers import common as K
from assistant.answers.groups import members
from assistant.answers.observe import subject
from assistant.answers.registry import HAZARDS
from assistant.answers.turn import AnswerContext, Found, Turn
from assistant.answers.why import moved_alike, peer_moves, say_unusable
from assistant.answers.why import say as why_say
from assistant.compose import Composition
from indexer.phenology import (
    CLEARED, CUT, EMERGENCE, GREEN_UP, HARVEST, PEAK, SENESCENCE, is_mown, one_date_dips,
)

_HAZARD_RES = tuple((name, re.compile(rf"\b(?:{p})\b")) for name, p in HAZARDS)
#: Unexplained falls listed in an answer (the largest first).
MAX_FALLS = 4
#: Parcels listed in a group answer.
MAX_PARCELS = 8

TEXTS = {
    "en": {
        "hazard": {"hail": "hail", "frost": "frost", "disease": "a disease", "pests": "pests", "storm": "a storm",
                   "lodging": "lodging", "damage": "damage"},
        "found": ("Parcel {pid}'s {index} fell {when} where no harvest, cut or season explains it: {items}. "
                  "Worth a visit: the imagery shows a canopy that fell, not whether {hazard} did it."),
        "fall": "from {va} on {a} to {vb} on {b} ({delta}{peers})",
        "peers": "; the other {crop} parcels: {pdelta}",
        "no_peers": "; no other {crop} parcel was observed on both dates to compare",
        "none": ("No sign of {hazard} on parcel {pid} {when} that the imagery can show: no fall of its {index} "
                 "beyond the noise ({noise}) is left unexplained."),
        "explained": "What explains its falls: {items}.",
        "largest": "What explains its {k} largest falls of {n}: {items}.",
        "flat": "Its {index} did not fall beyond the noise in any of the {n} steps between usable observations.",
        "flat_one": "Its {index} went from {va} on {a} to {vb} on {b}: no fall beyond the noise.",
        "limit": "Sentinel-2 cannot see {hazard} itself, only a canopy that falls when nothing else explains it.",
        "harvest": "the harvest between {a} and {b} ({va} to {vb})",
        CUT: "a cut (mowing or grazing) between {a} and {b} ({va} to {vb})",
        CLEARED: "the field cleared for sowing between {a} and {b} ({va} to {vb})",
        SENESCENCE: "the crop ripening between {a} and {b} ({va} to {vb})",
        "stubble": "bare soil or stubble after a harvest or before sowing, {a} to {b} ({va} to {vb})",
        "dip": "a one-date dip on {b} ({vb}: residual cloud or shadow)",
        "season": "{a} to {b} ({va} to {vb}), the season: the other {crop} parcels moved alike ({pdelta})",
        "few": "Parcel {pid} has too few usable observations {when} to tell whether its vegetation fell.",
        "group_found": ("{When}, {k} of {n} parcels had a fall of {index} that no harvest, cut or season explains: "
                        "{items}. The imagery cannot say whether {hazard} did it."),
        "group_item": "{pid} ({a} to {b}, {va} to {vb})",
        "group_none": ("No sign of {hazard} {when} that the imagery can show: no fall of {index} beyond the noise "
                       "is left unexplained on any of the {n} parcels with usable observations."),
        "in": "in {label}", "archive": "between {first} and {last}", "the_archive": "the archive",
    },
    "fr": {
        "hazard": {"hail": "la grêle", "frost": "le gel", "disease": "une maladie", "pests": "des ravageurs",
                   "storm": "une tempête", "lodging": "la verse", "damage": "des dégâts"},
        # after "de": "aucun signe de grêle"
        "hazard_de": {"hail": "grêle", "frost": "gel", "disease": "maladie", "pests": "ravageurs", "storm": "tempête",
                      "lodging": "verse", "damage": "dégâts"},
        "found": ("Le {index} de la parcelle {pid} a baissé {when} sans récolte, fauche ni saison pour "
                  "l'expliquer : {items}. À aller voir : l'imagerie montre un couvert qui a baissé, pas quelle en "
                  "est la cause ({hazard} ou autre chose)."),
        "fall": "de {va} le {a} à {vb} le {b} ({delta}{peers})",
        "peers": " ; les autres parcelles de {crop} : {pdelta}",
        "no_peers": " ; aucune autre parcelle de {crop} observée aux deux dates pour comparer",
        "none": ("Aucun signe de {hazard_de} sur la parcelle {pid} {when} que l'imagerie puisse montrer : aucune "
                 "baisse de son {index} au-delà du bruit ({noise}) ne reste inexpliquée."),
        "explained": "Ce qui explique ses baisses : {items}.",
        "largest": "Ce qui explique ses {k} plus fortes baisses sur {n} : {items}.",
        "flat": ("Son {index} n'a baissé au-delà du bruit entre aucune de ses {n} paires d'observations "
                 "exploitables successives."),
        "flat_one": "Son {index} est passé de {va} le {a} à {vb} le {b} : pas de baisse au-delà du bruit.",
        "limit": "Sentinel-2 ne voit pas directement {hazard}, seulement un couvert qui baisse sans autre explication.",
        "harvest": "la récolte entre le {a} et le {b} ({va} à {vb})",
        CUT: "une fauche ou un pâturage entre le {a} et le {b} ({va} à {vb})",
        CLEARED: "la préparation du semis entre le {a} et le {b} ({va} à {vb})",
        SENESCENCE: "la maturation de la culture entre le {a} et le {b} ({va} à {vb})",
        "stubble": "sol nu ou chaumes après une récolte ou avant le semis, du {a} au {b} ({va} à {vb})",
        "dip": "un creux d'une seule date le {b} ({vb} : nuage résiduel ou ombre)",
        "season": ("du {a} au {b} ({va} à {vb}), la saison : les autres parcelles de {crop} ont évolué de même "
                   "({pdelta})"),
        "few": ("La parcelle {pid} a trop peu d'observations exploitables {when} pour dire si sa végétation a "
                "baissé."),
        "group_found": ("{When}, {k} parcelles sur {n} ont vu leur {index} baisser sans récolte, fauche ni saison "
                        "pour l'expliquer : {items}. L'imagerie ne dit pas quelle en est la cause ({hazard} ou autre "
                        "chose)."),
        "group_item": "{pid} ({a} au {b}, {va} à {vb})",
        "group_none": ("Aucun signe de {hazard_de} {when} que l'imagerie puisse montrer : aucune baisse de {index} "
                       "au-delà du bruit ne reste inexpliquée sur les {n} parcelles observées."),
        "in": "en {label}", "archive": "entre le {first} et le {last}", "the_archive": "l'archive",
    },
}


def say(lang: str, key: str, **values: object) -> str:
    return TEXTS.get(lang, TEXTS["en"])[key].format(**values)


def hazard_of(folded: str) -> str:
    """The hazard the (folded) question names: the first of `HAZARDS` whose words it uses."""
    return next((name for name, pattern in _HAZARD_RES if pattern.search(folded)), "damage")


@dataclass(frozen=True)
class Fall:
    """A fall of the index between two consecutive usable observations, and what explains it:
    a calendar event kind, "stubble", "dip", "season", or None (unexplained)."""

    a: Document
    b: Document
    delta: int  # hundredths
    cause: str | None = None
    peer_delta: float | None = None  # the same-crop parcels' median change (hundredths), when observed
    peers: tuple[Document, ...] = ()


def falls(series: list[Document], peers: dict[str, list[Document]], ctx: AnswerContext, column: str,
          start: str | None, end: str | None) -> tuple[list[Fall], list[tuple[Document, Document]]]:
    """Every fall beyond the noise of one parcel whose later observation lies in [start, end], each
    with its explanation (module docstring), and every step examined (consecutive usable observations,
    the later one in the window)."""
    good = K.good(series, ctx.suspects, column)
    if not good:
        return [], []
    dips = one_date_dips(K.frame(good, ctx.suspects), column)
    dip_dates = {d.metadata["date"] for d, is_dip in zip(good, dips) if is_dip}
    south = K.southern(ctx, series)
    every = K.events(series, ctx.suspects, column, south=south)
    calendar = [e for e in every if e.kind in (HARVEST, CUT, CLEARED, SENESCENCE)]
    # The way down from a peak to a harvest (or to the field cleared for sowing) is the crop ripening
    # or the cover dying: the calendar dates only the largest step of it.
    ripening = []
    for e in every:
        if e.kind in (HARVEST, CLEARED):
            peak = [p for p in every if p.kind == PEAK and p.end <= e.start]
            if peak:
                ripening.append(replace(e, kind=SENESCENCE, start=peak[-1].end, end=e.start))
    noise = round(K.noise(column) * 100)
    found, steps = [], []
    for i, b in enumerate(good):
        date = b.metadata["date"]
        if (start is not None and date < start) or (end is not None and date > end):
            continue
        if i == 0:
            continue
        a = good[i - 1]
        steps.append((a, b))
        delta = K.hundredths(K.value(b, column)) - K.hundredths(K.value(a, column))
        if delta >= -noise:
            continue
        event = next((e for e in [*calendar, *ripening] if e.start <= a.metadata["date"] and e.end >= date), None)
        if event is not None:
            found.append(Fall(a, b, delta, event.kind))
            continue
        if date in dip_dates or a.metadata["date"] in dip_dates:
            found.append(Fall(a, b, delta, "dip"))
            continue
        if K.after_harvest(a, series, ctx.suspects, south=south) or _bare_since_clearing(a, every):
            found.append(Fall(a, b, delta, "stubble"))
            continue
        moves = peer_moves(a, b, peers, ctx.suspects, column)
        pdelta = statistics.median(m for m, _, _ in moves) if moves else None
        cited = tuple(d for _, pa, pb in moves for d in (pa, pb))
        cause = "season" if pdelta is not None and moved_alike(delta, pdelta, K.noise(column)) else None
        found.append(Fall(a, b, delta, cause, pdelta, cited))
    return found, steps


def _bare_since_clearing(doc: Document, events: list) -> bool:
    """Whether `doc` lies after the field was cleared for sowing, before the crop emerged."""
    date = doc.metadata["date"]
    cleared = [e for e in events if e.kind == CLEARED and e.end <= date]
    return bool(cleared) and not any(e.kind in (EMERGENCE, GREEN_UP, PEAK) and cleared[-1].end < e.start <= date
                                     for e in events)


def retrieve(turn: Turn, ctx: AnswerContext) -> Found:
    pid = subject(turn, ctx)
    ids = [pid] if pid is not None else members(turn, ctx)
    records = ctx.records(parcel_ids=ids) if ids else []
    return Found(records=tuple(records), extra=tuple(K.crop_peers(ctx, records)))


def compose(turn: Turn, ctx: AnswerContext) -> Composition:
    out = Composition()
    lang, plan = turn.lang, turn.plan
    if checks.preamble(turn, ctx, out):
        return out
    column = K.column_of(plan.index)
    index = K.label_of(column)
    w = plan.window
    start, end = (w.start.isoformat(), w.end.isoformat()) if w else (None, None)
    pid = subject(turn, ctx)
    # Without a window: the span of the parcel's own records (a store may hold other areas' dates).
    dates = sorted(d.metadata["date"] for d in turn.found.records) if pid is not None else ctx.dates()
    dates = dates or ctx.dates()
    when = say(lang, "in", label=w.label) if w else say(lang, "archive", first=dates[0], last=dates[-1])
    table, key = TEXTS.get(lang, TEXTS["en"]), hazard_of(K.fold_text(turn.question))
    hazard = {"hazard": table["hazard"][key], "hazard_de": table.get("hazard_de", table["hazard"])[key]}
    every = K.by_parcel([*turn.found.records, *turn.found.extra])
    asked = K.by_parcel(turn.found.records)
    if pid is not None:
        series = asked.get(pid, [])
        bad = [d for d in series if (start is None or d.metadata["date"] >= start)
               and (end is None or d.metadata["date"] <= end) and not K.usable(d, ctx.suspects)]
        if bad and not any(K.usable(d, ctx.suspects) for d in series if (start is None or d.metadata["date"] >= start)
                           and (end is None or d.metadata["date"] <= end)):
            # Only unusable images in the window: what looks like damage there is cloud or snow.
            say_unusable(out, lang, pid, w.label if w else say(lang, "the_archive"), bad, series, ctx.suspects, column)
            return out
        _one(out, lang, pid, series, every, ctx, column, index, start, end, when, hazard)
    else:
        _group(out, lang, asked, every, ctx, column, index, start, end, when, hazard)
    return out


def _peers_of(pid: str, series: list[Document], every: dict[str, list[Document]]) -> dict[str, list[Document]]:
    crop = K.crop_of(series[0]) if series else None
    return {p: docs for p, docs in every.items() if p != pid and crop is not None and K.crop_of(docs[0]) == crop}


def _values(f: Fall, column: str) -> dict:
    return dict(a=f.a.metadata["date"], b=f.b.metadata["date"], va=K.num(K.value(f.a, column)),
                vb=K.num(K.value(f.b, column)))


def _one(out: Composition, lang: str, pid: str, series: list[Document], every: dict[str, list[Document]],
         ctx: AnswerContext, column: str, index: str, start: str | None, end: str | None, when: str,
         hazard: dict[str, str]) -> None:
    found, steps = falls(series, _peers_of(pid, series, every), ctx, column, start, end)
    if not steps:
        out.add(say(lang, "few", pid=pid, when=when))
        return
    crop = K.crop_name(K.crop_of(series[0]) or "?", lang)
    left = sorted((f for f in found if f.cause is None), key=lambda f: f.delta)[:MAX_FALLS]
    if left:
        items = []
        for f in left:
            peers = say(lang, "no_peers", crop=crop)
            if f.peer_delta is not None:
                peers = say(lang, "peers", crop=crop, pdelta=K.signed(int(round(f.peer_delta))))
                out.derived.append(K.signed(int(round(f.peer_delta))))
            items.append(say(lang, "fall", delta=K.signed(f.delta), peers=peers, **_values(f, column)))
            K.cite_all(out, [f.a, f.b, *f.peers], (column,))
        out.add(say(lang, "found", pid=pid, index=index, when=when, **hazard, items=K.semicolon(lang).join(items)))
        if is_mown(K.crop_of(series[0])):
            out.add(why_say(lang, "grass_cut"))
        return
    out.add(say(lang, "none", **hazard, pid=pid, when=when, index=index, noise=K.num(K.noise(column))))
    out.derived.append(K.num(K.noise(column)))
    if found:
        # The largest falls, told in date order.
        shown = sorted(sorted(found, key=lambda f: f.delta)[:MAX_FALLS], key=lambda f: f.b.metadata["date"])
        items = []
        for f in shown:
            pdelta = K.signed(int(round(f.peer_delta))) if f.peer_delta is not None else ""
            if pdelta:
                out.derived.append(pdelta)
            items.append(say(lang, f.cause, crop=crop, pdelta=pdelta, **_values(f, column)))
            K.cite_all(out, [f.a, f.b, *f.peers], (column,))
        if len(found) > len(shown):
            out.add(say(lang, "largest", k=len(shown), n=len(found), items=K.semicolon(lang).join(items)))
            out.counts.extend([len(shown), len(found)])
        else:
            out.add(say(lang, "explained", items=K.semicolon(lang).join(items)))
    else:
        a, b = steps[0]
        key = "flat_one" if len(steps) == 1 else "flat"
        out.add(say(lang, key, index=index, n=len(steps), a=a.metadata["date"], b=b.metadata["date"],
                    va=K.num(K.value(a, column)), vb=K.num(K.value(b, column))))
        K.cite_all(out, steps[0] if len(steps) == 1 else [], (column,))
        if len(steps) > 1:
            out.counts.append(len(steps))
    out.add(say(lang, "limit", **hazard))


def _group(out: Composition, lang: str, asked: dict[str, list[Document]], every: dict[str, list[Document]],
           ctx: AnswerContext, column: str, index: str, start: str | None, end: str | None, when: str,
           hazard: dict[str, str]) -> None:
    declined, observed = [], 0
    for pid, series in sorted(asked.items()):
        found, steps = falls(series, _peers_of(pid, series, every), ctx, column, start, end)
        observed += int(bool(steps))
        left = [f for f in found if f.cause is None]
        if left:
            declined.append((pid, min(left, key=lambda f: f.delta)))
    if not declined:
        out.add(say(lang, "group_none", **hazard, when=when, index=index, n=observed))
        out.counts.append(observed)
        out.add(say(lang, "limit", **hazard))
        return
    declined.sort(key=lambda p: p[1].delta)
    items = []
    for pid, f in declined[:MAX_PARCELS]:
        items.append(say(lang, "group_item", pid=pid, **_values(f, column)))
        K.cite_all(out, [f.a, f.b], (column,))
    out.add(say(lang, "group_found", When=when[:1].upper() + when[1:], k=len(declined), n=observed, index=index,
                items=", ".join(items),
                **hazard))
    out.counts.extend([len(declined), observed])
