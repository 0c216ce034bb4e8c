"""Agronomic analysis texts for one parcel on one date, written from its spectral-index statistics.

Every qualitative statement comes from `CLASS_RULES`, the single table of class thresholds:
`classify` turns the statistics into aspect -> label, `write_analysis` renders those labels with
phrases drawn at random (seeded) from the phrase banks below, and `read_classes` reads the labels
back from a text (ours or a model's) by finding the same phrases.

Phrase banks are data. In a template, the text between `*...*` is the *key phrase* of its class:
it is printed without the stars, and `read_classes` looks for it. A key phrase must appear in no
template of any other class (tests check this), so every text can be read back unambiguously.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import random
import re
import string
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class ClassRule:
    """One aspect's classes: `value < breaks[i]` -> `labels[i]`; `labels[-1]` when above all breaks."""

    aspect: str
    stat: str
    breaks: tuple[float, ...]
    labels: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.labels) != len(self.breaks) + 1 or list(self.breaks) != sorted(self.breaks):
            raise ValueError(f"bad rule {self.aspect}: need ascending breaks and one more label")

    def label(self, value: float) -> str:
        """The class of `value` (a value equal to a break falls in the upper class)."""
        return self.labels[bisect.bisect_right(self.breaks, value)]


#: The single source of truth for every class stated in an analysis text.
CLASS_RULES: tuple[ClassRule, ...] = (
    # Seed project's NDVI thresholds.
    ClassRule("vigor", "ndvi_mean", (0.2, 0.5), ("low", "moderate", "high")),
    # NDMI = (NIR - SWIR1) / (NIR + SWIR1). The seed project called this index "NDWI" (Gao's
    # NDWI); here NDWI is McFeeters' green/NIR water index. Thresholds are the seed's.
    ClassRule("moisture", "ndmi_mean", (0.1, 0.3), ("low", "moderate", "high")),
    # SAVI (L=0.5): below 0.2 soil dominates the signal, above 0.4 a closed-ish canopy.
    ClassRule("cover", "savi_mean", (0.2, 0.4), ("bare_soil", "mixed", "vegetation_dominant")),
    ClassRule("biomass", "evi_mean", (0.2, 0.4), ("low", "moderate", "high")),
    # NDRE = (NIR - RE1) / (NIR + RE1) (spyndex "NDREI", Sentinel-2 B08/B05). It tracks canopy
    # chlorophyll and saturates later than NDVI, but with B05 (705 nm) its range is compressed:
    # about 0-0.1 over soil, roughly half to two-thirds of NDVI over crops, ~0.4-0.5 for dense
    # green canopies. So < 0.15 (NDVI ~< 0.3: emergence, or chlorophyll loss at senescence),
    # 0.15-0.3 a canopy still building up, >= 0.3 (NDVI ~> 0.6-0.7) a closed, chlorophyll-rich one.
    ClassRule("growth", "ndre_mean", (0.15, 0.3), ("early_or_senescent", "developing", "mature_canopy")),
    # Within-parcel spread of NDVI.
    ClassRule("uniformity", "ndvi_std", (0.05, 0.12), ("uniform", "variable", "heterogeneous")),
    # McFeeters NDWI = (G - NIR) / (G + NIR): positive over open water (0.0 itself counts as water).
    ClassRule("water", "ndwi_mean", (0.0,), ("none", "present")),
)
RULE_BY_ASPECT: dict[str, ClassRule] = {r.aspect: r for r in CLASS_RULES}
#: Aspects the evaluator scores; their phrasing is the most carefully separated.
EVALUATED_ASPECTS: tuple[str, ...] = ("vigor", "moisture", "cover")
LANGS: tuple[str, ...] = ("en", "fr")

