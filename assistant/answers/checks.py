"""Answers every kind gives the same way: nothing in the store, a place it does not hold, no
acquisition in the window asked, and the nearest usable dates of an observation that is not usable.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence

from langchain_core.documents import Document

from assistant.answers import common as K
from assistant.answers.turn import AnswerContext, Turn
from assistant.compose import Composition
from indexer.observations import SuspectDate

TEXTS = {
    "en": {
        "empty_store": "The store holds no records yet, so there is nothing to answer from. Index imagery into it first.",
        "unknown_parcel": "Nothing in this store is called {names}. It holds {n} parcels, for example: {examples}.",
        "far_point": ("No parcel of this store lies at {names}: the nearest, {pid}, is {km} km away. It holds {n} "
                      "parcels, for example: {examples}."),
        "known_values": "Parcel attributes it knows: {values}.",
        "unknown_some": "Nothing in this store is called {names}; the answer covers the rest.",
        "no_acquisition": ("No acquisition in {label} ({start} to {end}). The archive runs from {first} to {last}; "
                           "the nearest acquisitions are {nearest}."),
        "no_acquisition_day": ("No image was taken on {start}. The archive runs from {first} to {last}; "
                               "the nearest acquisitions are {nearest}."),
        "unusable": "Parcel {pid} has no usable observation on {date}: {why} ({cloud} % cloud, {valid} % valid pixels).",
        "nearest_usable": "Nearest usable dates for {pid}: {dates}.",
        "no_usable_at_all": "Parcel {pid} has no usable observation in the store.",
        "suspect": ("The acquisition of {date} is suspect: values jump across the whole scene against {previous} "
                    "and {next} ({n} parcels compared) and come back; parcel {pid}: {values}. Read it as haze or "
                    "thin cloud, not as the crop's condition."),
        "small": ("Parcel {pid} covers only {n} pixels of 10 m: too few for a reliable value (most of them straddle "
                  "its edge), so its values are not read as the crop's condition."),
        "reading": "Reading {items}.",
        "reading_item": "'{said}' as {meant}",
        "snapped": "No image was taken on {asked}; this is about the nearest, {used} ({days} {unit} {side}).",
        "not_a_date": "{expr} is not in the calendar, so this answer does not use it.",
        "day": "day", "days": "days", "before": "before", "after": "after",
    },
    "fr": {
        "empty_store": "La base ne contient encore aucun enregistrement : rien à répondre. Indexez-y d'abord des images.",
        "unknown_parcel": "Rien dans cette base ne s'appelle {names}. Elle contient {n} parcelles, par exemple : {examples}.",
        "far_point": ("Aucune parcelle de cette base ne se trouve en {names} : la plus proche, {pid}, est à {km} km. Elle "
                      "contient {n} parcelles, par exemple : {examples}."),
        "known_values": "Attributs de parcelle connus : {values}.",
        "unknown_some": "Rien dans cette base ne s'appelle {names} ; la réponse porte sur le reste.",
        "no_acquisition": ("Aucune acquisition en {label} ({start} au {end}). L'archive va du {first} au {last} ; "
                           "les acquisitions les plus proches sont {nearest}."),
        "no_acquisition_day": ("Aucune image n'a été prise le {start}. L'archive va du {first} au {last} ; "
                               "les acquisitions les plus proches sont {nearest}."),
        "unusable": "La parcelle {pid} n'a aucune observation exploitable le {date} : {why} ({cloud} % de nuages, {valid} % de pixels valides).",
        "nearest_usable": "Dates exploitables les plus proches pour {pid} : {dates}.",
        "no_usable_at_all": "La parcelle {pid} n'a aucune observation exploitable dans la base.",
        "suspect": ("L'acquisition du {date} est suspecte : les valeurs sautent sur toute la scène par rapport au "
                    "{previous} et au {next} ({n} parcelles comparées) puis reviennent ; parcelle {pid} : {values}. "
                    "C'est de la brume ou un voile nuageux, pas l'état de la culture."),
        "small": ("La parcelle {pid} ne couvre que {n} pixels de 10 m : trop peu pour une valeur fiable (la plupart "
                  "chevauchent sa bordure), ses valeurs ne sont donc pas lues comme l'état de la culture."),
        "reading": "Lu {items}.",
        "reading_item": "« {said} » comme {meant}",
        "snapped": "Aucune image n'a été prise le {asked} ; la réponse porte sur la plus proche, celle du {used} ({days} {unit} {side}).",
        "not_a_date": "{expr} n'existe pas dans le calendrier : cette réponse n'en tient pas compte.",
        "day": "jour", "days": "jours", "before": "avant", "after": "après",
    },
}


#: The parser's note for a date or week that does not exist (`assistant.parsing.dates`).
_NOT_A_DATE = re.compile(r"not a (?:date|week): '(.+)'$")

def say(lang: str, key: str, **values: object) -> str:
    return TEXTS.get(lang, TEXTS["en"])[key].format(**values)


def window_bounds(turn: Turn) -> tuple[str | None, str | None]:
    """(start, end) ISO of the plan's window; without one, everything up to the reference date."""
    plan = turn.plan
    if plan is None:
        return None, None
    if plan.window is not None:
        return plan.window.start.isoformat(), plan.window.end.isoformat()
    return None, plan.reference_date.isoformat()


