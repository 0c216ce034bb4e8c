"""Every sentence the assistant writes itself, in English and French.

Templates are data: `say(lang, key, **values)` fills one. Numbers are passed already formatted by
`num` (2 decimals), `signed` (signed difference) and `pct` (whole percent), so the same figures
appear in both languages and the grounding gate can find each of them in the records.
"""

from __future__ import annotations

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "record": "Parcel {pid} on {date}: {values} ({valid} % valid pixels, {cloud} % cloud).",
        "record_short": "{pid} on {date}: {values}",
        "window_pick": "Of the {n} acquisitions in {label} ({dates}), {date} is the latest usable one.",
        "window_unusable_others": "Not usable in that window: {items}.",
        "unusable": "Parcel {pid}: no usable observation on {date}: {cloud} % cloud, {valid} % valid pixels ({reason}).",
        "nearest_usable": "Nearest usable dates for {pid}: {dates}.",
        "no_usable_at_all": "Parcel {pid} has no usable observation in the store.",
        "suspect": ("The acquisition of {date} is suspect: the values jump scene-wide against the neighbouring "
                    "dates ({n} parcels compared, {previous} and {next}); parcel {pid}: {values}. Treat it as an artefact "
                    "(haze, thin cloud or shadow), not as the crop's condition."),
        "suspect_excluded": "Left out of the trend as suspect (scene-wide jump): {dates}.",
        "analysis_generated": "Analysis (generated from the record's imagery, checked against its indices): {text}",
        "analysis_stored": "Analysis (from the record's indices): {text}",
        "compare": "{index} {a} on {da} against {b} on {db}, {delta}: {direction}.",
        "compare_none": "No usable observation of {pid} in {label} to compare with.",
        "compare_parcels": "{index} {a} for {pa} on {da} against {b} for {pb} on {db}, {delta}: {direction}.",
        "higher": "higher", "lower": "lower", "same": "unchanged",
        "history_head": "Parcel {pid}, {index} over {label}: {n} usable acquisitions of {total}.",
        "history_trend": "{index} went from {a} on {da} to {b} on {db} ({delta}, {direction}).",
        "rose": "a rise", "fell": "a fall", "flat": "no change",
        "history_extremes": "Highest {hi} on {dhi}, lowest {lo} on {dlo}.",
        "history_unusable": "Unusable (cloud or no data): {dates}.",
        "history_window": "In {label}: {summary}.",
        "history_peak": "peak {index} {a} on {da} against {b} on {db} in {label}, {delta}",
        "similar_head": "Parcels whose imagery looked most like {pid} on {date} (cosine distance of the embeddings):",
        "similar_item": "{pid} on {date} (distance {distance}): {values}",
        "similar_none": "No usable record of another parcel matches those filters.",
        "rank_head": "{what} in {label}: {n} of {total} parcels with a usable observation.",
        "rank_none": "No parcel meets that in {label} ({total} parcels with a usable observation).",
        "rank_closest": "Closest: {item}.",
        "rank_order": "{index} in {label}, latest usable observation of each parcel, highest first:",
        "rank_order_asc": "{index} in {label}, latest usable observation of each parcel, lowest first:",
        "and_more": "… and {n} more.",
        "cond_lt": "{index} below {v}", "cond_le": "{index} at or below {v}",
        "cond_gt": "{index} above {v}", "cond_ge": "{index} at or above {v}",
        "class_cond": "Parcels with {aspect} '{label}'",
        "multi_head": "{n} parcels match: {which}.",
        "date_rule": "Dates: {rule}.",
        "model_none": "no generator model fits this store's encoder ({encoder}); answers are composed from the records' own analyses",
        "empty_store": "The store at {path} holds no records yet, so there is nothing to answer from. Index imagery into it first.",
        "unknown_parcel": "Nothing in this store is called {names}. It holds {n} parcels, for example: {examples}.",
        "known_values": "Parcel attributes it knows: {values}.",
        "unknown_some": "Nothing in this store is called {names}; the answer covers the rest.",
        "no_place": "Which parcel do you mean? This store holds {n} parcels, for example: {examples}.",
        "empty_area": "No parcel of this store matches {what}. Known values: {known}.",
        "no_acquisition": ("No acquisition in {label} ({start} to {end}). The archive runs from {first} to {last}; "
                           "the nearest acquisitions are {nearest}."),
        "off_topic": ("I answer questions about the {n} parcels and {m} acquisitions in this store ({first} to {last}): "
                      "a parcel on a date, its history, a comparison with past seasons, similar parcels, or which "
                      "parcels meet a condition. For example: \"How is parcel {pid} doing on {last}?\" or "
                      "\"Which parcels were water-stressed in {year}?\""),
        "nothing": "No record of {pid} in {label}.",
        "cloud_pct": "{p} % cloud",
        "value_on": "{index} {v} on {date}",
        "against": " against {items}",
    },
    "fr": {
        "record": "Parcelle {pid} le {date} : {values} ({valid} % de pixels valides, {cloud} % de nuages).",
        "record_short": "{pid} le {date} : {values}",
        "window_pick": "Sur les {n} acquisitions de {label} ({dates}), {date} est la dernière exploitable.",
        "window_unusable_others": "Inexploitables dans cette période : {items}.",
        "unusable": "Parcelle {pid} : aucune observation exploitable le {date} : {cloud} % de nuages, {valid} % de pixels valides ({reason}).",
        "nearest_usable": "Dates exploitables les plus proches pour {pid} : {dates}.",
        "no_usable_at_all": "La parcelle {pid} n'a aucune observation exploitable dans la base.",
        "suspect": ("L'acquisition du {date} est suspecte : les valeurs sautent sur toute la scène par rapport aux "
                    "dates voisines ({n} parcelles comparées, {previous} et {next}) ; parcelle {pid} : {values}. C'est "
                    "probablement un artefact (brume, nuage fin ou ombre), pas l'état de la culture."),
        "suspect_excluded": "Écartées de la tendance car suspectes (saut sur toute la scène) : {dates}.",
        "analysis_generated": "Analyse (générée à partir de l'image de l'enregistrement, vérifiée sur ses indices) : {text}",
        "analysis_stored": "Analyse (d'après les indices de l'enregistrement) : {text}",
        "compare": "{index} {a} le {da} contre {b} le {db}, {delta} : {direction}.",
        "compare_none": "Aucune observation exploitable de {pid} en {label} pour comparer.",
        "compare_parcels": "{index} {a} pour {pa} le {da} contre {b} pour {pb} le {db}, {delta} : {direction}.",
        "higher": "en hausse", "lower": "en baisse", "same": "inchangé",
        "history_head": "Parcelle {pid}, {index} sur {label} : {n} acquisitions exploitables sur {total}.",
        "history_trend": "Le {index} est passé de {a} le {da} à {b} le {db} ({delta}, {direction}).",
        "rose": "hausse", "fell": "baisse", "flat": "stable",
        "history_extremes": "Maximum {hi} le {dhi}, minimum {lo} le {dlo}.",
        "history_unusable": "Inexploitables (nuages ou absence de données) : {dates}.",
        "history_window": "En {label} : {summary}.",
        "history_peak": "{index} maximal {a} le {da} contre {b} le {db} en {label}, {delta}",
        "similar_head": "Parcelles dont l'image ressemblait le plus à {pid} le {date} (distance cosinus des empreintes) :",
        "similar_item": "{pid} le {date} (distance {distance}) : {values}",
        "similar_none": "Aucun enregistrement exploitable d'une autre parcelle ne correspond à ces filtres.",
        "rank_head": "{what} en {label} : {n} parcelles sur {total} avec une observation exploitable.",
        "rank_none": "Aucune parcelle ne remplit cette condition en {label} ({total} parcelles avec une observation exploitable).",
        "rank_closest": "La plus proche : {item}.",
        "rank_order": "{index} en {label}, dernière observation exploitable de chaque parcelle, du plus élevé au plus bas :",
        "rank_order_asc": "{index} en {label}, dernière observation exploitable de chaque parcelle, du plus bas au plus élevé :",
        "and_more": "… et {n} de plus.",
        "cond_lt": "{index} inférieur à {v}", "cond_le": "{index} inférieur ou égal à {v}",
        "cond_gt": "{index} supérieur à {v}", "cond_ge": "{index} supérieur ou égal à {v}",
        "class_cond": "Parcelles avec {aspect} « {label} »",
        "multi_head": "{n} parcelles correspondent : {which}.",
        "date_rule": "Dates : {rule}.",
        "model_none": "aucun modèle générateur ne correspond à l'encodeur de cette base ({encoder}) ; les réponses sont composées à partir des analyses des enregistrements",
        "empty_store": "La base {path} ne contient encore aucun enregistrement : rien à répondre. Indexez-y d'abord des images.",
        "unknown_parcel": "Rien dans cette base ne s'appelle {names}. Elle contient {n} parcelles, par exemple : {examples}.",
        "known_values": "Attributs de parcelle connus : {values}.",
        "unknown_some": "Rien dans cette base ne s'appelle {names} ; la réponse porte sur le reste.",
        "no_place": "De quelle parcelle parlez-vous ? Cette base contient {n} parcelles, par exemple : {examples}.",
        "empty_area": "Aucune parcelle de cette base ne correspond à {what}. Valeurs connues : {known}.",
        "no_acquisition": ("Aucune acquisition en {label} ({start} au {end}). L'archive va du {first} au {last} ; "
                           "les acquisitions les plus proches sont {nearest}."),
        "off_topic": ("Je réponds aux questions sur les {n} parcelles et {m} acquisitions de cette base (du {first} au {last}) : "
                      "une parcelle à une date, son historique, une comparaison avec les saisons passées, les parcelles "
                      "semblables, ou les parcelles qui remplissent une condition. Par exemple : « Comment va la "
                      "parcelle {pid} le {last} ? » ou « Quelles parcelles étaient en stress hydrique en {year} ? »"),
        "nothing": "Aucun enregistrement de {pid} en {label}.",
        "cloud_pct": "{p} % de nuages",
        "value_on": "{index} {v} le {date}",
        "against": " contre {items}",
    },
}

