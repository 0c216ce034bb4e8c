"""Similar parcels: the records whose imagery embedding is nearest to the parcel's observation,
optionally within a crop (the question's crop words) or a window (the question's dates).

Retrieval: the reference parcel's usable observation (in the window when one is asked, else the
latest on or before the reference date), then the k nearest usable records of other parcels
(`SimilarRetriever`, cosine), restricted to the crop and the window.
Composition: the reference first, then the parcels in order with their distance and NDVI.
"""

from __future__ import annotations

import re

from assistant.answers import checks
from assistant.answers import common as K
from assistant.answers.turn import AnswerContext, Found, Turn
from assistant.compose import Composition

_ONE = re.compile(r"\b(?:which|what)\s+(?:parcel|field|plot)\s+(?:is|was|looks?|looked)\b|\bthe\s+most\s+similar\s+(?:parcel|field)\b(?!s)|"
                  r"\bquelle\s+(?:parcelle|champ)\s+(?:est|ressemble)\b")

_HOW_MANY = re.compile(r"\b(?:top|k\s*=)\s*\d+|\b(?:\d+|two|three|four|five|six|seven|eight|nine|ten|deux|trois|quatre|cinq)"
                       r"\s+(?:most\s+|plus\s+)?(?:similar|closest|nearest|parcels|fields|parcelles|champs)\b")

TEXTS = {
    "en": {
        "head": "The parcels whose imagery looked most like {pid} on {date} ({values}){within} are:",
        "head_one": "The parcel whose imagery looked most like {pid} on {date} ({values}){within} is",
        "within_crop": ", among the {crop} parcels",
        "within_window": " in {label}",
        "item": "{pid} on {date} (distance {distance}, {values})",
        "pair": "The imagery of {b} on {db} ({vb}) was at distance {distance} from {a}'s on {da} ({va}).",
        "none": "No usable record of another parcel matches those filters.",
        "note": "Distance is between image embeddings: 0 is identical; it says the images look alike, not that the crops are the same.",
        "no_ref": "Which parcel should the others look like? Name one, for example: {examples}.",
    },
    "fr": {
        "head": "Les parcelles dont l'image ressemblait le plus à {pid} le {date} ({values}){within} sont :",
        "head_one": "La parcelle dont l'image ressemblait le plus à {pid} le {date} ({values}){within} est",
        "within_crop": ", parmi les parcelles de {crop}",
        "within_window": " en {label}",
        "item": "{pid} le {date} (distance {distance}, {values})",
        "pair": "L'image de {b} le {db} ({vb}) était à une distance de {distance} de celle de {a} le {da} ({va}).",
        "none": "Aucun enregistrement exploitable d'une autre parcelle ne correspond à ces filtres.",
        "note": "La distance compare les empreintes des images : 0 est identique ; elle dit que les images se ressemblent, pas que les cultures sont les mêmes.",
        "no_ref": "À quelle parcelle les autres doivent-elles ressembler ? Nommez-en une, par exemple : {examples}.",
    },
}


def say(lang: str, key: str, **values: object) -> str:
    return TEXTS.get(lang, TEXTS["en"])[key].format(**values)


