"""What every kind of answer shares: observation status, series, numbers and words.

Rules, documented once:

* Whether an observation is usable, and why not (cloud, snow, no data, a parcel too small, a
  suspect scene), is the library's rule (`indexer.observations.observation_status`); the
  past-season noise is `indexer.seasons`' and the crop calendar `indexer.phenology`'s.
* A window's summary is over all its usable observations: mean, range, and the dates of its peak
  and its low (never only the last one).
* Words for a value follow the crop calendar (`stage`): a low NDVI after a harvest is bare soil or
  stubble, before green-up bare soil or a young crop; nothing here ever says "water stress".
"""

from __future__ import annotations

import datetime as dt
import re
import statistics
from collections.abc import Iterable, Mapping, Sequence

import pandas as pd
from langchain_core.documents import Document

from assistant.compose import Composition
from indexer.core.schema import MEAN_COLUMNS
from indexer.observations import ObservationStatus, SuspectDate, observation_status
from indexer.phenology import CropEvent, crop_calendar
from indexer.seasons import noise_of

_FRAME_COLUMNS = ("record_id", "parcel_id", "date", "valid", "invalid_reason", "valid_fraction", "cloud_fraction",
                  "n_pixels", *MEAN_COLUMNS)
INDEX_LABELS = ("NDVI", "NDWI", "NDMI", "SAVI", "EVI", "NDRE")

MONTHS = {
    "en": ("January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December"),
    "fr": ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre",
           "octobre", "novembre", "décembre"),
}

#: Stored crop names (lower case, singular) -> French, for answers in French.
CROPS_FR = {
    "winter wheat": "blé d'hiver", "wheat": "blé", "durum wheat": "blé dur", "spring wheat": "blé de printemps",
    "winter barley": "orge d'hiver", "spring barley": "orge de printemps", "barley": "orge",
    "maize": "maïs", "corn": "maïs", "sugar beet": "betterave sucrière", "beet": "betterave",
    "potato": "pomme de terre", "potatoes": "pommes de terre", "permanent grass crops": "prairies permanentes",
    "permanent grass": "prairie permanente", "grass": "prairie", "grassland": "prairie",
    "rapeseed": "colza", "sunflower": "tournesol", "soybean": "soja", "oat": "avoine", "rye": "seigle",
    "pea": "pois", "flax": "lin", "spelt": "épeautre", "alfalfa": "luzerne", "fallow": "jachère",
    "orchard": "verger", "vineyard": "vigne", "vegetable": "légumes",
}


# ----------------------------------------------------------------------------- observations
def observation(doc: Document, suspects) -> ObservationStatus:
    """The library's status of one observation (`indexer.observations.observation_status`)."""
    return observation_status(doc.metadata, suspects)


def usable(doc: Document, suspects) -> bool:
    return observation(doc, suspects).usable


def status(doc: Document, suspects) -> str:
    """"usable", "cloud", "snow", "nodata", "too_small" or "suspect" (`indexer.observations`)."""
    return observation(doc, suspects).status


def suspect_of(doc: Document, suspects) -> SuspectDate | None:
    return observation(doc, suspects).suspect


def fold_text(text: str) -> str:
    """The question folded as the parser reads it (lower case, no accents)."""
    from assistant.parsing.text import fold

    return fold(text)


def column_of(index: str | None) -> str:
    return f"{(index or 'ndvi').lower()}_mean"


def label_of(column: str) -> str:
    """"NDVI" for ndvi_mean; "NDVI std" for the spread ndvi_std (uniformity is read on it)."""
    index, _, stat = column.partition("_")
    return f"{index.upper()} std" if stat == "std" else index.upper()


def good(docs: Iterable[Document], suspects: Mapping[str, SuspectDate], column: str) -> list[Document]:
    """The usable observations with a value of `column`, oldest first."""
    return sorted((d for d in docs if usable(d, suspects) and d.metadata.get(column) is not None),
                  key=lambda d: d.metadata["date"])


def by_parcel(docs: Iterable[Document]) -> dict[str, list[Document]]:
    out: dict[str, list[Document]] = {}
    for doc in sorted(docs, key=lambda d: (d.metadata["parcel_id"], d.metadata["date"])):
        out.setdefault(doc.metadata["parcel_id"], []).append(doc)
    return out


def day(doc: Document | str) -> dt.date:
    text = doc.metadata["date"] if isinstance(doc, Document) else doc
    return dt.date.fromisoformat(str(text)[:10])


def doy_distance(a: dt.date, b: dt.date) -> int:
    diff = abs(a.timetuple().tm_yday - b.timetuple().tm_yday)
    return min(diff, 365 - diff)


def value(doc: Document, column: str) -> float:
    return float(doc.metadata[column])