def preamble(turn: Turn, ctx: AnswerContext, out: Composition) -> bool:
    """Say what stops an answer before it starts; True when nothing more can be said."""
    lang, plan = turn.lang, turn.plan
    dates = ctx.dates()
    if not dates:
        out.add(say(lang, "empty_store"))
        return True
    if plan is None:
        return False
    places = plan.places
    ids = ctx.context.parcel_ids
    if places.unresolved and not places.parcel_ids and not places.attributes:
        names = ", ".join(f"'{u}'" for u in places.unresolved)
        if places.nearest is not None:
            # A point away from every parcel: how far the nearest one is, not "nothing is called".
            pid, metres = places.nearest
            km = f"{metres / 1000:.1f}"
            out.derived.append(km)
            out.add(say(lang, "far_point", names=names, pid=pid, km=km, n=len(ids), examples=", ".join(ids[:5])))
        else:
            out.add(say(lang, "unknown_parcel", names=names, n=len(ids), examples=", ".join(ids[:5])))
        out.counts.append(len(ids))
        values = ctx.context.attributes
        if values:
            out.add(say(lang, "known_values", values=K.semicolon(lang).join(
                f"{k.removeprefix('attr_')}: {', '.join(v[:12]).lower()}" for k, v in values.items()
                # Words people would ask with (crops, land cover), not codes or identifiers.
                if v and all(not any(c.isdigit() for c in str(x)) for x in v) and len(v) <= 30)))
        return True
    if places.unresolved:
        out.add(say(lang, "unknown_some", names=", ".join(f"'{u}'" for u in places.unresolved)))
    if plan.window is not None:
        start, end = plan.window.start.isoformat(), plan.window.end.isoformat()
        if not any(start <= d <= end for d in dates):
            nearest = sorted(dates, key=lambda d: abs((dt.date.fromisoformat(d) - plan.window.start).days))[:3]
            key = "no_acquisition" if start != end else "no_acquisition_day"
            out.add(say(lang, key, label=plan.window.label, start=start, end=end, first=dates[0],
                        last=dates[-1], nearest=", ".join(sorted(nearest))))
            return True
    return False


def readings(turn: Turn, out: Composition) -> None:
    """Echo the misspellings the parser read ("Reading 'jully' as July.")."""
    plan = turn.plan
    if plan is not None and plan.corrections:
        out.add(say(turn.lang, "reading", items=", ".join(
            say(turn.lang, "reading_item", said=a, meant=b) for a, b in plan.corrections)))


def too_small(out: Composition, lang: str, doc: Document) -> None:
    """Say that `doc`'s parcel covers too few pixels for a reliable value."""
    m = doc.metadata
    out.add(say(lang, "small", pid=m["parcel_id"], n=m["n_pixels"]))
    out.counts.append(m["n_pixels"])
    out.derived.append("10")  # the pixel size
    out.cite(doc, ())