ASPECT_NAMES = {
    "en": {"vigor": "vigor", "moisture": "moisture", "cover": "cover", "biomass": "biomass", "growth": "growth",
           "uniformity": "uniformity", "water": "surface water"},
    "fr": {"vigor": "vigueur", "moisture": "humidité", "cover": "couverture", "biomass": "biomasse",
           "growth": "croissance", "uniformity": "homogénéité", "water": "eau de surface"},
}


def say(lang: str, key: str, **values: object) -> str:
    """The `key` template of `lang` (English when the language is not known) filled with `values`."""
    table = TEXTS.get(lang, TEXTS["en"])
    return table[key].format(**values)


def num(x: float) -> str:
    """An index value as written in answers: 2 decimals."""
    return f"{x:.2f}"


def signed(delta_hundredths: int) -> str:
    """A difference (in hundredths) with its sign: +0.16, -0.05, +0.00."""
    return f"{'+' if delta_hundredths >= 0 else '-'}{abs(delta_hundredths) / 100:.2f}"


def pct(fraction: float | None) -> str:
    """A fraction as a whole percent ("96"); "?" when unknown."""
    return "?" if fraction is None else f"{round(100 * fraction):.0f}"


def hundredths(x: float) -> int:
    """`x` rounded to 2 decimals, in hundredths: differences are taken between the values as written."""
    return int(round(round(x, 2) * 100))