# Phrase banks: PHRASES[lang][aspect][label] -> templates. `{v}` is the rule's statistic (2
# decimals); `{p10}`/`{p90}` are NDVI percentiles, used only when both are present.
PHRASES: dict[str, dict[str, dict[str, tuple[str, ...]]]] = {
    "en": {
        "vigor": {
            "low": ("Vegetation shows *low vigor* (NDVI {v}).",
                    "A mean NDVI of {v} points to *weak vegetation vigor*.",
                    "*Poor vigor* overall, with a mean NDVI of {v}."),
            "moderate": ("Vegetation shows *moderate vigor* (NDVI {v}).",
                         "A mean NDVI of {v} indicates *average vegetation vigor*.",
                         "*Medium vigor* is observed (NDVI {v})."),
            "high": ("Vegetation displays *high vigor* (NDVI {v}).",
                     "A mean NDVI of {v} reflects *strong vegetation vigor*.",
                     "*Vigorous vegetation* across the parcel, NDVI {v}."),
        },
        "moisture": {
            "low": ("NDMI of {v} indicates *low canopy moisture*, a possible sign of water stress.",
                    "The *canopy looks dry* (NDMI {v}).",
                    "*Moisture content is low* (NDMI {v}); water stress cannot be excluded."),
            "moderate": ("*Moderate canopy moisture* is observed (NDMI {v}).",
                         "NDMI of {v} suggests *intermediate water content* in the canopy.",
                         "*Moisture levels are moderate* (NDMI {v})."),
            "high": ("*High canopy moisture* is observed (NDMI {v}).",
                     "NDMI of {v} indicates a *well-hydrated canopy*.",
                     "*Moisture content is high* (NDMI {v})."),
        },
        "cover": {
            "bare_soil": ("*Bare soil* dominates the parcel (SAVI {v}).",
                          "The ground is *largely exposed soil* with sparse plants (SAVI {v}).",
                          "SAVI of {v} shows *very little vegetation cover*."),
            "mixed": ("SAVI of {v} indicates a *mix of soil and vegetation*.",
                      "*Partial vegetation cover* (SAVI {v}), with soil visible between plants.",
                      "Ground cover is *mixed soil and vegetation* (SAVI {v})."),
            "vegetation_dominant": ("*Vegetation dominates* the ground cover (SAVI {v}).",
                                    "SAVI of {v} reflects a *dense vegetation cover*.",
                                    "The soil is *mostly covered by vegetation* (SAVI {v})."),
        },
        "biomass": {
            "low": ("EVI of {v} suggests *low biomass*.",
                    "*Little above-ground biomass* (EVI {v}).",
                    "*Biomass is limited* (EVI {v})."),
            "moderate": ("*Moderate biomass* (EVI {v}).",
                         "EVI of {v} points to *average biomass* accumulation.",
                         "*Biomass is intermediate* (EVI {v})."),
            "high": ("EVI of {v} indicates *high biomass*.",
                     "*Abundant biomass* has accumulated (EVI {v}).",
                     "*Biomass is substantial* (EVI {v})."),
        },
        "growth": {
            "early_or_senescent": ("NDRE of {v} suggests an *early growth stage or senescence*.",
                                   "Canopy chlorophyll is low (NDRE {v}): the crop is *either emerging or senescing*.",
                                   "*Young or senescing crop* (NDRE {v})."),
            "developing": ("NDRE of {v} indicates a *developing canopy*.",
                           "The *canopy is still developing* (NDRE {v}).",
                           "*Growth is in progress*, with NDRE at {v}."),
            "mature_canopy": ("NDRE of {v} reflects a *mature canopy* rich in chlorophyll.",
                              "The *canopy is fully developed* (NDRE {v}).",
                              "*Peak canopy development* is indicated by NDRE {v}."),
        },
        "uniformity": {
            "uniform": ("The parcel is *spatially uniform* (NDVI standard deviation {v}).",
                        "*Homogeneous conditions* across the parcel (NDVI std {v}).",
                        "NDVI is *homogeneous across the parcel*, from {p10} to {p90} (10th-90th percentile)."),
            "variable": ("*Some within-field variability* is present (NDVI standard deviation {v}).",
                         "The parcel is *moderately variable* (NDVI std {v}).",
                         "NDVI ranges from {p10} to {p90} (10th-90th percentile), showing *moderate heterogeneity*."),
            "heterogeneous": ("The parcel is *strongly heterogeneous* (NDVI standard deviation {v}).",
                              "*Marked within-field heterogeneity* (NDVI std {v}) suggests uneven crop stands.",
                              "NDVI spreads from {p10} to {p90} (10th-90th percentile), revealing *strong heterogeneity*."),
        },
        "water": {
            "none": ("*No surface water* is detected (NDWI {v}).",
                     "NDWI of {v} shows *no sign of standing water*.",
                     "The parcel is *free of surface water* (NDWI {v})."),
            "present": ("NDWI of {v} suggests *open water* on the parcel.",
                        "*Possible flooding* or waterlogging (NDWI {v}).",
                        "*Surface water is likely present* (NDWI {v})."),
        },
    },
    "fr": {
        "vigor": {
            "low": ("La végétation présente une *faible vigueur* (NDVI {v}).",
                    "Un NDVI moyen de {v} indique une *vigueur végétative faible*.",
                    "*Végétation peu vigoureuse* (NDVI moyen {v})."),
            "moderate": ("La végétation présente une *vigueur modérée* (NDVI {v}).",
                         "Un NDVI moyen de {v} traduit une *vigueur moyenne*.",
                         "*Vigueur végétative intermédiaire* (NDVI {v})."),
            "high": ("La végétation présente une *forte vigueur* (NDVI {v}).",
                     "Un NDVI moyen de {v} indique une *vigueur élevée*.",
                     "*Végétation très vigoureuse* (NDVI moyen {v})."),
        },
        "moisture": {
            "low": ("Un NDMI de {v} indique une *faible teneur en eau* du couvert, signe possible de stress hydrique.",
                    "Le *couvert paraît sec* (NDMI {v}).",
                    "*Humidité du couvert faible* (NDMI {v})."),
            "moderate": ("*Humidité du couvert modérée* (NDMI {v}).",
                         "Un NDMI de {v} suggère une *teneur en eau moyenne*.",
                         "Le couvert est *moyennement hydraté* (NDMI {v})."),
            "high": ("*Humidité du couvert élevée* (NDMI {v}).",
                     "Un NDMI de {v} indique un *couvert bien hydraté*.",
                     "La *teneur en eau est élevée* (NDMI {v})."),
        },
        "cover": {
            "bare_soil": ("Le *sol nu* domine la parcelle (SAVI {v}).",
                          "Un SAVI de {v} révèle un *sol majoritairement découvert*.",
                          "*Couverture végétale très faible* (SAVI {v})."),
            "mixed": ("Un SAVI de {v} indique un *mélange de sol et de végétation*.",
                      "*Couverture végétale partielle* (SAVI {v}), le sol reste visible entre les plantes.",
                      "Le *couvert est mixte*, entre sol et végétation (SAVI {v})."),
            "vegetation_dominant": ("La *végétation domine* la couverture du sol (SAVI {v}).",
                                    "Un SAVI de {v} traduit une *couverture végétale dense*.",
                                    "Le *sol est presque entièrement couvert* par la végétation (SAVI {v})."),
        },
        "biomass": {
            "low": ("Un EVI de {v} suggère une *biomasse faible*.",
                    "*Peu de biomasse* aérienne (EVI {v}).",
                    "La *biomasse est limitée* (EVI {v})."),
            "moderate": ("*Biomasse modérée* (EVI {v}).",
                         "Un EVI de {v} indique une *biomasse moyenne*.",
                         "La *biomasse est intermédiaire* (EVI {v})."),
            "high": ("Un EVI de {v} indique une *biomasse élevée*.",
                     "*Biomasse abondante* (EVI {v}).",
                     "La *biomasse est importante* (EVI {v})."),
        },
        "growth": {
            "early_or_senescent": ("Un NDRE de {v} suggère un *stade précoce ou une sénescence*.",
                                   "Chlorophylle du couvert faible (NDRE {v}) : culture *en levée ou en sénescence*.",
                                   "*Couvert jeune ou sénescent* (NDRE {v})."),
            "developing": ("Un NDRE de {v} indique un *couvert en développement*.",
                           "Le *couvert est encore en croissance* (NDRE {v}).",
                           "*Croissance en cours*, NDRE à {v}."),
            "mature_canopy": ("Un NDRE de {v} traduit un *couvert mature*, riche en chlorophylle.",
                              "Le *couvert est pleinement développé* (NDRE {v}).",
                              "*Développement maximal du couvert* (NDRE {v})."),
        },
        "uniformity": {
            "uniform": ("La parcelle est *spatialement homogène* (écart-type du NDVI {v}).",
                        "*Conditions homogènes* sur la parcelle (écart-type NDVI {v}).",
                        "Le NDVI est *homogène sur la parcelle*, de {p10} à {p90} (percentiles 10-90)."),
            "variable": ("*Variabilité intra-parcellaire modérée* (écart-type du NDVI {v}).",
                         "La parcelle est *assez variable* (écart-type NDVI {v}).",
                         "Le NDVI va de {p10} à {p90} (percentiles 10-90), signe d'une *hétérogénéité modérée*."),
            "heterogeneous": ("La parcelle est *fortement hétérogène* (écart-type du NDVI {v}).",
                              "*Forte hétérogénéité intra-parcellaire* (écart-type NDVI {v}), peuplement irrégulier.",
                              "Le NDVI s'étend de {p10} à {p90} (percentiles 10-90), révélant une *forte hétérogénéité*."),
        },
        "water": {
            "none": ("*Aucune eau de surface* détectée (NDWI {v}).",
                     "Un NDWI de {v} ne montre *aucun signe d'eau stagnante*.",
                     "La parcelle est *exempte d'eau de surface* (NDWI {v})."),
            "present": ("Un NDWI de {v} suggère la *présence d'eau libre*.",
                        "*Inondation possible* ou engorgement (NDWI {v}).",
                        "*De l'eau de surface est probablement présente* (NDWI {v})."),
        },
    },
}