def not_usable(out: Composition, lang: str, doc: Document, parcel_docs: Sequence[Document],
               suspects: Mapping[str, SuspectDate], column: str = "ndvi_mean") -> None:
    """Why `doc` is not usable, and the parcel's nearest usable observations."""
    m = doc.metadata
    obs = K.observation(doc, suspects)
    suspect = obs.suspect
    if obs.status == "too_small" or any(K.status(d, suspects) == "too_small" for d in parcel_docs):
        too_small(out, lang, doc)
        return
    if suspect is not None:
        around = [d for d in parcel_docs if d.metadata["date"] in (suspect.previous, suspect.next)
                  and d.metadata.get(column) is not None]
        values = f"{K.label_of(column)} {K.num(m[column])} on {m['date']}" if lang == "en" else \
            f"{K.label_of(column)} {K.num(m[column])} le {m['date']}"
        if around:
            sep = " against " if lang == "en" else " contre "
            values += sep + ", ".join(f"{K.num(d.metadata[column])} ({d.metadata['date']})" for d in around)
        out.add(say(lang, "suspect", date=m["date"], previous=suspect.previous, next=suspect.next,
                    n=suspect.n_parcels, pid=m["parcel_id"], values=values))
        out.counts.append(suspect.n_parcels)
        K.cite_all(out, [doc, *around], (column,))
    else:
        out.add(say(lang, "unusable", pid=m["parcel_id"], date=m["date"],
                    why=K.reason_words(m.get("invalid_reason") or "unusable", lang),
                    cloud=K.pct(m.get("cloud_fraction")), valid=K.pct(m.get("valid_fraction"))))
        out.cite(doc, ())
    near = nearest_usable(parcel_docs, K.day(doc), suspects, column)
    if near:
        out.add(say(lang, "nearest_usable", pid=m["parcel_id"], dates=", ".join(
            f"{d.metadata['date']} ({K.label_of(column)} {K.num(d.metadata[column])})" for d in near)))
        K.cite_all(out, near, (column,))
    elif not any(K.usable(d, suspects) for d in parcel_docs):
        out.add(say(lang, "no_usable_at_all", pid=m["parcel_id"]))


def nearest_usable(docs: Sequence[Document], when: dt.date, suspects: Mapping[str, SuspectDate],
                   column: str = "ndvi_mean", n: int = 2) -> list[Document]:
    """The `n` usable observations nearest to `when` (one before and one after when both exist)."""
    series = K.good(docs, suspects, column)
    before = [d for d in series if K.day(d) < when]
    after = [d for d in series if K.day(d) > when]
    picked = before[-1:] + after[:1]
    if len(picked) < n:
        rest = sorted((d for d in series if d not in picked), key=lambda d: abs((K.day(d) - when).days))
        picked += rest[:n - len(picked)]
    return sorted(picked, key=lambda d: d.metadata["date"])


def not_dates(turn: Turn, out: Composition) -> None:
    """Say first that a date or week the question wrote does not exist ("31/02/2019", "week 53 of
    2019"): the parser set it aside (its notes), and the answer must not look like an answer to it."""
    plan, lang = turn.plan, turn.lang
    if plan is None:
        return
    bad = [m.group(1) for n in plan.notes if (m := _NOT_A_DATE.match(n))]
    for expr in reversed(bad):
        out.sentences.insert(0, say(lang, "not_a_date", expr=f"'{expr}'"))


def snapped(turn: Turn, out: Composition) -> None:
    """Say first which image the answer is about when the day asked had none
    (`assistant.plan.snap_to_acquisition` moved the window to the nearest acquisition)."""
    plan, lang = turn.plan, turn.lang
    if plan is None or plan.asked_window is None or plan.window is None:
        return
    asked, used = plan.asked_window.start, plan.window.start
    days = abs((used - asked).days)
    out.sentences.insert(0, say(lang, "snapped", asked=asked.isoformat(), used=used.isoformat(), days=days,
                                unit=say(lang, "day" if days == 1 else "days"),
                                side=say(lang, "before" if used < asked else "after")))
    out.counts.append(days)
