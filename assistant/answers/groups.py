"""A crop, an area or all parcels: aggregates, rankings, thresholds, and parcels behind their peers.

Retrieval: every record of the group's parcels in the window (without a window: up to the
reference date); for "behind their peers", the records of every parcel of the same crops.
Each parcel's value, documented once: on a single date, that observation; over a window, the mean
of its usable observations there (the answer says so); without a window, its latest usable
observation. Unusable observations never count (cloud, snow, a suspect scene, a parcel too small:
`indexer.observations`), and the answer says how many parcels had none.
Composition, by what was asked:
* a threshold ("NDVI below 0.3") or a class ("water-stressed"): the parcels with an observation
  meeting it (their most extreme one), out of how many were observed;
* a ranking ("top 3", "the lowest"): exactly the number asked, best first (or lowest first);
* parcels behind their peers: a parcel whose value is more than `BEHIND_MARGIN` below the median of
  the other parcels of its crop on the same dates;
* otherwise aggregates: mean, median, range (with the parcels at both ends) and the count.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter

import pandas as pd
from langchain_core.documents import Document

from assistant.answers import checks
from assistant.answers import common as K
from assistant.answers.registry import one_parcel_filtered
from assistant.answers.turn import AnswerContext, Found, Turn
from assistant.compose import Composition
from indexer.observations import MIN_RELIABLE_PIXELS
from indexer.analysis import RULE_BY_ASPECT, classify
from indexer.phenology import is_mown, one_date_dips

#: A parcel is behind its crop's peers when its value is this much below their median (twice the
#: largest index noise of `indexer.seasons.NOISE`, rounded up: a gap two clear observations a few
#: days apart do not show).
BEHIND_MARGIN = 0.1
#: Parcels named at most in the list of those with no crop peer to compare with.
MAX_ALONE = 8
_BEHIND = re.compile(r"\b(?:behind|lagg?ing|lag|peers?|en\s+retard|retard\w*|below\s+(?:the\s+)?(?:others|average|peers)|"
                     r"worse\s+than\s+(?:the\s+)?(?:others|peers)|moins\s+bien\s+que|underperform\w*|sous-perform\w*|"
                     # "which parcel should I visit first?": the laggards ("which need attention?" ranks the
                     # weakest first)
                     r"visit\w*|look\s+at\s+first|check\s+first|visiter|aller\s+voir)\b")
_ONE = re.compile(r"\b(?:highest|lowest|greenest|best|worst|driest|weakest|strongest)\s+(?:\w+\s+){0,2}(?:parcel|field|plot)\b(?!s)|"
                  r"\b(?:which|what|quelle?)\s+(?:\w+\s+){0,2}(?:parcel|field|plot|parcelle|champ)\b(?!s)|"
                  r"\b(?:the|la|le)\s+(?:\w+\s+){0,2}(?:parcel|field|plot|parcelle|champ)\b(?!s)")
#: "the biggest drop", "la plus forte baisse": parcels ranked by their largest change between two
#: consecutive usable observations in the window (a fall unless a rise is asked).
_CHANGE = re.compile(r"\b(?:biggest|largest|greatest|sharpest|steepest|most)\s+(?:(?:ndvi|ndmi|ndwi|savi|evi|ndre|moisture|"
                     r"vigou?r|greenness|index)\s+)?(?P<what>drop|fall|decline|decrease|loss|rise|increase|gain|growth)\b|"
                     r"\bplus\s+(?:forte|grande)\s+(?P<fr>baisse|chute|hausse|augmentation)\b|"
                     r"\b(?P<verb>dropped|fell|declined|rose|increased|grew|greened(?:\s+up)?)\s+(?:the\s+)?most\b|"
                     r"\b(?P<any>changed?\s+(?:the\s+)?most|(?:biggest|largest|greatest)\s+change|a\s+le\s+plus\s+change|"
                     r"plus\s+(?:fort|grand)\s+changement)\b")
_BY_CROP = re.compile(r"\b(?:which|what|quelles?)\s+(?:\w+\s+)?(?:crops|cultures|crop\s+types)\b|\bby\s+crop\b|\bpar\s+culture\b|"
                      r"\b(?:which|what)\s+crop\s+(?:type\s+)?(?:had|has|have|shows?|showed|was|is|did|does|got)\b|"
                      r"\bquelle\s+culture\s+(?:avait|a|montr\w*|etait|est)\b")
#: "The lowest NDVI ever recorded on parcel 12", "le NDVI le plus bas de la parcelle 12".
_EXTREME = re.compile(r"\b(?:(?P<low>lowest|minimum|min|minimal\w*|plus\s+(?:bas|faible)s?)|"
                      r"(?P<high>highest|maximum|max|maximal\w*|plus\s+(?:haut|eleve)s?))\b")
#: "The highest NDVI ever recorded", "le NDVI le plus haut jamais enregistré": one record, the whole archive.
_EVER = re.compile(r"\b(?:ever|recorded|of\s+all\s+time|all[- ]time|anywhere|in\s+the\s+(?:whole\s+)?archive|"
                   r"jamais|de\s+tous\s+les\s+temps|enregistre\w*|de\s+toute\s+l'archive|dans\s+l'archive)\b")
_AGGREGATE = re.compile(r"\b(?:average|mean|median|moyenn\w*|median\w*|range|ecart|count|how\s+many|combien|overall|"
                        r"en\s+moyenne|typical|summary|resume)\b")

TEXTS = {
    "en": {
        "what_all": "the {n} parcels", "what_crop": "the {n} {crop} parcels", "what_area": "the {n} parcels of that area",
        "when_date": "on {date}", "when_window": "in {label}", "mean_note": " (each parcel's mean over its usable observations)",
        "when_latest": "at each parcel's latest usable observation",
        "aggregate": ("Over {what} {when}{note}, mean {index} {mean}, median {median}, from {lo} ({plo}) to {hi} ({phi}); "
                      "{n} parcels observed."),
        "aggregate_one": "Only {pid} of {what} was observed {when}: {index} {v}.",
        "unobserved": "No usable observation {when} for: {pids}.",
        "none_usable": "None of the {n} parcels had a usable observation {when} ({reasons}).",
        "too_small": "Left out as too small for a reliable value (under {n} pixels): {pids}.",
        "rank": "{index} {when}{note}, {order} ({k} of {n} parcels): {items}.",
        "rank_one": "{pid} had the {which} {index} {when}{note}: {v}, of {n} parcels observed.",
        "highest_one": "highest", "lowest_one": "lowest",
        "bare": ("Not counted as {what}: {items}: bare soil or stubble after the harvest, where low values are "
                 "expected."),
        "bare_cut": ("Not counted as {what}: {items}: grass just cut (mown or grazed), where low values are "
                     "expected."),
        "highest": "highest first", "lowest": "lowest first",
        "by_crop": "Mean {index} per crop {when}{note}, {order}: {items}.",
        "crop_item": "{crop} {v} ({n} parcels)", "crop_item_one": "{crop} {v} (1 parcel)",
        "threshold": "{n} of {total} observed parcels had {what} {when}: {items}.",
        "threshold_one": "1 of {total} observed parcels had {what} {when}: {items}.",
        "threshold_none": "None of the {total} observed parcels had {what} {when}.",
        "dates": "Parcel {pid} had {what} on {n} of its {total} usable observations {when}: {items}.",
        "dates_none": ("Parcel {pid} never had {what} {when}: {index} stayed between {lo} ({dlo}) and {hi} ({dhi}) "
                       "over its {total} usable observations."),
        "dates_none_one": ("Parcel {pid} did not have {what} {when}: {index} {lo} on {dlo}, its only usable "
                           "observation then."),
        "dates_none_day": "Parcel {pid} did not have {what} {when}: {index} {lo}.",
        "dates_unobserved": "Parcel {pid} has no usable observation {when}.",
        "date_item": "{date} ({v})", "when_archive": "in the whole archive",
        "own_extreme": "The {which} {index} of parcel {pid} {when}: {v} on {date}, of its {n} usable observations.",
        "archive_extreme": ("The {which} {index} of {what} in the whole archive: {v}, {pid} on {date} (of {n} usable "
                            "observations of {k} parcels)."),
        "empty_area": "No parcel of this store matches {what}. Known values: {known}.", "that_area": "that area",
        "change_fall": "Largest {index} fall {when} between two usable observations (of {n} parcels): {items}.",
        "change_rise": "Largest {index} rise {when} between two usable observations (of {n} parcels): {items}.",
        "change_any": "Largest {index} change {when} between two usable observations (of {n} parcels): {items}.",
        "dips": ("Left out as residual cloud or shadow (a one-date dip that recovers by the next pass): {items}."),
        "change_item": "{pid} {d}, from {va} on {a} to {vb} on {b}",
        "peers_higher": "{pid}'s {index} {when}{note} was {v}, {d} above the median {m} of the {n} other {crop} parcels.",
        "peers_lower": "{pid}'s {index} {when}{note} was {v}, {d} below the median {m} of the {n} other {crop} parcels.",
        "peers_stable": ("{pid}'s {index} {when}{note} was {v}, level with the median {m} of the {n} other {crop} parcels "
                         "(within the noise of repeated clear observations)."),
        "nobody": "No parcel has a usable observation {when}, so none can be said to meet that.",
        "closest": "The closest was {item}.",
        "behind": "{n} parcels were more than {margin} below the median of their crop's other parcels {when}: {items}.",
        "behind_one": "One parcel was more than {margin} below the median of its crop's other parcels {when}: {items}.",
        "behind_none": "No parcel was more than {margin} below the median of its crop's other parcels {when}.",
        "behind_item": "{pid} ({crop}) {v} against {peers}",
        "no_peers": "Parcels without another parcel of their crop to compare with: {pids}.",
        "and_more": "{items} and {k} more",
        "item": "{pid} {v}", "item_date": "{pid} {v} on {date}",
        "lt": "{index} below {v}", "le": "{index} at or below {v}", "gt": "{index} above {v}", "ge": "{index} at or above {v}",
        "class": "{label} {aspect}", "standing_water": "standing water",
        "bare_apart": "Left out as bare soil or stubble after the harvest, where low values are expected: {pids}.",
    },
    "fr": {
        "what_all": "les {n} parcelles", "what_crop": "les {n} parcelles de {crop}", "what_area": "les {n} parcelles de cette zone",
        "when_date": "le {date}", "when_window": "en {label}", "mean_note": " (moyenne des observations exploitables de chaque parcelle)",
        "when_latest": "à la dernière observation exploitable de chaque parcelle",
        "aggregate": ("Sur {what} {when}{note}, {index} moyen {mean}, médian {median}, de {lo} ({plo}) à {hi} ({phi}) ; "
                      "{n} parcelles observées."),
        "aggregate_one": "Seule {pid} parmi {what} a été observée {when} : {index} {v}.",
        "unobserved": "Aucune observation exploitable {when} pour : {pids}.",
        "none_usable": "Aucune des {n} parcelles n'avait d'observation exploitable {when} ({reasons}).",
        "too_small": "Écartées car trop petites pour une valeur fiable (moins de {n} pixels) : {pids}.",
        "rank": "{index} {when}{note}, {order} ({k} parcelles sur {n}) : {items}.",
        "rank_one": "{pid} avait le {index} le plus {which} {when}{note} : {v}, sur {n} parcelles observées.",
        "highest_one": "élevé", "lowest_one": "bas",
        "bare": ("Non comptées comme {what} : {items} : sol nu ou chaumes après la récolte, où des valeurs basses "
                 "sont attendues."),
        "bare_cut": ("Non comptées comme {what} : {items} : herbe tout juste fauchée ou pâturée, où des valeurs "
                     "basses sont attendues."),
        "highest": "du plus élevé au plus bas", "lowest": "du plus bas au plus élevé",
        "by_crop": "{index} moyen par culture {when}{note}, {order} : {items}.",
        "crop_item": "{crop} {v} ({n} parcelles)", "crop_item_one": "{crop} {v} (1 parcelle)",
        "threshold": "{n} des {total} parcelles observées avaient {what} {when} : {items}.",
        "threshold_one": "1 des {total} parcelles observées avait {what} {when} : {items}.",
        "threshold_none": "Aucune des {total} parcelles observées n'avait {what_neg} {when}.",
        "dates": "La parcelle {pid} avait {what} sur {n} de ses {total} observations exploitables {when} : {items}.",
        "dates_none": ("La parcelle {pid} n'a jamais eu {what_neg} {when} : le {index} est resté entre {lo} ({dlo}) et "
                       "{hi} ({dhi}) sur ses {total} observations exploitables."),
        "dates_none_one": ("La parcelle {pid} n'avait pas {what_neg} {when} : {index} {lo} le {dlo}, sa seule "
                           "observation exploitable sur cette période."),
        "dates_none_day": "La parcelle {pid} n'avait pas {what_neg} {when} : {index} {lo}.",
        "dates_unobserved": "La parcelle {pid} n'a aucune observation exploitable {when}.",
        "date_item": "{date} ({v})", "when_archive": "dans toute l'archive",
        "own_extreme": "Le {index} le plus {which} de la parcelle {pid} {when} : {v} le {date}, sur ses {n} observations exploitables.",
        "archive_extreme": ("Le {index} le plus {which} pour {what} dans toute l'archive : {v}, {pid} le {date} (sur {n} "
                            "observations exploitables de {k} parcelles)."),
        "empty_area": "Aucune parcelle de cette base ne correspond à {what}. Valeurs connues : {known}.",
        "that_area": "cette zone",
        "change_fall": "Plus forte baisse du {index} {when} entre deux observations exploitables (sur {n} parcelles) : {items}.",
        "change_rise": "Plus forte hausse du {index} {when} entre deux observations exploitables (sur {n} parcelles) : {items}.",
        "change_any": "Plus fort changement du {index} {when} entre deux observations exploitables (sur {n} parcelles) : {items}.",
        "dips": ("Écartées comme nuage résiduel ou ombre (un creux d'une seule date qui se referme au passage suivant) : {items}."),
        "change_item": "{pid} {d}, de {va} le {a} à {vb} le {b}",
        "peers_higher": "Le {index} de {pid} {when}{note} était de {v}, {d} au-dessus de la médiane {m} des {n} autres parcelles de {crop}.",
        "peers_lower": "Le {index} de {pid} {when}{note} était de {v}, {d} en dessous de la médiane {m} des {n} autres parcelles de {crop}.",
        "peers_stable": ("Le {index} de {pid} {when}{note} était de {v}, au niveau de la médiane {m} des {n} autres parcelles "
                         "de {crop} (dans le bruit des observations dégagées répétées)."),
        "nobody": "Aucune parcelle n'a d'observation exploitable {when} : aucune ne peut être dite remplir cette condition.",
        "closest": "La plus proche : {item}.",
        "behind": "{n} parcelles étaient à plus de {margin} sous la médiane des autres parcelles de leur culture {when} : {items}.",
        "behind_one": "Une parcelle était à plus de {margin} sous la médiane des autres parcelles de sa culture {when} : {items}.",
        "behind_none": "Aucune parcelle n'était à plus de {margin} sous la médiane des autres parcelles de sa culture {when}.",
        "behind_item": "{pid} ({crop}) {v} contre {peers}",
        "no_peers": "Parcelles sans autre parcelle de la même culture pour comparer : {pids}.",
        "and_more": "{items} et {k} autres",
        "item": "{pid} {v}", "item_date": "{pid} {v} le {date}",
        "lt": "un {index} inférieur à {v}", "le": "un {index} inférieur ou égal à {v}", "gt": "un {index} supérieur à {v}",
        "ge": "un {index} supérieur ou égal à {v}",
        "class": "une {aspect} {label}", "standing_water": "de l'eau stagnante",
        "bare_apart": "Écartées car en sol nu ou en chaumes après la récolte, où des valeurs basses sont attendues : {pids}.",
    },
}
_ASPECTS = {"en": {"vigor": "vigor", "moisture": "moisture", "cover": "cover", "biomass": "biomass", "growth": "growth",
                   "uniformity": "conditions", "water": "surface water"},
            "fr": {"vigor": "vigueur", "moisture": "humidité", "cover": "couverture", "biomass": "biomasse",
                   "growth": "croissance", "uniformity": "végétation", "water": "eau de surface"}}


_LABELS = {"en": {"bare_soil": "bare soil", "vegetation_dominant": "dense vegetation", "early_or_senescent": "early or senescent"},
           "fr": {"low": "faible", "moderate": "moyenne", "high": "élevée", "bare_soil": "sol nu", "mixed": "mixte",
                  "vegetation_dominant": "végétation dominante", "early_or_senescent": "précoce ou sénescente",
                  "mature_canopy": "couvert mature", "heterogeneous": "hétérogène", "uniform": "homogène",
                  "present": "présente"}}


def say(lang: str, key: str, **values: object) -> str:
    return TEXTS.get(lang, TEXTS["en"])[key].format(**values)


_FR_ARTICLE = re.compile(r"^(?:une?|des|du|de\s+la|de\s+l')\s*")


def negated(what: str, lang: str) -> str:
    """`what` as it reads after a negation: in French the article becomes "de" ("n'avait pas
    d'humidité faible", "jamais d'eau stagnante", "aucune n'avait de NDVI inférieur à 0.3")."""
    if lang != "fr":
        return what
    rest = _FR_ARTICLE.sub("", what, count=1)
    return ("d'" if re.match(r"[aeiouyhéèêàâîôû]", rest, re.I) else "de ") + rest


def members(turn: Turn, ctx: AnswerContext) -> list[str]:
    """The parcels of the group, as the store's facts know them."""
    places = turn.plan.places
    ids = list(ctx.context.parcel_ids)
    if places.attributes:
        ids = [p for p in ids if all(ctx.context.parcel_attributes.get(p, {}).get(c) in v
                                     for c, v in places.attributes.items())]
    return ids


def _single(turn: Turn, ctx: AnswerContext) -> bool:
    """A crop word that names one parcel only ("the potato field"): answered as that parcel."""
    plan = turn.plan
    return (bool(plan.places.attributes) and plan.intent != "rank" and plan.condition is None
            and plan.class_condition is None and len(members(turn, ctx)) == 1)


def retrieve(turn: Turn, ctx: AnswerContext) -> Found:
    if _single(turn, ctx):
        from assistant.answers import observe
        return observe.retrieve(turn, ctx)
    plan = turn.plan
    places = plan.places
    start, end = checks.window_bounds(turn)
    if one_parcel_filtered(plan):
        # "When was parcel 7 water-stressed?": its own observations in the window, and its whole
        # series (a low value after a harvest is stubble, see `_threshold`).
        docs = ctx.records(parcel_ids=list(places.parcel_ids), date_from=start, date_to=end)
        return Found(records=tuple(docs), extra=tuple(ctx.records(parcel_ids=list(places.parcel_ids))))
    if len(places.parcel_ids) == 1:
        # One parcel against its peers: every parcel of its crop, in the window.
        crop = ctx.context.parcel_attributes.get(places.parcel_ids[0], {}).get("attr_crop_name")
        ids = [p for p, a in ctx.context.parcel_attributes.items() if a.get("attr_crop_name") == crop] if crop else []
        return Found(records=tuple(ctx.records(parcel_ids=ids or list(places.parcel_ids), date_from=start,
                                               date_to=end)))
    docs = ctx.records(parcel_ids=list(places.parcel_ids) or None, date_from=start, date_to=end,
                       attributes=places.attributes or None, bbox=places.bbox,
                       point=places.point if places.radius_m else None, radius_m=places.radius_m)
    extra: list[Document] = []
    if plan.class_condition is not None:
        # The parcels' whole series: a low value after a harvest is stubble (see `_threshold`).
        extra = ctx.records(parcel_ids=sorted({d.metadata["parcel_id"] for d in docs}))
    elif _BEHIND.search(K.fold_text(turn.question)):
        # Peers: every parcel of the same crops, on the same dates.
        crops = {K.crop_of(d) for d in docs} - {None}
        extra = [d for d in ctx.records(date_from=start, date_to=end) if K.crop_of(d) in crops]
    return Found(records=tuple(docs), extra=tuple(extra))


def per_parcel(docs, ctx: AnswerContext, column: str, windowed: bool) -> dict[str, tuple[float, list[Document]]]:
    """Each parcel's value and the observations it rests on (see the module docstring)."""
    out = {}
    for pid, items in K.by_parcel(docs).items():
        good = K.good(items, ctx.suspects, column)
        if not good:
            continue
        if windowed:
            out[pid] = (statistics.fmean(K.value(d, column) for d in good), good)
        else:
            out[pid] = (K.value(good[-1], column), [good[-1]])
    return out


def _when(turn: Turn, lang: str, docs) -> tuple[str, bool]:
    """How the answer says when, and whether values are window means."""
    plan = turn.plan
    if plan.window is None:
        return say(lang, "when_latest"), False
    dates = {d.metadata["date"] for d in docs}
    if plan.window.start == plan.window.end or len(dates) == 1:
        return say(lang, "when_date", date=min(dates) if dates else plan.window.start.isoformat()), False
    return say(lang, "when_window", label=plan.window.label), True


def _what(turn: Turn, lang: str, n: int) -> str:
    places = turn.plan.places
    if places.attributes:
        crop = " / ".join(K.crop_name(v, lang) for vals in places.attributes.values() for v in vals)
        return say(lang, "what_crop", n=n, crop=crop)
    if places.bbox or places.point:
        return say(lang, "what_area", n=n)
    return say(lang, "what_all", n=n)


def _written(out: Composition, x: float, windowed: bool) -> str:
    text = K.num(x)
    if windowed:
        out.derived.append(text)
    return text


def compose(turn: Turn, ctx: AnswerContext) -> Composition:
    if _single(turn, ctx):
        from assistant.answers import observe
        return observe.compose(turn, ctx)
    out = Composition()
    lang, plan = turn.lang, turn.plan
    if checks.preamble(turn, ctx, out):
        return out
    docs = list(turn.found.records)
    if not docs:
        places = plan.places
        what = ", ".join(f"{k.removeprefix('attr_')} = {'/'.join(v)}" for k, v in places.attributes.items()) or \
            say(lang, "that_area")
        known = sorted({v for vals in ctx.context.attributes.values() for v in vals if not str(v).replace(".", "").isdigit()})
        out.add(say(lang, "empty_area", what=what, known=", ".join(known[:12]) or "-"))
        return out
    folded = K.fold_text(turn.question)
    column = K.column_of(plan.condition.index if plan.condition else plan.index)
    if plan.class_condition is not None and plan.condition is None:
        stat = RULE_BY_ASPECT[plan.class_condition.aspect].stat
        # The class's own statistic, unless the question names another index ("NDVI of the bare
        # parcels"); "the most heterogeneous" is read on NDVI's spread, not its mean.
        if not plan.index or stat.startswith(f"{plan.index}_"):
            column = stat
    when, windowed = _when(turn, lang, docs)
    note = say(lang, "mean_note") if windowed else ""
    group = sorted({d.metadata["parcel_id"] for d in docs})
    values = per_parcel(docs, ctx, column, windowed)
    index = K.label_of(column)
    unobserved = [p for p in group if p not in values]
    if one_parcel_filtered(plan):
        _dates_matching(out, turn, ctx, docs, when if plan.window is not None else say(lang, "when_archive"), lang)
        return out
    if len(plan.places.parcel_ids) == 1 and turn.kind != "peers" and (m := _EXTREME.search(folded)):
        # "The lowest NDVI ever recorded on parcel 12": its own extreme, not its crop's peers.
        _own_extreme(out, turn, ctx, docs, column, m.group("low") is not None, lang)
        return out
    if len(plan.places.parcel_ids) == 1:
        _versus_peers(out, turn, ctx, values, column, when, note, windowed, lang)
        return out
    if (plan.window is None and not plan.places.parcel_ids and plan.condition is None and plan.class_condition is None
            and _EVER.search(folded) and (m := _EXTREME.search(folded))):
        # "The highest NDVI ever recorded": the one record, not each parcel's latest.
        _archive_extreme(out, turn, ctx, docs, column, m.group("low") is not None, lang)
        return out
    superlative = plan.class_condition is not None and plan.order is not None and _ONE.search(folded)
    if (plan.condition is not None or plan.class_condition is not None) and not superlative:
        _threshold(out, turn, ctx, docs, values, when, lang)
    elif _BEHIND.search(folded):
        _behind(out, turn, ctx, values, column, when, windowed, lang)
    elif (m := _CHANGE.search(folded)) and values:
        rise = None if m.group("any") else any(
            w in (m.group("what") or m.group("fr") or m.group("verb") or "")
            for w in ("rise", "increase", "gain", "growth", "hausse", "augmentation", "rose", "grew", "greened"))
        _largest_change(out, turn, ctx, docs, column, when, rise, lang)
    elif (_BY_CROP.search(folded) or sum(len(v) for v in plan.places.attributes.values()) > 1) and values:
        # Crops named side by side ("wheat or maize"), or "which crops": crop against crop.
        _by_crop(out, turn, docs, values, column, when, note, lang)
    elif (plan.intent == "rank" or superlative) and not _AGGREGATE.search(folded) and values:
        asc = plan.order == "asc"
        bare: list[str] = []
        if superlative and plan.class_condition.label in ("low", "high"):
            asc = plan.class_condition.label == "low"  # "the driest": the lowest NDMI, whatever "most" says
            if asc and plan.class_condition.aspect in ("moisture", "vigor"):
                # The driest or weakest crop, not a harvested field: bare soil and stubble are said apart.
                series = K.by_parcel(turn.found.extra)
                bare = sorted(p for p, (_, used) in values.items() if _bare(used[-1], series.get(p, used), ctx))
                values = {p: v for p, v in values.items() if p not in bare}
        ranked = sorted(values.items(), key=lambda kv: (kv[1][0], kv[0]), reverse=not asc)
        k = min(plan.k or len(ranked), len(ranked))
        if plan.k == len(ctx.context.parcel_ids) and _ONE.search(folded):
            k = 1  # "which parcel has the highest NDVI": one, not the whole list
        if k == 1:
            pid, (x, used) = ranked[0]
            out.add(say(lang, "rank_one", pid=pid, which=say(lang, "lowest_one" if asc else "highest_one"), index=index,
                        when=when, note=note, v=_written(out, x, windowed), n=len(ranked)))
            out.counts.append(len(ranked))
            K.cite_all(out, used, (column,))
            ranked = []
        items = []
        for pid, (x, used) in ranked[:k]:
            items.append(say(lang, "item", pid=pid, v=_written(out, x, windowed)) if windowed or plan.window
                         else say(lang, "item_date", pid=pid, v=K.num(x), date=used[0].metadata["date"]))
            K.cite_all(out, used, (column,))
        if bare:
            out.add(say(lang, "bare_apart", pids=", ".join(bare)))
        if ranked:
            out.add(say(lang, "rank", index=index, when=when, note=note, order=say(lang, "lowest" if asc else "highest"), k=k,
                        n=len(ranked), items=", ".join(items)))
            out.counts += [k, len(ranked)]
    elif values:
        if len(values) == 1:
            [(pid, (x, used))] = values.items()
            out.add(say(lang, "aggregate_one", pid=pid, what=_what(turn, lang, len(group)), when=when, index=index,
                        v=_written(out, x, windowed)))
            out.counts.append(len(group))
            K.cite_all(out, used, (column,))
        else:
            xs = [x for x, _ in values.values()]
            lo = min(values.items(), key=lambda kv: kv[1][0])
            hi = max(values.items(), key=lambda kv: kv[1][0])
            out.add(say(lang, "aggregate", what=_what(turn, lang, len(group)), when=when, note=note, index=index,
                        mean=K.mean_of(out, xs), median=K.median_of(out, xs), lo=_written(out, lo[1][0], windowed),
                        plo=lo[0], hi=_written(out, hi[1][0], windowed), phi=hi[0], n=len(values)))
            out.counts += [len(group), len(values)]
            for _, used in values.values():
                K.cite_all(out, used, (column,))
            if windowed:  # the mean of means and the median are of the parcels' means, declared above
                out.derived.extend(K.num(x) for x in xs)
    if unobserved:
        _say_unobserved(out, lang, when, unobserved, docs, ctx)
    return out


def _say_unobserved(out: Composition, lang: str, when: str, unobserved: list[str], docs, ctx: AnswerContext) -> None:
    """The group's parcels with no value: too small ones said as such (a sliver is never "not
    observed"), the others as without a usable observation in the window."""
    if len(unobserved) > 1 and set(unobserved) == {d.metadata["parcel_id"] for d in docs}:
        # Not one parcel usable (a clouded or snowy date): why, counted, rather than every id.
        reasons = Counter(Counter(K.status(d, ctx.suspects) for d in items).most_common(1)[0][0]
                          for items in K.by_parcel(docs).values())
        out.add(say(lang, "none_usable", n=len(unobserved), when=when, reasons=", ".join(
            f"{K.reason_words(r, lang)}: {n}" for r, n in reasons.most_common())))
        out.counts += [len(unobserved), *reasons.values()]
        return
    small = [p for p in unobserved
             if any(K.status(d, ctx.suspects) == "too_small" for d in docs if d.metadata["parcel_id"] == p)]
    rest = [p for p in unobserved if p not in small]
    if rest:
        out.add(say(lang, "unobserved", when=when, pids=", ".join(rest)))
    if small:
        out.add(say(lang, "too_small", n=MIN_RELIABLE_PIXELS, pids=", ".join(small)))
        out.rules.append(MIN_RELIABLE_PIXELS)


def _extreme(good: list[Document], column: str, low: bool) -> Document:
    """The usable observation with the lowest (or highest) value of `column`; the oldest on a tie."""
    return (min if low else max)(good, key=lambda d: K.value(d, column))


def _which(lang: str, low: bool) -> str:
    return {"en": ("lowest", "highest"), "fr": ("bas", "haut")}.get(lang, ("lowest", "highest"))[0 if low else 1]


def _own_extreme(out: Composition, turn: Turn, ctx: AnswerContext, docs, column: str, low: bool, lang: str) -> None:
    """One parcel's lowest or highest usable value in the window (the whole archive without one)."""
    pid = turn.plan.places.parcel_ids[0]
    good = K.good([d for d in docs if d.metadata["parcel_id"] == pid], ctx.suspects, column)
    w = turn.plan.window
    when = say(lang, "when_window", label=w.label) if w is not None else say(lang, "when_archive")
    if not good:
        out.add(say(lang, "dates_unobserved", pid=pid, when=when))
        return
    top = _extreme(good, column, low)
    out.add(say(lang, "own_extreme", which=_which(lang, low), index=K.label_of(column), pid=pid, when=when,
                v=K.num(K.value(top, column)), date=top.metadata["date"], n=len(good)))
    out.counts.append(len(good))
    out.cite(top, (column,))


def _archive_extreme(out: Composition, turn: Turn, ctx: AnswerContext, docs, column: str, low: bool,
                     lang: str) -> None:
    """The group's lowest or highest value over the whole archive: one usable record."""
    good = K.good(docs, ctx.suspects, column)
    if not good:
        out.add(say(lang, "nobody", when=say(lang, "when_archive")))
        return
    top = _extreme(good, column, low)
    parcels = {d.metadata["parcel_id"] for d in good}
    out.add(say(lang, "archive_extreme", which=_which(lang, low), index=K.label_of(column),
                what=_what(turn, lang, len(parcels)),
                v=K.num(K.value(top, column)), pid=top.metadata["parcel_id"], date=top.metadata["date"], n=len(good),
                k=len(parcels)))
    out.counts += [len(good), len(parcels)]
    out.cite(top, (column,))


def _condition(plan, lang: str) -> tuple[str, str]:
    """How the answer words the question's threshold or class, and the statistic it is read on."""
    if plan.condition is not None:
        c = plan.condition
        key = {"<": "lt", "<=": "le", ">": "gt", ">=": "ge"}[c.op]
        return say(lang, key, index=c.index.upper(), v=f"{c.value:g}"), K.column_of(c.index)
    aspect, label = plan.class_condition.aspect, plan.class_condition.label
    if aspect == "water" and label == "present":
        return say(lang, "standing_water"), RULE_BY_ASPECT[aspect].stat
    return (say(lang, "class", aspect=_ASPECTS.get(lang, _ASPECTS["en"]).get(aspect, aspect),
                label=_LABELS.get(lang, _LABELS["en"]).get(label, label.replace("_", " "))), RULE_BY_ASPECT[aspect].stat)


def _meets(plan, doc: Document, column: str) -> bool:
    """Whether one record meets the question's threshold or class."""
    if plan.condition is not None:
        return plan.condition.holds(doc.metadata[column])
    return classify(doc.metadata).get(plan.class_condition.aspect) == plan.class_condition.label


def _stress_asked(plan) -> bool:
    """Low moisture or vigor asked: on bare soil or stubble that is the crop calendar, not stress,
    and such records are said apart."""
    c = plan.class_condition
    return c is not None and c.label == "low" and c.aspect in ("moisture", "vigor")


def _dates_matching(out: Composition, turn: Turn, ctx: AnswerContext, docs, when: str, lang: str) -> None:
    """One parcel: every usable observation in the window that meets the threshold or class, or
    the range its values kept when none did. Low moisture or vigor on bare soil or stubble is
    said apart, as in `_threshold`."""
    plan = turn.plan
    pid = plan.places.parcel_ids[0]
    what, column = _condition(plan, lang)
    items = [d for d in docs if d.metadata["parcel_id"] == pid and K.usable(d, ctx.suspects)
             and d.metadata.get(column) is not None]
    if not items:
        out.add(say(lang, "dates_unobserved", pid=pid, when=when))
        return
    hits = [d for d in items if _meets(plan, d, column)]
    bare: list[Document] = []
    if _stress_asked(plan):
        series = list(turn.found.extra) or items
        bare = [d for d in hits if _bare(d, series, ctx)]
        hits = [d for d in hits if d not in bare]
    out.counts += [len(hits), len(items)]
    if hits:
        out.add(say(lang, "dates", pid=pid, what=what, n=len(hits), total=len(items), when=when, items=", ".join(
            say(lang, "date_item", date=d.metadata["date"], v=K.values(d, (column,))) for d in hits)))
        K.cite_all(out, hits, (column,))
    else:
        # The range of the observations counted: a record said apart below (stubble, a fresh cut)
        # would put a value of the class asked in a sentence that says the parcel never had it.
        items = [d for d in items if d not in bare] or items
        out.counts.append(len(items))
        lo = min(items, key=lambda d: d.metadata[column])
        hi = max(items, key=lambda d: d.metadata[column])
        # One usable observation: said as one; when the window holds one acquisition date, `when`
        # already names it ("on 2018-08-04", `_when`).
        one_date = plan.window is not None and len({d.metadata["date"] for d in docs}) == 1
        key = "dates_none" if len(items) > 1 else "dates_none_day" if one_date else "dates_none_one"
        out.add(say(lang, key, pid=pid, what=what, what_neg=negated(what, lang), when=when, index=K.label_of(column),
                    lo=K.num(lo.metadata[column]), dlo=lo.metadata["date"], hi=K.num(hi.metadata[column]),
                    dhi=hi.metadata["date"], total=len(items)))
        K.cite_all(out, [lo, hi], (column,))
    _not_counted(out, lang, what, bare)


def _threshold(out: Composition, turn: Turn, ctx: AnswerContext, docs, values, when: str, lang: str) -> None:
    plan = turn.plan
    observed = K.by_parcel(d for d in docs if K.usable(d, ctx.suspects))
    if plan.window is None:
        if _EVER.search(K.fold_text(turn.question)):
            when = say(lang, "when_archive")  # "which parcels ever had ...": any date of the archive
        else:
            # No date asked ("which parcels look stressed?"): each parcel as last seen, as `when` says.
            observed = {pid: items[-1:] for pid, items in observed.items()}
    total = len(observed)
    what, column = _condition(plan, lang)
    if plan.condition is not None:
        c = plan.condition
        extreme = min if c.op in ("<", "<=") else max
        matched, closest, bare = [], [], []
        for pid, items in observed.items():
            items = [d for d in items if d.metadata.get(column) is not None]
            hits = [d for d in items if _meets(plan, d, column)]
            if hits:
                matched.append(extreme(hits, key=lambda d: d.metadata[column]))
            elif items:
                closest.append(extreme(items, key=lambda d: d.metadata[column]))
        matched.sort(key=lambda d: d.metadata[column], reverse=extreme is max)
    else:
        matched, closest = [], []
        series = K.by_parcel(turn.found.extra)
        bare = []
        for pid, items in observed.items():
            hits = [d for d in items if _meets(plan, d, column)]
            if hits and _stress_asked(plan):
                # Low moisture or vigor on bare soil or stubble is the crop calendar, not stress.
                crop = [d for d in hits if not _bare(d, series.get(pid, items), ctx)]
                if not crop:
                    bare.append(hits[-1])
                hits = crop
            if hits:
                matched.append(hits[-1])
        matched.sort(key=lambda d: d.metadata.get(column) or 0.0)
    out.counts.append(total)
    if not total:
        out.add(say(lang, "nobody", when=when))
        return
    if not matched:
        out.add(say(lang, "threshold_none", total=total, what=what, what_neg=negated(what, lang), when=when))
        _not_counted(out, lang, what, bare)
        if closest and plan.condition is not None:
            near = min(closest, key=lambda d: abs(d.metadata[column] - plan.condition.value))
            out.add(say(lang, "closest", item=say(lang, "item_date", pid=near.metadata["parcel_id"],
                                                  v=K.num(near.metadata[column]), date=near.metadata["date"])))
            out.cite(near, (column,))
        return
    out.add(say(lang, "threshold" if len(matched) > 1 else "threshold_one", n=len(matched), total=total, what=what,
                when=when, items=", ".join(
        say(lang, "item_date", pid=d.metadata["parcel_id"], v=K.values(d, (column,)), date=d.metadata["date"])
        for d in matched)))
    out.counts.append(len(matched))
    K.cite_all(out, matched, (column,))
    _not_counted(out, lang, what, bare)


def _versus_peers(out: Composition, turn: Turn, ctx: AnswerContext, values, column: str, when: str, note: str,
                  windowed: bool, lang: str) -> None:
    """One named parcel against the median of the other parcels of its crop."""
    pid = turn.plan.places.parcel_ids[0]
    index = K.label_of(column)
    crop = K.crop_name(ctx.context.parcel_attributes.get(pid, {}).get("attr_crop_name") or "?", lang)
    if pid not in values:
        out.add(say(lang, "unobserved", when=when, pids=pid))
        return
    x, used = values[pid]
    peers = {p: v for p, v in values.items() if p != pid}
    K.cite_all(out, used, (column,))
    if not peers:
        out.add(say(lang, "no_peers", pids=pid))
        return
    median = statistics.median(v for v, _ in peers.values())
    for v, pused in peers.values():
        K.cite_all(out, pused, (column,))
        if windowed:
            out.derived.append(K.num(v))
    mine, theirs = _written(out, x, windowed), K.median_of(out, [v for v, _ in peers.values()])
    delta = int(round(float(mine) * 100)) - int(round(float(theirs) * 100))
    verdict = K.stable_words("en", delta, K.noise(column))
    out.add(say(lang, "peers_" + verdict, pid=pid, index=index, when=when, note=note, v=mine, m=theirs,
                n=len(peers), crop=crop, d=f"{abs(delta) / 100:.2f}"))
    out.derived.append(f"{abs(delta) / 100:.2f}")
    out.counts.append(len(peers))


def _largest_change(out: Composition, turn: Turn, ctx: AnswerContext, docs, column: str, when: str,
                    rise: bool | None, lang: str) -> None:
    """Parcels ranked by their largest rise (`rise` True), fall (False) or change either way (None)
    between two consecutive usable observations in the window."""
    size = {True: lambda p: p[0], False: lambda p: -p[0], None: lambda p: abs(p[0])}[rise]
    steps, dipped = [], []
    for pid, items in K.by_parcel(docs).items():
        good = K.good(items, ctx.suspects, column)
        if len(good) >= 3:
            # A one-date dip is residual cloud, not the crop (`indexer.phenology`): not a change.
            dips = one_date_dips(pd.DataFrame({"date": [d.metadata["date"] for d in good],
                                               column: [K.value(d, column) for d in good]}), column)
            dipped += [d for d, dip in zip(good, dips) if dip]
            good = [d for d, dip in zip(good, dips) if not dip]
        pairs = [(K.hundredths(K.value(b, column)) - K.hundredths(K.value(a, column)), a, b) for a, b in zip(good, good[1:])]
        if pairs:
            steps.append(max(pairs, key=size))
    if not steps:
        out.add(say(lang, "nobody", when=when))
        return
    steps.sort(key=lambda p: -size(p))
    k = min(turn.plan.k, len(steps)) if turn.plan.k and turn.plan.k < len(ctx.context.parcel_ids) else 1
    items = []
    for delta, a, b in steps[:k]:
        items.append(say(lang, "change_item", pid=a.metadata["parcel_id"], d=K.signed(delta), va=K.num(K.value(a, column)),
                         a=a.metadata["date"], vb=K.num(K.value(b, column)), b=b.metadata["date"]))
        K.cite_all(out, [a, b], (column,))
    key = {True: "change_rise", False: "change_fall", None: "change_any"}[rise]
    out.add(say(lang, key, index=K.label_of(column), when=when, items=K.semicolon(lang).join(items), n=len(steps)))
    if dipped:
        out.add(say(lang, "dips", items=", ".join(say(lang, "item_date", pid=d.metadata["parcel_id"],
                                                       v=K.values(d, (column,)), date=d.metadata["date"])
                                                   for d in dipped)))
        K.cite_all(out, dipped, (column,))
    out.counts.append(len(steps))


def _by_crop(out: Composition, turn: Turn, docs, values, column: str, when: str, note: str, lang: str) -> None:
    """Crops ranked by the mean of their parcels' values (highest first unless the lowest is asked)."""
    crop_of = {d.metadata["parcel_id"]: K.crop_of(d) or "?" for d in docs}
    crops: dict[str, list[float]] = {}
    for pid, (x, used) in values.items():
        crops.setdefault(crop_of[pid], []).append(x)
        K.cite_all(out, used, (column,))
        out.derived.append(K.num(x))
    asc = turn.plan.order == "asc"
    ranked = sorted(crops.items(), key=lambda kv: statistics.fmean(kv[1]), reverse=not asc)
    items = [say(lang, "crop_item_one" if len(xs) == 1 else "crop_item", crop=K.crop_name(c, lang),
                 v=K.mean_of(out, xs), n=len(xs)) for c, xs in ranked]
    out.add(say(lang, "by_crop", index=K.label_of(column), when=when, note=note,
                order=say(lang, "lowest" if asc else "highest"), items=", ".join(items)))
    out.counts += [len(xs) for xs in crops.values()]


def _not_counted(out: Composition, lang: str, what: str, bare: list[Document]) -> None:
    """The records left out of a low moisture or vigor count as the crop calendar (`_bare`): bare
    soil or stubble after a harvest, or, when every one is of a mown crop, grass just cut."""
    if not bare:
        return
    cut = all(is_mown(K.crop_of(d)) for d in bare)
    out.add(say(lang, "bare_cut" if cut else "bare", what=what, items=", ".join(
        say(lang, "item_date", pid=d.metadata["parcel_id"], v=K.values(d, ("ndvi_mean",)), date=d.metadata["date"])
        for d in bare)))
    K.cite_all(out, bare, ("ndvi_mean",))


def _bare(doc: Document, series, ctx: AnswerContext) -> bool:
    ndvi = doc.metadata.get("ndvi_mean")
    return (ndvi is not None and ndvi < 0.3) or K.after_harvest(doc, series, ctx.suspects, south=K.southern(ctx, series))


def _behind(out: Composition, turn: Turn, ctx: AnswerContext, values, column: str, when: str, windowed: bool,
            lang: str) -> None:
    peers_all = per_parcel(turn.found.extra or turn.found.records, ctx, column, windowed)
    crop_of = {d.metadata["parcel_id"]: K.crop_of(d) for d in [*turn.found.records, *turn.found.extra]}
    behind, alone = [], []
    for pid, (x, used) in sorted(values.items()):
        peers = [(p, v) for p, v in peers_all.items() if p != pid and crop_of.get(p) == crop_of.get(pid)]
        if not peers:
            alone.append(pid)
            continue
        median = statistics.median(v[0] for _, v in peers)
        if x < median - BEHIND_MARGIN:
            behind.append((pid, x, median, used, peers))
    margin = K.num(BEHIND_MARGIN)
    out.derived.append(margin)
    if behind:
        items = []
        for pid, x, median, used, peers in behind:
            items.append(say(lang, "behind_item", pid=pid, crop=K.crop_name(crop_of.get(pid) or "?", lang),
                             v=_written(out, x, windowed), peers=K.median_of(out, [v[0] for _, v in peers])))
            K.cite_all(out, used, (column,))
            for _, (v, pused) in peers:
                K.cite_all(out, pused, (column,))
                if windowed:
                    out.derived.append(K.num(v))
        out.add(say(lang, "behind" if len(behind) > 1 else "behind_one", n=len(behind), margin=margin, when=when,
                    items=K.semicolon(lang).join(items)))
        out.counts.append(len(behind))
    else:
        out.add(say(lang, "behind_none", margin=margin, when=when))
    if alone:
        # A store of grid cells has no crop to compare with: name a few, count the rest.
        shown = ", ".join(alone[:MAX_ALONE])
        if len(alone) > MAX_ALONE:
            shown = say(lang, "and_more", items=shown, k=len(alone) - MAX_ALONE)
            out.counts.append(len(alone) - MAX_ALONE)
        out.add(say(lang, "no_peers", pids=shown))