# Opening sentences (no class statement). `{pct}` is the valid-pixel percentage.
INTROS: dict[str, tuple[str, ...]] = {
    "en": ("Sentinel-2 analysis of the parcel for this date.",
           "Parcel summary from Sentinel-2 spectral indices.",
           "Agronomic reading of this acquisition.",
           "Sentinel-2 analysis of the parcel, based on {pct}% valid pixels."),
    "fr": ("Analyse Sentinel-2 de la parcelle pour cette date.",
           "Synthèse de la parcelle à partir des indices spectraux Sentinel-2.",
           "Lecture agronomique de cette acquisition.",
           "Analyse Sentinel-2 de la parcelle, fondée sur {pct} % de pixels valides."),
}
# Optional closing remark, keyed by the vigor class (it states no class itself).
CLOSINGS: dict[str, dict[str, tuple[str, ...]]] = {
    "en": {"low": ("A field visit is advisable to find the cause of the poor development.",
                   "The crop appears stressed or sparse; scouting is recommended."),
           "moderate": ("Crop condition is acceptable but could improve.",
                        "The crop is in fair condition; keep monitoring."),
           "high": ("Overall, crop development looks good.",
                    "Crop development looks favourable.")},
    "fr": {"low": ("Une visite de terrain est conseillée pour identifier la cause du faible développement.",
                   "La culture semble stressée ou clairsemée ; une visite de terrain est recommandée."),
           "moderate": ("L'état de la culture est correct mais perfectible.",
                        "La culture est dans un état moyen ; à surveiller."),
           "high": ("Dans l'ensemble, le développement de la culture est satisfaisant.",
                    "Le développement de la culture paraît favorable.")},
}
NO_INDEX: dict[str, str] = {"en": "No spectral index statistics are available for this date.",
                            "fr": "Aucune statistique d'indice spectral n'est disponible pour cette date."}