def retrieve(turn: Turn, ctx: AnswerContext) -> Found:
    plan = turn.plan
    if not plan.places.parcel_ids:
        return Found()
    pid = plan.places.parcel_ids[0]
    series = ctx.records(parcel_ids=[pid])
    window = plan.compare_windows[0] if plan.compare_windows else plan.window
    start = window.start.isoformat() if window else None
    end = window.end.isoformat() if window else plan.reference_date.isoformat()
    good = [d for d in series if K.usable(d, ctx.suspects) and (start is None or d.metadata["date"] >= start)
            and d.metadata["date"] <= end]
    if not good:
        return Found(records=tuple(d for d in series if (start is None or d.metadata["date"] >= start)
                                   and d.metadata["date"] <= end)[-1:], extra=tuple(series))
    focus = good[-1]
    k = plan.k or 5
    folded = K.fold_text(turn.question)
    if not _HOW_MANY.search(folded) and _ONE.search(folded):
        k = 1  # "which parcel is most similar": one
    others = list(plan.places.parcel_ids[1:])
    if others:
        # "How similar are A and B": B's record on A's date (else in the window, else any date).
        for lo, hi in ((focus.metadata["date"], focus.metadata["date"]), (start, end), (None, None)):
            hits = ctx.similar(focus.metadata["record_id"], len(others), date_from=lo, date_to=hi, parcel_ids=others)
            if hits:
                break
        return Found(records=(focus,), extra=tuple(series), similar=tuple(hits), focus=focus)
    hits = ctx.similar(focus.metadata["record_id"], k, date_from=start, date_to=end if window else None,
                       attributes=plan.places.attributes or None)
    hits = [h for h in hits if h.metadata["date"] not in ctx.suspects]
    return Found(records=(focus,), extra=tuple(series), similar=tuple(hits), focus=focus)


def compose(turn: Turn, ctx: AnswerContext) -> Composition:
    out = Composition()
    lang, plan = turn.lang, turn.plan
    if checks.preamble(turn, ctx, out):
        return out
    if not plan.places.parcel_ids:
        out.add(say(lang, "no_ref", examples=", ".join(ctx.context.parcel_ids[:3])))
        return out
    found = turn.found
    if found.focus is None:
        if found.records:
            checks.not_usable(out, lang, found.records[-1], found.extra, ctx.suspects)
        return out
    focus = found.focus
    if len(plan.places.parcel_ids) > 1:
        out.cite(focus, ("ndvi_mean",))
        if not found.similar:
            out.add(say(lang, "none"))
        for d in found.similar:
            out.add(say(lang, "pair", a=focus.metadata["parcel_id"], da=focus.metadata["date"], b=d.metadata["parcel_id"],
                        db=d.metadata["date"], distance=f"{d.metadata['distance']:.3f}",
                        va=K.values(focus, ("ndvi_mean",)), vb=K.values(d, ("ndvi_mean",))))
            out.cite(d, ("ndvi_mean",))
            out.similar.append({"parcel_id": d.metadata["parcel_id"], "date": d.metadata["date"],
                                "distance": d.metadata["distance"], "score": d.metadata["score"],
                                "record_id": d.metadata["record_id"]})
        out.add(say(lang, "note"))
        return out
    within = ""
    crops = [v for vals in plan.places.attributes.values() for v in vals]
    if crops:
        within += say(lang, "within_crop", crop=" / ".join(K.crop_name(c, lang) for c in crops))
    window = plan.compare_windows[0] if plan.compare_windows else plan.window
    # A window of the focus date alone is already said by "on <date>".
    if window is not None and not (window.start == window.end and window.start.isoformat() == focus.metadata["date"][:10]):
        within += say(lang, "within_window", label=window.label)
    out.add(say(lang, "head_one" if len(found.similar) == 1 else "head", pid=focus.metadata["parcel_id"], date=focus.metadata["date"],
                values=K.values(focus, ("ndvi_mean",)), within=within))
    out.cite(focus, ("ndvi_mean",))
    if not found.similar:
        out.sentences[-1] = out.sentences[-1].rstrip(":") + "."
        out.add(say(lang, "none"))
        return out
    items = []
    for d in found.similar:
        items.append(say(lang, "item", pid=d.metadata["parcel_id"], date=d.metadata["date"],
                         distance=f"{d.metadata['distance']:.3f}", values=K.values(d, ("ndvi_mean",))))
        out.cite(d, ("ndvi_mean",))
        out.similar.append({"parcel_id": d.metadata["parcel_id"], "date": d.metadata["date"],
                            "distance": d.metadata["distance"], "score": d.metadata["score"],
                            "record_id": d.metadata["record_id"]})
    out.sentences[-1] += " " + (" ; " if lang == "fr" else "; ").join(items) + "."
    out.add(say(lang, "note"))
    return out