# ----------------------------------------------------------------------------- numbers
def num(x: float) -> str:
    return f"{x:.2f}"


def hundredths(x: float) -> int:
    return int(round(round(x, 2) * 100))


def signed(delta_hundredths: int) -> str:
    return f"{'+' if delta_hundredths >= 0 else '-'}{abs(delta_hundredths) / 100:.2f}"


def pct(fraction: float | None) -> str:
    return "?" if fraction is None else f"{round(100 * fraction):.0f}"


def mean_of(out: Composition, xs: Sequence[float]) -> str:
    """The mean of `xs` as written (2 decimals), declared to the gate as a derived value."""
    text = num(statistics.fmean(xs))
    out.derived.append(text)
    return text


def median_of(out: Composition, xs: Sequence[float]) -> str:
    text = num(statistics.median(xs))
    out.derived.append(text)
    return text


# ----------------------------------------------------------------------------- words
def crop_name(value: str, lang: str) -> str:
    """A stored crop name as an answer in `lang` says it (French from `CROPS_FR`)."""
    low = value.strip().lower()
    if lang != "fr":
        return low
    return CROPS_FR.get(low) or CROPS_FR.get(low.removesuffix("s")) or low


def month_label(lang: str, month: int, year: int | None = None) -> str:
    name = MONTHS[lang if lang in MONTHS else "en"][month - 1]
    return f"{name} {year}" if year else name


def of_month(lang: str, month: int, year: int | None = None) -> str:
    """"of June 2019" / "de juin 2019" / "d'octobre 2019" (elision before a vowel)."""
    name = month_label(lang, month, year)
    if lang != "fr":
        return f"of {name}"
    return f"d'{name}" if name[0] in "aeiouéèh" else f"de {name}"


def crop_of(doc: Document) -> str | None:
    attrs = doc.metadata.get("attributes") or {}
    value = attrs.get("crop_name") or attrs.get("crop")
    return str(value) if value else None


_STAGES = {
    "en": {"dense": "a dense green canopy", "partial": "partial green cover", "sparse": "sparse green cover",
           "bare": "bare soil or a young crop", "stubble": "bare soil or stubble after the harvest"},
    "fr": {"dense": "un couvert vert dense", "partial": "un couvert vert partiel", "sparse": "un couvert vert clairsemé",
           "bare": "du sol nu ou une culture jeune", "stubble": "du sol nu ou des chaumes après la récolte"},
}


def stage(ndvi: float, lang: str, after_harvest: bool = False) -> str:
    """What an NDVI says about the ground, by the crop calendar (see the module docstring)."""
    words = _STAGES.get(lang, _STAGES["en"])
    if ndvi < 0.3:
        return words["stubble" if after_harvest else "bare"]
    if ndvi < 0.5:
        return words["sparse"]
    if ndvi < 0.7:
        return words["partial"]
    return words["dense"]


REASONS = {
    "en": {"cloud": "cloud", "snow": "snow", "nodata": "no data", "suspect": "a suspect scene (haze or thin cloud)",
           "too_small": "a parcel too small for a reliable value", "unusable": "flagged unusable"},
    "fr": {"cloud": "nuages", "snow": "neige", "nodata": "pas de données", "suspect": "scène suspecte (brume ou voile nuageux)",
           "too_small": "une parcelle trop petite pour une valeur fiable", "unusable": "inexploitable"},
}


def reason_words(reason: str, lang: str) -> str:
    table = REASONS.get(lang, REASONS["en"])
    return table.get(reason, reason.replace("_", " "))


# ----------------------------------------------------------------------------- library rules
def frame(docs: Iterable[Document], suspects) -> pd.DataFrame:
    """Documents as the record table the library's rules take (`indexer.seasons`,
    `indexer.phenology`), with the `usable` column of `usable` so both read the same observations."""
    rows = []
    for d in docs:
        m = d.metadata
        rows.append({**{c: m.get(c) for c in _FRAME_COLUMNS}, "usable": usable(d, suspects)})
    return pd.DataFrame(rows, columns=[*_FRAME_COLUMNS, "usable"])


def crop_peers(ctx, records: Sequence[Document]) -> list[Document]:
    """The records of the other parcels of the crops of `records` (what a parcel's change is set
    against: the season moves every parcel of a crop alike)."""
    own = {d.metadata["parcel_id"] for d in records}
    crops = sorted({crop_of(d) for d in records} - {None})
    if not crops:
        return []
    return [d for d in ctx.records(attributes={"attr_crop_name": crops}) if d.metadata["parcel_id"] not in own]


def southern(ctx, docs: Sequence[Document]) -> bool:
    """Whether the parcel of `docs` lies south of the equator (its seasons are six months apart)."""
    lat = ctx.context.latitude([docs[0].metadata["parcel_id"]]) if docs else None
    return lat is not None and lat < 0