# Unusable observations, by reason. `{frac}` is VALID_FRACTION's text or "". Starred phrases are
# the keys `says_unusable` looks for.
INVALID: dict[str, dict[str, tuple[str, ...]]] = {
    "en": {
        "cloud": ("Observation *unusable*: the parcel is covered by clouds{frac}.",
                  "This acquisition is *unusable* because of cloud cover{frac}.",
                  "Clouds obscure the parcel, so this date is *not usable*{frac}."),
        "shadow": ("Observation *unusable*: the parcel lies in cloud shadow{frac}.",),
        "snow": ("Observation *unusable*: the parcel is covered by snow{frac}.",),
        "nodata": ("*No valid data* for the parcel on this date{frac}; the observation is *unusable*.",
                   "The image holds *no valid data* over the parcel{frac}, so this date is *not usable*."),
        "missing bands": ("Observation *unusable*: the image lacks the bands needed to assess the parcel.",),
        "other": ("Observation *unusable* for this date{frac}.",),
    },
    "fr": {
        "cloud": ("Observation *inexploitable* : la parcelle est couverte de nuages{frac}.",
                  "Cette acquisition est *inutilisable* en raison de la couverture nuageuse{frac}.",
                  "Les nuages masquent la parcelle ; cette date n'est *pas exploitable*{frac}."),
        "shadow": ("Observation *inexploitable* : la parcelle est dans l'ombre des nuages{frac}.",),
        "snow": ("Observation *inexploitable* : la parcelle est couverte de neige{frac}.",),
        "nodata": ("*Aucune donnée valide* pour la parcelle à cette date{frac} ; l'observation est *inexploitable*.",
                   "L'image ne contient *aucune donnée valide* sur la parcelle{frac} ; cette date n'est *pas exploitable*."),
        "missing bands": ("Observation *inexploitable* : il manque à l'image les bandes nécessaires "
                          "pour évaluer la parcelle.",),
        "other": ("Observation *inexploitable* pour cette date{frac}.",),
    },
}
# A valid observation of a parcel too small for a reliable value (`too_small`): said first, and no
# closing recommendation is made on such a value.
SMALL_PARCEL: dict[str, str] = {
    "en": "The parcel covers only {n} pixels at 10 m, too few for a reliable value: its edge pixels mix in "
          "the neighbouring land.",
    "fr": "La parcelle ne couvre que {n} pixels de 10 m, trop peu pour une valeur fiable : ses pixels de "
          "bordure mêlent les terres voisines.",
}
VALID_FRACTION: dict[str, str] = {"en": " ({pct}% valid pixels)", "fr": " ({pct} % de pixels valides)"}
INVALID_FOLLOWUPS: dict[str, tuple[str, ...]] = {
    "en": ("No assessment of vegetation vigor, moisture or cover is possible.",
           "Vegetation vigor, moisture and soil cover cannot be assessed.",
           "No agronomic conclusion can be drawn from this date."),
    "fr": ("Aucune évaluation de la vigueur, de l'humidité ni du couvert n'est possible.",
           "La vigueur, l'humidité et la couverture du sol ne peuvent pas être évaluées.",
           "Aucune conclusion agronomique ne peut être tirée de cette date."),
}
_REASON_ALIASES = {"clouds": "cloud", "cloudy": "cloud", "cirrus": "cloud", "no_data": "nodata",
                   "missing_bands": "missing bands",
                   "cloud_shadow": "shadow", "shadows": "shadow"}

