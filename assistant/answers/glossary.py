"""What an index means ("What does NDMI mean?", "Qu'est-ce que le NDRE ?"): what it measures, from
which Sentinel-2 bands, and how the analyses read it — the class thresholds quoted from the one
table the indexer writes its analyses with (`indexer.analysis.CLASS_RULES`), so the explanation
and the analyses can never disagree. About the method, not a field: cites nothing."""

from __future__ import annotations

from assistant.answers import common as K
from assistant.answers.turn import AnswerContext, Found, Turn
from assistant.compose import Composition
from indexer.analysis import CLASS_RULES

#: Index -> (what it measures, its bands), per language.
MEANING: dict[str, dict[str, tuple[str, str]]] = {
    "en": {
        "ndvi": ("the Normalized Difference Vegetation Index: how much green, photosynthesising vegetation covers "
                 "the parcel", "near infrared (B08) against red (B04)"),
        "ndmi": ("the Normalized Difference Moisture Index: the water held in the canopy's leaves",
                 "near infrared (B08) against shortwave infrared (B11)"),
        "ndwi": ("the Normalized Difference Water Index (McFeeters): open water on the parcel, such as flooding or "
                 "standing water", "green (B03) against near infrared (B08)"),
        "savi": ("the Soil-Adjusted Vegetation Index: vegetation cover corrected for the bare soil showing between "
                 "the plants", "near infrared (B08) and red (B04), with a soil factor of 0.5"),
        "evi": ("the Enhanced Vegetation Index: green biomass, less saturated than NDVI over dense canopies",
                "near infrared (B08), red (B04) and blue (B02)"),
        "ndre": ("the Normalized Difference Red-Edge index: the canopy's chlorophyll, which tells a developing crop "
                 "from a mature or senescent one", "near infrared (B08) against red edge (B05)"),
    },
    "fr": {
        "ndvi": ("l'indice de végétation par différence normalisée : la part de végétation verte et active qui "
                 "couvre la parcelle", "le proche infrarouge (B08) face au rouge (B04)"),
        "ndmi": ("l'indice d'humidité par différence normalisée : l'eau contenue dans les feuilles du couvert",
                 "le proche infrarouge (B08) face à l'infrarouge moyen (B11)"),
        "ndwi": ("l'indice d'eau par différence normalisée (McFeeters) : l'eau libre sur la parcelle, inondation ou "
                 "eau stagnante", "le vert (B03) face au proche infrarouge (B08)"),
        "savi": ("l'indice de végétation ajusté au sol : le couvert végétal corrigé du sol nu visible entre les "
                 "plantes", "le proche infrarouge (B08) et le rouge (B04), avec un facteur de sol de 0.5"),
        "evi": ("l'indice de végétation amélioré : la biomasse verte, moins saturé que le NDVI sur les couverts "
                "denses", "le proche infrarouge (B08), le rouge (B04) et le bleu (B02)"),
        "ndre": ("l'indice red-edge par différence normalisée : la chlorophylle du couvert, qui distingue une "
                 "culture en développement d'une culture mûre ou sénescente", "le proche infrarouge (B08) face au "
                 "red edge (B05)"),
    },
}
#: Class labels of CLASS_RULES in words.
LABELS: dict[str, dict[str, str]] = {
    "en": {"low": "low", "moderate": "moderate", "high": "high", "bare_soil": "mostly bare soil",
           "mixed": "soil and vegetation mixed", "vegetation_dominant": "vegetation dominant",
           "early_or_senescent": "emerging or senescent", "developing": "a canopy building up",
           "mature_canopy": "a mature, chlorophyll-rich canopy", "none": "no open water", "present": "open water"},
    "fr": {"low": "faible", "moderate": "modéré", "high": "élevé", "bare_soil": "sol surtout nu",
           "mixed": "sol et végétation mêlés", "vegetation_dominant": "végétation dominante",
           "early_or_senescent": "levée ou sénescence", "developing": "couvert en développement",
           "mature_canopy": "couvert mûr et riche en chlorophylle", "none": "pas d'eau libre",
           "present": "eau libre"},
}
#: The aspect an index's mean is read for, in words.
ASPECTS: dict[str, dict[str, str]] = {
    "en": {"vigor": "vigor", "moisture": "moisture", "cover": "cover", "biomass": "biomass",
           "growth": "growth stage", "water": "surface water"},
    "fr": {"vigor": "la vigueur", "moisture": "l'humidité", "cover": "le couvert", "biomass": "la biomasse",
           "growth": "le stade", "water": "l'eau de surface"},
}
TEXTS = {
    "en": {"what": "{name} is {meaning}; it compares {bands}, on a scale from -1 to 1.",
           "read": "The analyses read its parcel mean for {aspect}: {bands}.",
           "below": "below {x}: {label}", "from": "from {lo} to {hi}: {label}", "above": "{x} and above: {label}",
           "which": "Which index do you mean? I can explain NDVI, NDMI, NDWI, SAVI, EVI and NDRE."},
    "fr": {"what": "Le {name} est {meaning} ; il compare {bands}, sur une échelle de -1 à 1.",
           "read": "Les analyses lisent sa moyenne sur la parcelle pour {aspect} : {bands}.",
           "below": "sous {x} : {label}", "from": "de {lo} à {hi} : {label}", "above": "{x} et plus : {label}",
           "which": "De quel indice parlez-vous ? Je peux expliquer NDVI, NDMI, NDWI, SAVI, EVI et NDRE."},
}


def retrieve(turn: Turn, ctx: AnswerContext) -> Found:
    return Found()


def compose(turn: Turn, ctx: AnswerContext) -> Composition:
    out = Composition()
    lang = turn.lang if turn.lang in TEXTS else "en"
    say = TEXTS[lang]
    index = turn.plan.index if turn.plan is not None else None
    if index not in MEANING[lang]:
        out.add(say["which"])
        return out
    meaning, bands = MEANING[lang][index]
    out.add(say["what"].format(name=index.upper(), meaning=meaning, bands=bands))
    out.rules += [-1, 1, 0.5]
    rule = next((r for r in CLASS_RULES if r.stat == f"{index}_mean"), None)
    if rule is not None:
        names = LABELS[lang]
        edges = [None, *rule.breaks, None]
        parts = []
        for lo, hi, label in zip(edges, edges[1:], rule.labels):
            if lo is None:
                parts.append(say["below"].format(x=f"{hi:g}", label=names[label]))
            elif hi is None:
                parts.append(say["above"].format(x=f"{lo:g}", label=names[label]))
            else:
                parts.append(say["from"].format(lo=f"{lo:g}", hi=f"{hi:g}", label=names[label]))
        out.add(say["read"].format(aspect=ASPECTS[lang][rule.aspect], bands=K.semicolon(lang).join(parts)))
        out.rules += list(rule.breaks)
    return out