def events(series: Sequence[Document], suspects, column: str = "ndvi_mean", date_from: str | None = None,
           date_to: str | None = None, *, south: bool = False) -> list[CropEvent]:
    """One parcel's crop-calendar events (`indexer.phenology.crop_calendar`) over its usable
    series, with its crop (a spring-sown crop's fall to bare soil before sowing is `cleared`)."""
    if not series:
        return []
    return crop_calendar(frame(series, suspects), column, date_from=date_from, date_to=date_to,
                         crop=crop_of(series[0]), southern=south)


def after_harvest(doc: Document, series: Sequence[Document], suspects, within_days: int = 120, *,
                  south: bool = False) -> bool:
    """Whether `doc` lies after a harvest or a cut of the parcel's calendar (ending on or before it, at most
    `within_days` before) with no regrowth since (no emergence, green-up or peak in between).
    A field cleared for sowing is not harvested: it reads "bare soil or a young crop"."""
    found = events(series, suspects, south=south)
    date = doc.metadata["date"]
    harvests = [e for e in found if e.kind in ("harvest", "cut") and e.end <= date
                and (day(doc) - day(e.end)).days <= within_days]
    if not harvests:
        return False
    last = harvests[-1].end
    return not any(e.kind in ("emergence", "green-up", "peak") and last < e.start and e.end <= date for e in found)


def noise(column: str) -> float:
    """The change within which two observations are "stable" (`indexer.seasons.noise_of`)."""
    return noise_of(column)


def cite_all(out: Composition, docs: Iterable[Document], columns: Sequence[str]) -> None:
    for d in docs:
        out.cite(d, columns)


def values(doc: Document, columns: Sequence[str]) -> str:
    """"NDVI 0.78, NDMI 0.31": the record's values of `columns`, as written in answers."""
    return ", ".join(f"{label_of(c)} {num(doc.metadata[c])}" for c in columns if doc.metadata.get(c) is not None)


def history_rows(docs: Iterable[Document], suspects, column: str) -> list[dict]:
    """The `history` items of a result: one per observation read (the app draws them)."""
    return [{"parcel_id": d.metadata["parcel_id"], "date": d.metadata["date"], "record_id": d.metadata["record_id"],
             "window": d.metadata.get("window"), column: d.metadata.get(column), "valid": d.metadata["valid"],
             "status": status(d, suspects), "suspect": status(d, suspects) == "suspect",
             "valid_fraction": d.metadata.get("valid_fraction"), "cloud_fraction": d.metadata.get("cloud_fraction")}
            for d in docs]


def stable_words(lang: str, delta: int, noise_value: float) -> str:
    """"stable" when |delta| (hundredths) is within the noise, else "higher" / "lower" (both languages)."""
    if abs(delta) <= round(noise_value * 100):
        return "stable" if lang != "fr" else "stable"
    if lang == "fr":
        return "en hausse" if delta > 0 else "en baisse"
    return "higher" if delta > 0 else "lower"


_FR_TIDY = (
    (re.compile(r"\b([Dd])e ([aeiouyéèêâîôûh])", re.IGNORECASE), r"\1'\2"),  # "de octobre" -> "d'octobre"
    (re.compile(r"\ben printemps\b"), "au printemps"),
    (re.compile(r"\ben toute l'archive\b"), "sur toute l'archive"),
    (re.compile(r"\ben (\d{4}-\d{2}-\d{2})\b"), r"le \1"),
    (re.compile(r"\ble le\b"), "le"),
    (re.compile(r"\ben (fin|debut|début|mi-)"), r"\1"),
    (re.compile(r"\b([Ll])a ([aeiouyéèêâîôûh])(?=\w)", re.IGNORECASE), r"\1'\2"),
)


_EN_TIDY = ((re.compile(r"\bin (\d{4}-\d{2}-\d{2})\b"), r"on \1"),)


def semicolon(lang: str) -> str:
    """The separator of a list of clauses: French sets a space before the semicolon."""
    return " ; " if lang == "fr" else "; "


def tidy(lang: str, sentence: str) -> str:
    """Prepositions and French elisions that templates filled with labels get wrong ("in 2019-06-20"
    -> "on 2019-06-20"; "de octobre" -> "d'octobre", "en printemps" -> "au printemps", "en
    2019-06-20" -> "le 2019-06-20")."""
    if lang != "fr":
        for pattern, repl in _EN_TIDY:
            sentence = pattern.sub(repl, sentence)
        return sentence
    for pattern, repl in _FR_TIDY:
        sentence = pattern.sub(repl, sentence)
    return sentence