_STARS = re.compile(r"\*([^*]+)\*")


def finite_or_none(value: object) -> float | None:
    """`value` as a finite float, or None (missing, NaN, infinite or not a number)."""
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


#: What a generator writes where an analysis states a number (`write_analysis(slots=True)`): the
#: writer fills every slot from the record, so the generator chooses the words (the classes) and
#: never decodes a value (`xvision_model.writer`).
NUMBER_SLOT = "#"


def _fmt(x: float) -> str:
    return f"{x:.2f}"


def _render(template: str, **values: str) -> str:
    return _STARS.sub(r"\1", template).format(**values)


def _fields(template: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(template) if f}


def _norm(text: str) -> str:
    """Lower-case, accents stripped, typographic apostrophes and whitespace unified."""
    text = unicodedata.normalize("NFKD", text.replace("\u2019", "'").replace("\u2018", "'"))
    text = "".join(c for c in text if not unicodedata.combining(c))
    return re.sub(r"\s+", " ", text.lower())


def _key_pattern(phrase: str) -> re.Pattern[str]:
    body = r"\s+".join(re.escape(w) for w in _norm(phrase).split())
    return re.compile(rf"(?<!\w){body}(?!\w)")


def class_keys() -> list[tuple[str, str, str, str]]:
    """Every (lang, aspect, label, key phrase) registered in PHRASES."""
    return [(lang, aspect, label, key)
            for lang, aspects in PHRASES.items()
            for aspect, labels in aspects.items()
            for label, templates in labels.items()
            for t in templates
            for key in _STARS.findall(t)]


