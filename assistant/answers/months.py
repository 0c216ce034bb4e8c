"""A parcel's (or a group's) months ranked: "What was the best month for parcel 2 in 2019?", "quel
mois la parcelle 5 était-elle la plus sèche ?", "which month was best for the maize parcels?".

Retrieval: the parcel's records in the window (without one: the year up to the reference date); with
no parcel named, those of every parcel of the group asked (a crop, or all of them), pooled.
Composition: the mean of the index asked (NDVI by default) over each month's usable observations,
the best month first (the highest value; the lowest when the question asks for the worst, lowest or
driest month), then every month ranked with its number of usable observations, and the months with
none named apart. Only usable observations count (`common.usable`): a clouded month is not a bad one.
"""

from __future__ import annotations

import datetime as dt
import re
import statistics

from assistant.answers import checks
from assistant.answers import common as K
from assistant.answers.groups import members
from assistant.answers.observe import subject
from assistant.answers.turn import AnswerContext, Found, Turn
from assistant.compose import Composition

#: The question asks for the low end: the worst, lowest, driest month.
_LOW = re.compile(r"\b(?:worst|lowest|least|driest|weakest|poorest|pire|plus\s+(?:bas|basse|faible|sec|seche)|"
                  r"moins\s+bon\w*|le\s+moins|la\s+moins)\b")
#: Without a window: the year up to the reference date.
DEFAULT_DAYS = 365

TEXTS = {
    "en": {
        "best": "Parcel {pid}'s {which} month for {index} {when} was {month}: mean {v} over {n} usable observation{s}.",
        "best_group": ("The {what}' {which} month for {index} {when} was {month}: mean {v} over {n} usable "
                       "observation{s} of {k} parcel{ks}."),
        "group_crop": "{crop} parcels", "group_all": "parcels",
        "which_high": "best", "which_low": "lowest", "lead_high": "", "lead_low": "",
        "ranked": "By month, {order}: {items}.",
        "order_high": "highest first", "order_low": "lowest first",
        "item": "{month} {v} ({n} obs.)",
        "empty": "Months with no usable observation: {months}.",
        "none": "Parcel {pid} has no usable observation {when}, so its months cannot be ranked.",
        "in": "in {label}", "year": "over the year to {end}",
    },
    "fr": {
        "best": ("{lead} de la parcelle {pid} pour le {index} {when} était {month} : moyenne de {v} sur "
                 "{n} observation{s} exploitable{s}."),
        "best_group": ("{lead} des {what} pour le {index} {when} était {month} : moyenne de {v} sur {n} "
                       "observation{s} exploitable{s} de {k} parcelle{ks}."),
        "group_crop": "parcelles de {crop}", "group_all": "parcelles",
        "which_high": "le meilleur", "which_low": "le plus bas",
        "lead_high": "Le meilleur mois", "lead_low": "Le mois le plus bas",
        "ranked": "Par mois, {order} : {items}.",
        "order_high": "du plus haut au plus bas", "order_low": "du plus bas au plus haut",
        "item": "{month} {v} ({n} obs.)",
        "empty": "Mois sans observation exploitable : {months}.",
        "none": "La parcelle {pid} n'a aucune observation exploitable {when} : ses mois ne peuvent pas être classés.",
        "in": "en {label}", "year": "sur l'année jusqu'au {end}",
    },
}


def say(lang: str, key: str, **values: object) -> str:
    return TEXTS.get(lang, TEXTS["en"])[key].format(**values)


def _bounds(turn: Turn, records) -> tuple[str, str]:
    """The window asked; without one, the year up to the parcels' own latest record (a store may
    hold other areas' later dates) or the reference date, whichever comes first."""
    plan = turn.plan
    if plan.window is not None:
        return plan.window.start.isoformat(), plan.window.end.isoformat()
    end = plan.reference_date.isoformat()
    if records:
        end = min(end, max(d.metadata["date"] for d in records))
    return (dt.date.fromisoformat(end) - dt.timedelta(days=DEFAULT_DAYS - 1)).isoformat(), end


def _parcels(turn: Turn, ctx: AnswerContext) -> list[str]:
    pid = subject(turn, ctx)
    return [pid] if pid is not None else members(turn, ctx)


def retrieve(turn: Turn, ctx: AnswerContext) -> Found:
    ids = _parcels(turn, ctx)
    if not ids:
        return Found()
    records = ctx.records(parcel_ids=ids)
    start, end = _bounds(turn, records)
    return Found(records=tuple(d for d in records if start <= d.metadata["date"] <= end))


def compose(turn: Turn, ctx: AnswerContext) -> Composition:
    out = Composition()
    lang, plan = turn.lang, turn.plan
    if checks.preamble(turn, ctx, out):
        return out
    pid = subject(turn, ctx)
    if not _parcels(turn, ctx):
        from assistant.answers import clarify
        return clarify.compose(turn, ctx)
    column = K.column_of(plan.index)
    start, end = _bounds(turn, turn.found.records)
    when = say(lang, "in", label=plan.window.label) if plan.window is not None else say(lang, "year", end=end)
    docs = list(turn.found.records)
    by_month: dict[tuple[int, int], list] = {}
    for d in K.good(docs, ctx.suspects, column):
        day = K.day(d)
        by_month.setdefault((day.year, day.month), []).append(d)
    if not by_month:
        out.add(say(lang, "none", pid=pid or ", ".join(_parcels(turn, ctx)[:8]), when=when))
        return out
    low = bool(_LOW.search(K.fold_text(turn.question)))
    years = {y for y, _ in by_month} | {int(start[:4]), int(end[:4])}

    def name(y: int, m: int) -> str:
        return K.month_label(lang, m, y if len(years) > 1 else None)

    means = {key: statistics.fmean(K.value(d, column) for d in items) for key, items in by_month.items()}
    ranked = sorted(means, key=lambda key: (means[key] if low else -means[key], key))
    for items in by_month.values():
        K.cite_all(out, items, (column,))
    top = ranked[0]
    n = len(by_month[top])
    values = dict(which=say(lang, "which_low" if low else "which_high"), lead=say(lang, "lead_low" if low else "lead_high"),
                  index=K.label_of(column), when=when,
                  month=name(*top), v=K.mean_of(out, [K.value(d, column) for d in by_month[top]]), n=n,
                  s="" if n == 1 else "s")
    if pid is not None:
        out.add(say(lang, "best", pid=pid, **values))
    else:
        k = len({d.metadata["parcel_id"] for d in by_month[top]})
        crops = sorted({K.crop_of(d) for d in docs} - {None})
        what = (say(lang, "group_crop", crop=K.crop_name(crops[0], lang)) if len(crops) == 1 and turn.plan.places.attributes
                else say(lang, "group_all"))
        out.add(say(lang, "best_group", what=what, k=k, ks="" if k == 1 else "s", **values))
        out.counts.append(k)
    out.counts.append(n)
    if len(ranked) > 1:
        items = []
        for key in ranked:
            vals = [K.value(d, column) for d in by_month[key]]
            items.append(say(lang, "item", month=name(*key), v=K.mean_of(out, vals), n=len(vals)))
            out.counts.append(len(vals))
        out.add(say(lang, "ranked", order=say(lang, "order_low" if low else "order_high"), items=", ".join(items)))
    # Months with images, none of them usable (clouded, snowy, suspect): not bad months, unseen ones.
    acquired = sorted({(int(d.metadata["date"][:4]), int(d.metadata["date"][5:7])) for d in docs})
    empty = [name(y, m) for y, m in acquired if (y, m) not in by_month]
    if empty:
        out.add(say(lang, "empty", months=", ".join(empty)))
    return out
