"""What the archive holds: parcels, crops, acquisition dates, seasons (for one parcel: its usable dates).

Retrieval: the named parcel's records (none for the whole archive: the store's facts suffice).
Composition: the counts first ("19 parcels, 72 acquisitions from 2018-08-04 to 2019-11-27"), then
the crops with their parcel counts, and how many acquisitions were usable.
"""

from __future__ import annotations

from collections import Counter

from assistant.answers import common as K
from assistant.answers.registry import CROP_ASKED
from assistant.answers.turn import AnswerContext, Found, Turn
from assistant.compose import Composition

TEXTS = {
    "en": {
        "head": "The archive holds {n} parcels and {m} acquisition dates, from {first} to {last} ({years}).",
        "crops": "Crops: {items}.",
        "crop_item": "{crop} ({n})",
        "crop_count": "The archive holds {n} {crop} parcels: {ids}.",
        "crop_count_one": "The archive holds 1 {crop} parcel: {ids}.",
        "parcels": "Parcels: {ids}.",
        "parcel": ("Parcel {pid}{crop} has {m} acquisitions from {first} to {last}; {u} are usable, the others "
                   "are clouded, snowy or suspect."),
        "usable_dates": "Usable dates: {dates}.",
        "crop_of": "Parcel {pid} is {crop} (the parcels file's crop label).",
        "crop_unknown": "The parcels file gives no crop for parcel {pid}.",
    },
    "fr": {
        "head": "L'archive contient {n} parcelles et {m} dates d'acquisition, du {first} au {last} ({years}).",
        "crops": "Cultures : {items}.",
        "crop_item": "{crop} ({n})",
        "crop_count": "L'archive contient {n} parcelles de {crop} : {ids}.",
        "crop_count_one": "L'archive contient 1 parcelle de {crop} : {ids}.",
        "parcels": "Parcelles : {ids}.",
        "parcel": ("La parcelle {pid}{crop} a {m} acquisitions du {first} au {last} ; {u} sont exploitables, les "
                   "autres sont nuageuses, enneigées ou suspectes."),
        "usable_dates": "Dates exploitables : {dates}.",
        "crop_of": "La parcelle {pid} est en {crop} (culture donnée par le fichier des parcelles).",
        "crop_unknown": "Le fichier des parcelles ne donne pas de culture pour la parcelle {pid}.",
    },
}




def say(lang: str, key: str, **values: object) -> str:
    return TEXTS.get(lang, TEXTS["en"])[key].format(**values)


def retrieve(turn: Turn, ctx: AnswerContext) -> Found:
    plan = turn.plan
    if plan is not None and plan.places.parcel_ids:
        return Found(records=tuple(ctx.records(parcel_ids=list(plan.places.parcel_ids[:5]))))
    return Found()


def compose(turn: Turn, ctx: AnswerContext) -> Composition:
    out = Composition()
    lang = turn.lang
    dates = ctx.dates()
    if not dates:
        from assistant.answers import checks
        checks.preamble(turn, ctx, out)
        return out
    if turn.found.records:
        crop_asked = CROP_ASKED.search(K.fold_text(turn.question)) is not None
        for pid, docs in K.by_parcel(turn.found.records).items():
            good = [d for d in docs if K.usable(d, ctx.suspects)]
            crop = K.crop_of(docs[0])
            if crop_asked:  # "What crop is parcel 14?": the crop first
                out.add(say(lang, "crop_of", pid=pid, crop=K.crop_name(crop, lang)) if crop
                        else say(lang, "crop_unknown", pid=pid))
            out.add(say(lang, "parcel", pid=pid, crop=f" ({K.crop_name(crop, lang)})" if crop else "", m=len(docs),
                        first=docs[0].metadata["date"], last=docs[-1].metadata["date"], u=len(good)))
            out.counts += [len(docs), len(good)]
            if good:
                out.add(say(lang, "usable_dates", dates=", ".join(d.metadata["date"] for d in good)))
                K.cite_all(out, good, ())
        return out
    plan = turn.plan
    if plan is not None and plan.places.attributes:
        from assistant.answers.groups import members

        group = members(turn, ctx)
        crop = " / ".join(K.crop_name(v, lang) for vals in plan.places.attributes.values() for v in vals)
        out.add(say(lang, "crop_count_one" if len(group) == 1 else "crop_count", n=len(group), crop=crop,
                    ids=", ".join(group)))
        out.counts.append(len(group))
        return out
    ids = ctx.context.parcel_ids
    years = sorted({d[:4] for d in dates})
    out.add(say(lang, "head", n=len(ids), m=len(dates), first=dates[0], last=dates[-1],
                years=", ".join(years)))
    out.counts += [len(ids), len(dates)]
    crops = Counter(attrs.get(col) for attrs in ctx.context.parcel_attributes.values()
                    for col in attrs if col in ("attr_crop_name", "attr_crop"))
    if crops:
        out.add(say(lang, "crops", items=", ".join(
            say(lang, "crop_item", crop=K.crop_name(c, lang), n=n) for c, n in crops.most_common())))
        out.counts += list(crops.values())
    elif len(ids) <= 30:
        out.add(say(lang, "parcels", ids=", ".join(ids)))
    return out