def _unusable_keys() -> list[str]:
    """Every key phrase that declares an observation unusable (both languages)."""
    return [k for by_reason in INVALID.values() for ts in by_reason.values() for t in ts for k in _STARS.findall(t)]


_CLASS_PATTERNS = [(_key_pattern(k), aspect, label) for _, aspect, label, k in class_keys()]
_UNUSABLE_PATTERNS = [_key_pattern(k) for k in _unusable_keys()]


# Every key phrase (classes and unusable-observation statements), matched in the text as written
# (`fact_spans` needs offsets into the original string, which `_norm` does not keep), indexed by
# its first word: `fact_spans` runs on every training text of every epoch, and trying only the
# phrases that start with the word at hand is ~15x faster than scanning once per phrase.
def _fact_key_index() -> dict[str, list[re.Pattern[str]]]:
    keys = dict.fromkeys([k for _, _, _, k in class_keys()] + _unusable_keys())
    index: dict[str, list[re.Pattern[str]]] = {}
    for key in sorted(keys, key=len, reverse=True):  # longest first: a phrase beats its own prefix
        index.setdefault(re.match(r"\w+", key).group().lower(), []).append(
            re.compile(r"\s+".join(re.escape(w) for w in key.split()) + r"(?!\w)", re.IGNORECASE))
    return index


_FACT_KEYS = _fact_key_index()
#: Where one sentence of an analysis ends and the next begins ("." then space: decimals never split).
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def split_sentences(text: str) -> list[str]:
    """The sentences of `text` (each ends with its own "."; decimals never split)."""
    return [s for s in SENTENCE_END.split(text.strip()) if s]


_WORD = re.compile(r"(?<!\w)\w+")
# A number standing alone: not the "2" of "Sentinel-2" nor the "10" of "10th".
_NUMBER = re.compile(r"(?<![\w-])-?\d+(?:\.\d+)?(?!\w)")


def fact_spans(text: str) -> list[tuple[int, int]]:
    """Character spans (start, end) of `text` that state a fact: every key phrase of a class or
    of an unusable observation (either language) and every number, in order.

    These are the words an analysis takes from the record; the rest is phrasing. Training can
    weight them (`StageSettings.fact_weight`).
    """
    spans = [m.span() for m in _NUMBER.finditer(text)]
    for word in _WORD.finditer(text):
        for pattern in _FACT_KEYS.get(word.group().lower(), ()):  # longest phrase first
            if found := pattern.match(text, word.start()):
                spans.append(found.span())
                break
    return sorted(spans)


def classify(stats: Mapping[str, object]) -> dict[str, str]:
    """Aspect -> label for every rule of CLASS_RULES whose statistic is present and finite."""
    out = {}
    for rule in CLASS_RULES:
        value = finite_or_none(stats.get(rule.stat))
        if value is not None:
            out[rule.aspect] = rule.label(value)
    return out


