"""A question whose kind or subject is not understood: a short answer saying what can be asked,
citing nothing (never an answer to another question)."""

from __future__ import annotations

from assistant.answers import checks
from assistant.answers.turn import AnswerContext, Found, Turn
from assistant.compose import Composition

TEXTS = {
    "en": {
        "off_topic": ("I answer questions about the {n} parcels and {m} acquisitions in this store ({first} to {last}): "
                      "a parcel on a date or over a month, its past seasons, its crop calendar (green-up, peak, "
                      "harvest), why a value changed, cloudy or unusable dates, groups of parcels, similar parcels. "
                      "For example: \"How is parcel {pid} doing on {example}?\" or \"When was parcel {pid} harvested?\""),
        "no_place": ("Which parcel do you mean? This store holds {n} parcels, for example: {examples}; you can also "
                     "ask about a crop (\"the {crop} parcels\") or all parcels."),
        "unused": "I did not understand {words}.",
    },
    "fr": {
        "off_topic": ("Je réponds aux questions sur les {n} parcelles et {m} acquisitions de cette base (du {first} au {last}) : "
                      "une parcelle à une date ou sur un mois, ses saisons passées, son calendrier cultural (levée, "
                      "pic, récolte), la cause d'un changement, les dates nuageuses ou inexploitables, des groupes de "
                      "parcelles, les parcelles semblables. Par exemple : « Comment va la parcelle {pid} le {example} ? » "
                      "ou « Quand la parcelle {pid} a-t-elle été récoltée ? »"),
        "no_place": ("De quelle parcelle parlez-vous ? Cette base contient {n} parcelles, par exemple : {examples} ; "
                     "vous pouvez aussi demander une culture (« les parcelles de {crop} ») ou toutes les parcelles."),
        "unused": "Je n'ai pas compris {words}.",
    },
}


def say(lang: str, key: str, **values: object) -> str:
    return TEXTS.get(lang, TEXTS["en"])[key].format(**values)


def retrieve(turn: Turn, ctx: AnswerContext) -> Found:
    return Found()


def compose(turn: Turn, ctx: AnswerContext) -> Composition:
    out = Composition()
    if checks.preamble(turn, ctx, out):
        out.cited.clear()
        return out
    lang, plan = turn.lang, turn.plan
    dates = ctx.dates()
    ids = ctx.context.parcel_ids
    if plan is not None and plan.intent != "unknown" and plan.places.empty:
        from assistant.answers.common import crop_name

        crops = [v for col, vals in ctx.context.attributes.items() if "crop" in col for v in vals]
        out.add(say(lang, "no_place", n=len(ids), examples=", ".join(ids[:3]),
                    crop=crop_name(crops[0], lang) if crops else ("maize" if lang == "en" else "maïs")))
        out.counts.append(len(ids))
    else:
        if plan is not None and plan.unresolved:
            out.add(say(lang, "unused", words=", ".join(f"'{w}'" for w in plan.unresolved[:5])))
        pid = ids[0] if ids else "?"
        out.add(say(lang, "off_topic", n=len(ids), m=len(dates), first=dates[0], last=dates[-1], pid=pid,
                    example=_example_date(ctx, pid, dates[-1])))
        out.counts += [len(ids), len(dates)]
    return out


def _example_date(ctx: AnswerContext, pid: str, newest: str) -> str:
    """The example parcel's newest usable date: an example must not lead to a clouded one."""
    from assistant.answers.common import good

    usable = good(ctx.records(parcel_ids=[pid]), ctx.suspects, "ndvi_mean") if pid != "?" else []
    return usable[-1].metadata["date"] if usable else newest