def analysis_seed(parcel_id: str, date: str) -> int:
    """A seed for `write_analysis` that is stable across processes and machines (SHA-256 based)."""
    digest = hashlib.sha256(f"{parcel_id}|{date}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def write_analysis(stats: Mapping[str, object], *, valid: bool = True, reason: str | None = None,
                   lang: str = "en", seed: int = 0, too_small: bool = False, slots: bool = False) -> str:
    """An agronomic analysis of one parcel on one date, in English (`lang="en"`) or French ("fr").

    Valid observations state every class of `classify(stats)` (vigor, moisture, cover, biomass,
    growth, uniformity, surface water), each in one sentence quoting its index value; phrasing and
    the order of sentences after the vigor one vary with `seed` (deterministic for a given seed).
    With `valid=False` the text says the observation is unusable and why (`reason`: "cloud",
    "shadow", "snow", "nodata", "missing bands" (the raster lacks the bands of the indices: no
    fraction is quoted, nothing was measured), anything else is generic; `stats["valid_fraction"]` is quoted when
    given) and states no class at all: snow is never read as bare soil, water or a failed crop.
    With `too_small` (the parcel is under `indexer.observations.MIN_RELIABLE_PIXELS`;
    `stats["n_pixels"]` is quoted) a valid text says first that the values are not reliable, and
    ends with no recommendation. With `slots` every number is written `NUMBER_SLOT` instead (the
    same words, phrasing and order: a generator's training target).
    """
    if lang not in LANGS:
        raise ValueError(f"lang must be one of {LANGS}, got {lang!r}")
    rng = random.Random(seed)
    fmt = (lambda _x: NUMBER_SLOT) if slots else _fmt
    fraction = finite_or_none(stats.get("valid_fraction"))
    pct = None if fraction is None else (NUMBER_SLOT if slots else f"{100 * fraction:.0f}")

    if not valid:
        key = (reason or "other").strip().lower()
        key = _REASON_ALIASES.get(key, key)
        bank = INVALID[lang].get(key, INVALID[lang]["other"])
        frac = "" if pct is None else VALID_FRACTION[lang].format(pct=pct)
        return " ".join((_render(rng.choice(bank), frac=frac), rng.choice(INVALID_FOLLOWUPS[lang])))

    classes = classify(stats)
    values = {"p10": finite_or_none(stats.get("ndvi_p10")), "p90": finite_or_none(stats.get("ndvi_p90"))}
    sentences = []
    for rule in CLASS_RULES:
        if rule.aspect not in classes:
            continue
        available = {k: fmt(x) for k, x in values.items() if x is not None}
        available["v"] = fmt(finite_or_none(stats[rule.stat]))  # type: ignore[arg-type]
        templates = [t for t in PHRASES[lang][rule.aspect][classes[rule.aspect]]
                     if _fields(t) <= available.keys()]
        sentences.append(_render(rng.choice(templates), **available))

    intros = [t for t in INTROS[lang] if pct is not None or "{pct}" not in t]
    head = [_render(rng.choice(intros), pct=pct or "")]
    n_pixels = finite_or_none(stats.get("n_pixels"))
    if too_small:
        head.append(SMALL_PARCEL[lang].format(n="?" if n_pixels is None else NUMBER_SLOT if slots else f"{n_pixels:.0f}"))
    if not sentences:
        return " ".join(head + [NO_INDEX[lang]])
    # Vigor (when stated) leads; the other aspects come in a seeded order.
    first = sentences[:1] if "vigor" in classes else []
    rest = sentences[len(first):]
    rng.shuffle(rest)
    tail = []
    if "vigor" in classes and rng.random() < 0.5 and not too_small:
        tail.append(rng.choice(CLOSINGS[lang][classes["vigor"]]))
    return " ".join(head + first + rest + tail)


def read_classes(text: str) -> dict[str, str]:
    """Aspect -> label for every aspect whose key phrase occurs in `text` (English or French).

    Matching is case- and accent-insensitive. When a text states two classes for one aspect, the
    first stated wins.
    """
    norm = _norm(text)
    hits = sorted((m.start(), -len(m.group()), aspect, label)
                  for pattern, aspect, label in _CLASS_PATTERNS for m in pattern.finditer(norm))
    out: dict[str, str] = {}
    for _, _, aspect, label in hits:
        out.setdefault(aspect, label)
    return out


def says_unusable(text: str) -> bool:
    """Whether `text` (English or French) declares the observation unusable."""
    norm = _norm(text)
    return any(p.search(norm) for p in _UNUSABLE_PATTERNS)
