"""The bank: questions of every kind the assistant must answer, written the way people write them.

Every question is drawn from the facts of `eval.bank.truth` (never from the project), with a fixed
seed, and carries an `Expect` (`eval.bank.check`) built from those facts. A candidate whose facts
would depend on where a product draws its usability line (a partial observation in the window, two
parcels tied at a ranking's edge, a value next to a threshold) is not asked: the bank tests the
kinds, not the bank's own conventions.

The phrasings mix English and French, short and long, typos ("parcle", "jully", "juilet"), and the
three ways users name a parcel ("parcel 9", "field 009", "Flanders31UES-009").
"""

from __future__ import annotations

import datetime as dt
import random
import re
from dataclasses import dataclass

import numpy as np

from eval.bank.check import Expect
from eval.bank.truth import Facts, doy_distance

KINDS = ("window", "past", "calendar", "months", "why", "damage", "quality", "groups", "several", "similar",
         "archive", "decline")
KIND_TITLES = {
    "window": "a parcel on a date, in a month or a season",
    "past": "comparison with past seasons (by day of year)",
    "calendar": "trend and crop calendar (peak, green-up, harvest)",
    "why": "why a value changed (harvest, cloud, snow)",
    "damage": "damage asked about (hail, frost, disease): what the imagery can say",
    "months": "a parcel's months ranked (the best or the worst month of a year)",
    "quality": "observation quality (cloudy, snowy, unusable dates)",
    "groups": "groups: aggregates, rankings, thresholds, laggards",
    "several": "several named parcels compared",
    "similar": "similar parcels",
    "archive": "what the archive holds",
    "decline": "questions to decline or clarify",
}

MONTHS_EN = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
             "November", "December"]
MONTHS_FR = ["janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
             "novembre", "décembre"]
#: Misspellings people type for months (checked to be read as the month, see the issue's 'jully').
MONTH_TYPOS = {6: ["jnue", "juen"], 7: ["jully", "juyl"], 5: ["mai"], 10: ["ocotber", "octber"], 8: ["agust"],
               4: ["apirl"], 9: ["septmber"]}
MONTH_TYPOS_FR = {7: ["juilet"], 10: ["octobr"], 6: ["jiun"], 9: ["setpembre"]}
#: Crop names as people write them, English and French (the parcels file's names are the keys).
CROP_WORDS = {
    "Winter wheat": (["winter wheat", "wheat"], ["blé d'hiver", "blé"]),
    "Winter barley": (["winter barley"], ["orge d'hiver"]),
    "Barley": (["barley"], ["orge"]),
    "Maize": (["maize", "corn"], ["maïs"]),
    "Sugar beet": (["sugar beet", "beet"], ["betterave sucrière", "betterave"]),
    "Potatoes": (["potatoes", "potato"], ["pommes de terre"]),
    "Permanent grass crops": (["grassland", "permanent grass", "pasture"], ["prairie permanente", "prairies"]),
}
#: The folded regex that finds a crop's name in an answer, English or French.
CROP_PATTERNS = {
    "Winter wheat": r"(winter wheat|ble d'hiver|froment d'hiver)",
    "Winter barley": r"(winter barley|orge d'hiver)",
    "Barley": r"(?<!winter )(?<!d'hiver )\b(barley|orge)\b(?! d'hiver)",
    "Maize": r"\b(maize|corn|mais)\b",
    "Sugar beet": r"(sugar beet|betterave)",
    "Potatoes": r"(potato|pomme[s]? de terre)",
    "Permanent grass crops": r"(grass|prairie|pasture|herbe)",
}

HARVEST_WORDS = r"(harvest|recolt|moisson|fauch|mow|cut\b|bare soil|sol nu|stubble|chaume|residue)"
CLOUD_WORDS = r"(cloud|nuage|nuageu|cirrus|shadow|ombre|couvert|overcast|obscured|masque)"
SNOW_WORDS = r"(snow|neige|enneig)"
UNUSABLE_WORDS = r"(cloud|nuage|unusable|not usable|no usable|inexploitable|pas exploitable|no clear|masked|obscured|" \
                 r"couvert|snow|neige|not observ|non observ|pas observ|hidden|cache)"
QUALITY_WORDS = UNUSABLE_WORDS
PEAK_WORDS = r"(peak|pic|maximum|max\b|highest|plus haut|plus eleve|culmin)"
GREENUP_WORDS = (r"(green.?up|greening|emergence|emerg|levee|\blev[ea]\b|sprout|reprise|croissance|growth|\brose\b|"
                 r"\brise|risen|monte|hausse)")
WRONG_CAUSE = r"(water stress|stress hydrique|drought|secheresse|open water|eau libre|disease|maladie|flood|inond)"
WEAK_VIGOR = r"(weak vigou?r|low vigou?r|faible vigueur|vigueur faible|poor vigou?r)"
MEAN_WORDS = r"(mean|averag|moyen)"
MEDIAN_WORDS = r"(median)"
LOW_WORDS = r"(min|lowest|\blow\b|\bfrom\b|plus bas|plus faible|\bde\b|\bdu\b|range|plage|entre|between)"
HIGH_WORDS = r"(max|highest|\bhigh\b|\bto\b|plus haut|plus eleve|\ba\b|\bau\b|range|plage|\bet\b|\band\b)"


@dataclass
class Question:
    """One question of the bank with the facts a right answer contains."""

    kind: str
    text: str
    lang: str
    expect: Expect
    note: str = ""  # what the facts are, for the failures list

    def __post_init__(self) -> None:
        if self.lang == "fr":  # "de le champ" -> "du champ", "à le champ" -> "au champ"
            self.text = re.sub(r"\bde le ", "du ", re.sub(r"\bà le ", "au ", self.text))
        self.text = self.text[:1].upper() + self.text[1:]


# -- how people write parcels, dates and months ---------------------------------------------------
def num(parcel: str) -> int:
    return int(parcel.rsplit("-", 1)[-1])


def parcel_ref(parcel: str, style: int, lang: str = "en") -> str:
    """The parcel the way a user types it: 'parcel 9', 'field 009', 'Flanders31UES-009', 'parcle 9', ..."""
    n = num(parcel)
    en = [f"parcel {n}", f"field {n:03d}", parcel, f"parcle {n}", f"parcel {n:03d}", f"field #{n}"]
    fr = [f"la parcelle {n}", f"le champ {n:03d}", f"la parcelle {parcel}", f"la parcele {n}", f"la parcelle n° {n}",
          f"le champ {n}"]
    return (en if lang == "en" else fr)[style % 6]


def date_ref(date: str, style: int, lang: str = "en") -> str:
    """A date as people write it: ISO, '16 May 2019', 'May 16, 2019', '16/05/2019', '16 mai 2019'."""
    d = dt.date.fromisoformat(date)
    if lang == "fr":
        day = "1er" if d.day == 1 else str(d.day)
        return [f"{day} {MONTHS_FR[d.month - 1]} {d.year}", date, d.strftime("%d/%m/%Y")][style % 3]
    return [date, f"{d.day} {MONTHS_EN[d.month - 1]} {d.year}", f"{MONTHS_EN[d.month - 1]} {d.day}, {d.year}",
            d.strftime("%d/%m/%Y")][style % 4]


def month_ref(year: int, month: int, style: int, lang: str = "en") -> str:
    """A month, sometimes misspelt ('jully 2019', 'juilet 2019') or abbreviated."""
    if lang == "fr":
        typos = MONTH_TYPOS_FR.get(month, [])
        name = typos[0] if typos and style % 3 == 1 else MONTHS_FR[month - 1]
    else:
        typos = [t for t in MONTH_TYPOS.get(month, []) if t != "mai"]
        name = typos[style % len(typos)] if typos and style % 3 == 2 else MONTHS_EN[month - 1]
        if style % 5 == 4:
            name = name.lower()
    return f"{name} {year}"


def month_bounds(year: int, month: int) -> tuple[str, str]:
    end = dt.date(year + (month == 12), month % 12 + 1, 1) - dt.timedelta(days=1)
    return f"{year}-{month:02d}-01", end.isoformat()


SEASONS = {  # meteorological bounds, and the astronomical ones a product may use instead
    "spring": ((3, 1, 5, 31), (3, 20, 6, 20)),
    "summer": ((6, 1, 8, 31), (6, 21, 9, 22)),
    "autumn": ((9, 1, 11, 30), (9, 23, 12, 20)),
}
SEASON_FR = {"spring": "printemps", "summer": "été", "autumn": "automne"}


def season_bounds(season: str, year: int) -> list[tuple[str, str]]:
    return [(dt.date(year, a, b).isoformat(), dt.date(year, c, d).isoformat()) for a, b, c, d in SEASONS[season]]


def rounded(values: list[float]) -> list[float]:
    return sorted({round(v, 4) for v in values})


# -- the kinds ------------------------------------------------------------------------------------
def window_questions(f: Facts, rng: random.Random) -> list[Question]:
    """A parcel on a date, in a month or a season; and a parcel on a date it was not seen."""
    qs: list[Question] = []
    big = [p for p in f.parcels if not f.is_sliver(p)]
    # on a date
    on_date_en = ["How is {p} doing on {d}?", "NDVI of {p} on {d}", "what did {p} look like on {d}",
                  "Can you tell me the condition of {p} on {d}? I want the vegetation index."]
    on_date_fr = ["Comment allait {p} le {d} ?", "NDVI de {p} le {d}", "Quel était l'état de {p} le {d} ?"]
    cands = [(p, d) for p in big for d in f.clear_dates(p) if f.get(p, d).clear == 1.0]
    for i, (p, d) in enumerate(rng.sample(cands, 7)):
        lang = "fr" if i % 3 == 2 else "en"
        tpl = (on_date_fr if lang == "fr" else on_date_en)[i % (3 if lang == "fr" else 4)]
        text = tpl.format(p=parcel_ref(p, i, lang), d=date_ref(d, i, lang))
        qs.append(Question("window", text, lang, Expect(
            parcels={p}, parcels_allowed={p}, values=[[f.ndvi(p, d)]], dates={d}, cite={(p, d)},
            default_year=int(d[:4])), f"{p} {d}: NDVI {f.ndvi(p, d):.3f}"))
    # in a month: mean, peak and low over every clear date of the month
    month_en = ["How was {p} in {m}?", "how is {p} doign in {m}", "{p} {m} NDVI",
                "What was the vegetation like on {p} during {m}, over the whole month?"]
    month_fr = ["Comment allait {p} en {m} ?", "État de {p} en {m}"]
    months = sorted({(int(d[:4]), int(d[5:7])) for d in f.dates})
    cands = []
    for p in big:
        for y, m in months:
            start, end = month_bounds(y, m)
            w = f.window(p, start, end)
            if w and len(w["dates"]) >= 2 and f.window_is_clean(p, start, end) and w["peak"][1] - w["low"][1] > 0.03:
                cands.append((p, y, m, w))
    for i, (p, y, m, w) in enumerate(rng.sample(cands, 6)):
        lang = "fr" if i % 3 == 1 else "en"
        tpl = (month_fr if lang == "fr" else month_en)[i % (2 if lang == "fr" else 4)]
        start, end = month_bounds(y, m)
        text = tpl.format(p=parcel_ref(p, i + 1, lang), m=month_ref(y, m, i, lang))
        qs.append(Question("window", text, lang, Expect(
            parcels={p}, parcels_allowed={p}, values_with=[(MEAN_WORDS, [w["mean"]])], dates={w["peak"][0], w["low"][0]},
            cite_scope=({p}, start, end), default_year=y),
            f"{p} {y}-{m:02d}: clear dates {w['dates']}, mean {w['mean']:.3f}, peak {w['peak'][0]} {w['peak'][1]:.3f}, "
            f"low {w['low'][0]} {w['low'][1]:.3f}"))
    # in a season (meteorological or astronomical bounds accepted)
    season_en = ["How did {p} do in {s} {y}?", "{p} over the {s} of {y}", "give me the {s} {y} picture for {p}"]
    season_fr = ["Comment s'est comporté {p} au {s} {y} ?", "{p} pendant l'{s} {y}"]
    cands = []
    for p in big:
        for season in SEASONS:
            for y in (2018, 2019):
                bounds = season_bounds(season, y)
                ws = [f.window(p, a, b) for a, b in bounds]
                if (all(w and len(w["dates"]) >= 2 for w in ws) and all(f.window_is_clean(p, a, b) for a, b in bounds)
                        and f.dates[0] <= bounds[0][0] and bounds[1][1] <= f.dates[-1]):
                    cands.append((p, season, y, ws, bounds))
    for i, (p, season, y, ws, bounds) in enumerate(rng.sample(cands, min(4, len(cands)))):
        lang = "fr" if i == 1 else "en"
        s = SEASON_FR[season] if lang == "fr" else season
        tpl = season_fr[0 if season == "spring" else 1] if lang == "fr" else season_en[i % 3]
        if lang == "fr" and season == "spring":
            tpl = "Comment s'est comporté {p} au {s} {y} ?"
        text = tpl.format(p=parcel_ref(p, i + 2, lang), s=s, y=y)
        qs.append(Question("window", text, lang, Expect(
            parcels={p}, parcels_allowed={p}, values_with=[(MEAN_WORDS, [w["mean"] for w in ws])],
            date_any=[{w["peak"][0] for w in ws}], any_words=PEAK_WORDS,
            cite_scope=({p}, bounds[0][0], max(b for _, b in bounds)),
            default_year=y),
            f"{p} {season} {y}: mean {' or '.join(format(w['mean'], '.3f') for w in ws)}, peak "
            f"{' or '.join(w['peak'][0] for w in ws)}"))
    # on a date it was not seen: say so, never read the cloud as the crop
    unseen_en = ["How was {p} on {d}?", "ndvi {p} {d}"]
    unseen_fr = ["Comment était {p} le {d} ?"]
    cands = [(p, d) for p in big for d in f.dates if f.get(p, d).cloud >= 0.95]
    for i, (p, d) in enumerate(rng.sample(cands, 3)):
        lang = "fr" if i == 2 else "en"
        tpl = (unseen_fr[0] if lang == "fr" else unseen_en[i])
        text = tpl.format(p=parcel_ref(p, i + 3, lang), d=date_ref(d, i, lang))
        qs.append(Question("window", text, lang, Expect(
            parcels={p}, parcels_allowed={p}, dates={d}, words=[UNUSABLE_WORDS], forbidden_words=[WEAK_VIGOR, WRONG_CAUSE],
            default_year=int(d[:4])), f"{p} {d}: {f.get(p, d).cloud:.0%} cloud, {f.get(p, d).clear:.0%} clear pixels"))
    return qs


def _past_pairs(f: Facts, p: str, d: str, tol: int = 10) -> list[str]:
    """Clear dates of the previous year within `tol` days of year of `d` (closest first)."""
    y = int(d[:4]) - 1
    past = [x for x in f.clear_dates(p, f"{y}-01-01", f"{y}-12-31") if doy_distance(x, d) <= tol]
    return sorted(past, key=lambda x: (doy_distance(x, d), x))


def past_questions(f: Facts, rng: random.Random) -> list[Question]:
    """A date or a month against the same time of the previous season."""
    qs: list[Question] = []
    big = [p for p in f.parcels if not f.is_sliver(p)]
    date_en = ["How does {p} on {d} compare with the same time last year?",
               "{p} {d} vs last year", "Is {p} doing better or worse on {d} than a year before?",
               "compare {p} on {d} with the same day in 2018"]
    date_fr = ["Comment se compare {p} le {d} avec l'an dernier à la même époque ?",
               "{p} le {d} par rapport à l'année précédente"]
    cands = []
    for p in big:
        for d in f.clear_dates(p, "2019-08-01", "2019-11-30"):
            past = _past_pairs(f, p, d)
            # the past window must hold no partial observation, or the pairing depends on the product's line
            lo = (dt.date.fromisoformat(d) - dt.timedelta(days=375)).isoformat()
            hi = (dt.date.fromisoformat(d) - dt.timedelta(days=355)).isoformat()
            if past and f.window_is_clean(p, lo, hi):
                cands.append((p, d, past))
    for i, (p, d, past) in enumerate(rng.sample(cands, 8)):
        lang = "fr" if i % 4 == 3 else "en"
        tpl = (date_fr[i % 2] if lang == "fr" else date_en[i % 4])
        now = f.ndvi(p, d)
        then = [f.ndvi(p, x) for x in past]
        mean_then = float(np.mean(then))
        deltas = [now - v for v in then] + [now - mean_then]
        direction = (1 if min(deltas) > 0 else -1) if all(abs(x) >= 0.15 for x in deltas) and \
            len({x > 0 for x in deltas}) == 1 else None
        text = tpl.format(p=parcel_ref(p, i, lang), d=date_ref(d, i, lang))
        qs.append(Question("past", text, lang, Expect(
            parcels={p}, parcels_allowed={p}, values=[[now], then + [mean_then]], dates={d}, date_any=[set(past)],
            direction=direction, default_year=int(d[:4])),
            f"{p} {d}: {now:.3f}; previous year {', '.join(f'{x} {f.ndvi(p, x):.3f}' for x in past)}"))
    month_en = ["How did {p} do in {m} compared with {m0}?", "{p}: {m} vs {m0}",
                "was {p} greener in {m} than in {m0}"]
    month_fr = ["Comment allait {p} en {m} par rapport à {m0} ?", "{p} en {m} comparé à {m0}"]
    cands = []
    for p in big:
        for m in (8, 9, 10, 11):
            a, b = month_bounds(2019, m)
            a0, b0 = month_bounds(2018, m)
            w, w0 = f.window(p, a, b), f.window(p, a0, b0)
            if w and w0 and f.window_is_clean(p, a, b) and f.window_is_clean(p, a0, b0):
                cands.append((p, m, w, w0))
    for i, (p, m, w, w0) in enumerate(rng.sample(cands, 7)):
        lang = "fr" if i % 3 == 1 else "en"
        tpl = month_fr[i % 2] if lang == "fr" else month_en[i % 3]
        text = tpl.format(p=parcel_ref(p, i + 1, lang), m=month_ref(2019, m, i, lang), m0=month_ref(2018, m, 0, lang))
        # same-window means, or day-of-year pairs (each of the month's dates with its closest past date)
        pairs = [(x, _past_pairs(f, p, x, 15)) for x in w["dates"]]
        pair_sets = [[f.ndvi(p, x), f.ndvi(p, ys[0])] for x, ys in pairs if ys]
        deltas = [w["mean"] - w0["mean"]] + [a - b for a, b in pair_sets]
        direction = (1 if deltas[0] > 0 else -1) if all(abs(x) >= 0.15 for x in deltas) and \
            len({x > 0 for x in deltas}) == 1 else None
        qs.append(Question("past", text, lang, Expect(
            parcels={p}, parcels_allowed={p}, value_sets=[[w["mean"], w0["mean"]], *pair_sets],
            months={f"2019-{m:02d}", f"2018-{m:02d}"}, direction=direction, default_year=2019),
            f"{p} 2019-{m:02d} mean {w['mean']:.3f} ({w['dates']}) vs 2018-{m:02d} mean {w0['mean']:.3f} ({w0['dates']})"))
    return qs


def harvest(f: Facts, p: str, start: str = "2019-06-01", end: str = "2019-11-30") -> tuple[str, str] | None:
    """The harvest window: the first pair of consecutive clear observations in [start, end] going
    from NDVI >= 0.6 to <= 0.4 (the last green date, the first bare date)."""
    dates = f.clear_dates(p, start, end)
    for a, b in zip(dates, dates[1:]):
        if f.ndvi(p, a) >= 0.6 and f.ndvi(p, b) <= 0.4:
            return a, b
    return None


def peak(f: Facts, p: str, start: str, end: str) -> tuple[set[str], list[float]]:
    """Dates whose NDVI is within 0.02 of the season's highest clear value (partial dates included:
    a product may use them), and those values."""
    best = max(f.ndvi(p, d) for d in f.clear_dates(p, start, end))
    near = [d for d in f.dates_in(start, end) if f.state(p, d) != "unusable" and f.get(p, d).ndvi is not None
            and f.get(p, d).ndvi >= best - 0.02]
    return set(near), [f.get(p, d).ndvi for d in near]


def green_up(f: Facts, p: str, year: int = 2019) -> tuple[str, str] | None:
    """Green-up: from the season's lowest clear value before its peak, the first clear date at least
    halfway to the peak; the window runs from the clear date before it to it."""
    dates = f.clear_dates(p, f"{year}-03-01", f"{year}-09-30")
    values = [f.ndvi(p, d) for d in dates]
    top = int(np.argmax(values))
    low = int(np.argmin(values[: top + 1]))
    if values[top] - values[low] < 0.35:
        return None
    for i in range(low + 1, top + 1):
        if values[i] >= values[low] + 0.5 * (values[top] - values[low]):
            return dates[i - 1], dates[i]
    return None


def calendar_questions(f: Facts, rng: random.Random) -> list[Question]:
    """Harvest, peak, green-up and the season's course, from the parcel's own series."""
    qs: list[Question] = []
    annual = [p for p in f.parcels if not f.is_sliver(p) and "grass" not in f.crops[p].lower()]
    harvest_en = ["When was {p} harvested?", "when was {p} harvested in 2019", "Harvest date of {p}?",
                  "Has {p} been harvested yet, and when?"]
    harvest_fr = ["Quand {p} a-t-elle été récoltée ?", "Date de récolte de {p} en 2019 ?"]
    cands = [(p, h) for p in annual if (h := harvest(f, p))]
    for i, (p, (a, b)) in enumerate(cands):
        lang = "fr" if i % 3 == 2 else "en"
        tpl = harvest_fr[i % 2] if lang == "fr" else harvest_en[i % 4]
        text = tpl.format(p=parcel_ref(p, i, lang), )
        qs.append(Question("calendar", text, lang, Expect(
            parcels={p}, parcels_allowed={p}, date_windows=[(a, b)], words=[HARVEST_WORDS], lead=True,
            event_words=HARVEST_WORDS, default_year=2019),
            f"{p} ({f.crops[p]}): last green {a} {f.ndvi(p, a):.3f}, first bare {b} {f.ndvi(p, b):.3f}"))
    peak_en = ["When did {p} peak in 2019?", "when was {p} at its greenest in 2019", "Peak NDVI of {p} in 2019?"]
    peak_fr = ["Quand {p} a-t-elle atteint son pic de NDVI en 2019 ?", "Pic de végétation de {p} en 2019 ?"]
    for i, p in enumerate(rng.sample(annual, 5)):
        lang = "fr" if i % 3 == 1 else "en"
        tpl = peak_fr[i % 2] if lang == "fr" else peak_en[i % 3]
        near, values = peak(f, p, "2019-01-01", "2019-12-31")
        text = tpl.format(p=parcel_ref(p, i + 2, lang))
        qs.append(Question("calendar", text, lang, Expect(
            parcels={p}, parcels_allowed={p}, date_any=[near], values=[values], words=[PEAK_WORDS], lead=True,
            any_words=PEAK_WORDS, default_year=2019),
            f"{p}: peak dates {sorted(near)} values {[round(v, 3) for v in values]}"))
    green_en = ["When did {p} green up in 2019?", "when did the crop on {p} emerge this season (2019)"]
    green_fr = ["Quand la levée de {p} a-t-elle eu lieu en 2019 ?"]
    cands = [(p, g) for p in annual if (g := green_up(f, p))]
    for i, (p, (a, b)) in enumerate(rng.sample(cands, min(3, len(cands)))):
        lang = "fr" if i == 2 else "en"
        tpl = green_fr[0] if lang == "fr" else green_en[i % 2]
        text = tpl.format(p=parcel_ref(p, i + 1, lang))
        qs.append(Question("calendar", text, lang, Expect(
            parcels={p}, parcels_allowed={p}, date_windows=[(a, b)], words=[GREENUP_WORDS], lead=True,
            event_words=GREENUP_WORDS, default_year=2019),
            f"{p} ({f.crops[p]}): green-up between {a} {f.ndvi(p, a):.3f} and {b} {f.ndvi(p, b):.3f}"))
    trend_en = ["How has {p} evolved over 2019?", "NDVI trend of {p} in 2019"]
    trend_fr = ["Comment a évolué {p} en 2019 ?"]
    with_both = [(p, h) for p, h in ((p, harvest(f, p)) for p in annual) if h]
    for i, (p, (a, b)) in enumerate(rng.sample(with_both, 3)):
        lang = "fr" if i == 1 else "en"
        tpl = trend_fr[0] if lang == "fr" else trend_en[i % 2]
        near, values = peak(f, p, "2019-01-01", "2019-12-31")
        text = tpl.format(p=parcel_ref(p, i + 4, lang))
        qs.append(Question("calendar", text, lang, Expect(
            parcels={p}, parcels_allowed={p}, date_any=[near], any_words=PEAK_WORDS, date_windows=[(a, b)],
            event_words=HARVEST_WORDS, default_year=2019),
            f"{p}: peak {sorted(near)}, harvest between {a} and {b}"))
    return qs


def why_questions(f: Facts, rng: random.Random) -> list[Question]:
    """Why a value changed: a harvest, a cloud, snow, each with its evidence."""
    qs: list[Question] = []
    annual = [p for p in f.parcels if not f.is_sliver(p) and "grass" not in f.crops[p].lower()]
    harvest_en = ["Why did {p} drop in {m}?", "why did the NDVI of {p} fall so much in {m}",
                  "What happened to {p} in {m}? Its index collapsed."]
    harvest_fr = ["Pourquoi le NDVI de {p} a-t-il chuté en {m} ?", "Pourquoi {p} a baissé en {m} ?"]
    cands = []
    for p in annual:
        h = harvest(f, p)
        if h and h[0][:7] == h[1][:7]:
            cands.append((p, h))
    for i, (p, (a, b)) in enumerate(rng.sample(cands, min(6, len(cands)))):
        lang = "fr" if i % 3 == 1 else "en"
        tpl = harvest_fr[i % 2] if lang == "fr" else harvest_en[i % 3]
        y, m = int(b[:4]), int(b[5:7])
        text = tpl.format(p=parcel_ref(p, i, lang), m=month_ref(y, m, i, lang))
        qs.append(Question("why", text, lang, Expect(
            parcels={p}, words=[HARVEST_WORDS], lead=True, date_windows=[(a, b)], event_words=HARVEST_WORDS,
            forbidden_words=[WRONG_CAUSE, WEAK_VIGOR], default_year=y),
            f"{p}: harvest, {a} {f.ndvi(p, a):.3f} -> {b} {f.ndvi(p, b):.3f}"))
    snow = [d for d in f.dates if f.area[d]["snow"] >= 0.9]
    snow_en = ["Why is {p} so low on {d}?", "why does {p} read almost zero on {d}? is the crop dead?",
               "{p} on {d}: NDVI near 0, why?"]
    snow_fr = ["Pourquoi {p} est-elle si basse le {d} ?"]
    big = [p for p in f.parcels if not f.is_sliver(p)]
    for i, p in enumerate(rng.sample(big, 4)):
        d = snow[i % len(snow)]
        lang = "fr" if i == 3 else "en"
        tpl = snow_fr[0] if lang == "fr" else snow_en[i % 3]
        text = tpl.format(p=parcel_ref(p, i + 1, lang), d=date_ref(d, i, lang))
        qs.append(Question("why", text, lang, Expect(
            parcels={p}, words=[SNOW_WORDS], lead=True, dates={d}, date_words=SNOW_WORDS,
            forbidden_words=[WRONG_CAUSE, WEAK_VIGOR], default_year=int(d[:4])),
            f"{p} {d}: snow on {f.get(p, d).snow:.0%} of the parcel"))
    cloud_en = ["Why is there no value for {p} on {d}?", "why did {p} disappear on {d}",
                "Why is {p} missing on {d}?"]
    cloud_fr = ["Pourquoi n'y a-t-il pas de valeur pour {p} le {d} ?", "Pourquoi {p} manque le {d} ?"]
    cands = [(p, d) for p in big for d in f.dates if f.get(p, d).cloud >= 0.98]
    for i, (p, d) in enumerate(rng.sample(cands, 5)):
        lang = "fr" if i % 3 == 1 else "en"
        tpl = cloud_fr[i % 2] if lang == "fr" else cloud_en[i % 3]
        text = tpl.format(p=parcel_ref(p, i + 2, lang), d=date_ref(d, i + 1, lang))
        qs.append(Question("why", text, lang, Expect(
            parcels={p}, words=[CLOUD_WORDS], lead=True, dates={d}, date_words=CLOUD_WORDS,
            forbidden_words=[WRONG_CAUSE, WEAK_VIGOR, SNOW_WORDS], default_year=int(d[:4])),
            f"{p} {d}: cloud on {f.get(p, d).cloud:.0%}"))
    return qs


def month_questions(f: Facts, rng: random.Random) -> list[Question]:
    """A parcel's best (or worst) month of a year by mean NDVI over its clear observations. Asked only
    where that month leads every other by more than 0.05 whether the partial observations count or
    not (any usability line gives the same answer), has no partial observation itself and has two
    clear observations."""
    qs: list[Question] = []
    high_en = ["What was the best month for {p} in {y}?", "which month was {p} greenest in {y}",
               "Best month of {y} for {p}?"]
    low_en = ["What was the worst month for {p} in {y}?", "which month had the lowest NDVI for {p} in {y}"]
    high_fr = ["Quel a été le meilleur mois de {p} {y} ?"]
    low_fr = ["Quel mois {p} a-t-elle eu le NDVI le plus bas {y} ?"]
    # (English window, French window with its preposition, first day, last day)
    windows = [("2019", "en 2019", "2019-01-01", "2019-12-31"), ("2018", "en 2018", "2018-01-01", "2018-12-31"),
               ("spring 2019", "au printemps 2019", "2019-03-01", "2019-05-31"),
               ("summer 2019", "en été 2019", "2019-06-01", "2019-08-31"),
               ("autumn 2019", "en automne 2019", "2019-09-01", "2019-11-30")]
    cands = []
    for p in (p for p in f.parcels if not f.is_sliver(p)):
        for w_en, w_fr, start, end in windows:
            lines = []
            for states in (("clear",), ("clear", "partial")):
                by_month: dict[int, list[float]] = {}
                for d in f.dates_in(start, end):
                    if f.state(p, d) in states and np.isfinite(f.ndvi(p, d)):
                        by_month.setdefault(int(d[5:7]), []).append(f.ndvi(p, d))
                lines.append((by_month, sorted(((float(np.mean(v)), m) for m, v in by_month.items()), reverse=True)))
            (clear, means), (_, loose) = lines
            for low in (False, True):
                order, other = (means[::-1], loose[::-1]) if low else (means, loose)
                if len(order) < 3 or len(clear[order[0][1]]) < 2 or other[0][1] != order[0][1]:
                    continue
                m, y = order[0][1], int(start[:4])
                if not f.window_is_clean(p, f"{y}-{m:02d}-01", f"{y}-{m:02d}-31"):
                    continue
                if abs(order[0][0] - order[1][0]) > 0.05 and abs(other[0][0] - other[1][0]) > 0.05:
                    cands.append((p, (w_en, w_fr), y, low, m, order[0][0]))
    for i, (p, (w_en, w_fr), y, low, m, mean) in enumerate(rng.sample(cands, min(10, len(cands)))):
        lang = "fr" if i % 3 == 2 else "en"
        pool = (low_fr if low else high_fr) if lang == "fr" else (low_en if low else high_en)
        text = pool[i % len(pool)].format(p=parcel_ref(p, i, lang), y=w_fr if lang == "fr" else w_en)
        month_words = rf"({MONTHS_EN[m - 1].lower()}|{MONTHS_FR[m - 1]})"
        qs.append(Question("months", text, lang, Expect(
            parcels={p}, parcels_allowed={p}, words=[month_words], lead=True, values_with=[(month_words, [mean])],
            default_year=y), f"{p} {w_en}: {'lowest' if low else 'best'} month {y}-{m:02d}, mean {mean:.3f}"))
    return qs


def damage_questions(f: Facts, rng: random.Random) -> list[Question]:
    """Hail, frost or a disease asked about in the month a parcel was harvested: the answer is what
    the imagery can say (the fall is the harvest, with its dates) and that it cannot see the cause,
    never the parcel's latest state or a cause it cannot see (water stress, drought)."""
    qs: list[Question] = []
    annual = [p for p in f.parcels if not f.is_sliver(p) and "grass" not in f.crops[p].lower()]
    en = ["Was {p} damaged by hail in {m}?", "any frost damage on {p} in {m}", "Did {p} get a disease in {m}?",
          "was {p} hit by a storm in {m}? its NDVI dropped"]
    fr = ["La grêle a-t-elle abîmé {p} en {m} ?", "Y a-t-il une maladie sur {p} en {m} ?"]
    limit = r"(cannot see|ne voit pas|cannot say|ne dit pas|not whether|pas quelle)"
    cands = [(p, h) for p in annual if (h := harvest(f, p)) and h[0][:7] == h[1][:7]]
    for i, (p, (a, b)) in enumerate(rng.sample(cands, min(6, len(cands)))):
        lang = "fr" if i % 3 == 2 else "en"
        tpl = fr[i % 2] if lang == "fr" else en[i % 4]
        y, m = int(b[:4]), int(b[5:7])
        text = tpl.format(p=parcel_ref(p, i + 3, lang), m=month_ref(y, m, i, lang))
        qs.append(Question("damage", text, lang, Expect(
            parcels={p}, parcels_allowed={p}, words=[HARVEST_WORDS, limit], date_windows=[(a, b)],
            event_words=HARVEST_WORDS, forbidden_words=[r"(water stress|stress hydrique|drought|secheresse)", WEAK_VIGOR],
            default_year=y), f"{p}: harvest, {a} {f.ndvi(p, a):.3f} -> {b} {f.ndvi(p, b):.3f}"))
    # A date under snow or cloud asked about as damage: the image, not the crop.
    big = [p for p in f.parcels if not f.is_sliver(p)]
    snow = [d for d in f.dates if f.area[d]["snow"] >= 0.9]
    snow_q = [("Was {p} killed by frost on {d}? NDVI is almost zero", "en"), ("Le gel a-t-il détruit {p} le {d} ?", "fr")]
    for i, p in enumerate(rng.sample(big, len(snow_q))):
        d = snow[i % len(snow)]
        tpl, lang = snow_q[i]
        qs.append(Question("damage", tpl.format(p=parcel_ref(p, i + 1, lang), d=date_ref(d, i, lang)), lang, Expect(
            parcels={p}, words=[SNOW_WORDS], lead=True, dates={d}, date_words=SNOW_WORDS,
            forbidden_words=[WRONG_CAUSE, WEAK_VIGOR], default_year=int(d[:4])),
            f"{p} {d}: snow on {f.get(p, d).snow:.0%} of the parcel"))
    cloud_q = [("Was {p} damaged on {d}? its value is missing", "en"), ("hail damage on {p} on {d}?", "en"),
               ("Des dégâts sur {p} le {d} ?", "fr")]
    cands = [(p, d) for p in big for d in f.dates if f.get(p, d).cloud >= 0.98]
    for i, (p, d) in enumerate(rng.sample(cands, len(cloud_q))):
        tpl, lang = cloud_q[i]
        qs.append(Question("damage", tpl.format(p=parcel_ref(p, i + 2, lang), d=date_ref(d, i + 1, lang)), lang, Expect(
            parcels={p}, words=[CLOUD_WORDS], lead=True, dates={d}, date_words=CLOUD_WORDS,
            forbidden_words=[WRONG_CAUSE, WEAK_VIGOR, SNOW_WORDS], default_year=int(d[:4])),
            f"{p} {d}: cloud on {f.get(p, d).cloud:.0%}"))
    return qs


def quality_questions(f: Facts, rng: random.Random) -> list[Question]:
    """Which dates were cloudy, snowy or unusable for a parcel, a crop or the area, in a window."""
    qs: list[Question] = []
    months = sorted({(int(d[:4]), int(d[5:7])) for d in f.dates})
    area_en = ["Which dates were cloudy in {m}?", "cloudy days in {m}?", "Which acquisitions of {m} could not be used?",
               "were there dates in {m} when the area was covered by clouds"]
    area_fr = ["Quelles dates étaient nuageuses en {m} ?", "Dates inexploitables en {m} ?"]
    cands = []
    for y, m in months:
        a, b = month_bounds(y, m)
        ds = f.dates_in(a, b)
        bad = [d for d in ds if f.area[d]["clear"] < 0.3 and f.area[d]["snow"] < 0.1]
        if bad and any(f.area[d]["clear"] >= 0.8 for d in ds):
            cands.append((y, m, bad, [d for d in ds if f.area[d]["clear"] >= 0.8]))
    for i, (y, m, bad, clear) in enumerate(rng.sample(cands, 6)):
        lang = "fr" if i % 3 == 2 else "en"
        tpl = area_fr[i % 2] if lang == "fr" else area_en[i % 4]
        text = tpl.format(m=month_ref(y, m, i, lang))
        qs.append(Question("quality", text, lang, Expect(
            dates=set(bad), date_words=QUALITY_WORDS, clear_dates=set(clear), words=[QUALITY_WORDS], max_parcels=3,
            default_year=y), f"{y}-{m:02d}: cloudy over the area on {bad}; clear on {clear}"))
    parcel_en = ["Which dates in {m} were unusable for {p}?", "when was {p} hidden by clouds in {m}",
                 "List the cloudy dates of {p} in {m}"]
    parcel_fr = ["Quelles dates de {m} étaient inexploitables pour {p} ?"]
    big = [p for p in f.parcels if not f.is_sliver(p)]
    cands = []
    for p in big:
        for y, m in months:
            a, b = month_bounds(y, m)
            ds = f.dates_in(a, b)
            bad = [d for d in ds if f.state(p, d) == "unusable" and f.get(p, d).snow < 0.1]
            if bad and f.clear_dates(p, a, b) and len(bad) <= 4:
                cands.append((p, y, m, bad))
    for i, (p, y, m, bad) in enumerate(rng.sample(cands, 5)):
        lang = "fr" if i == 3 else "en"
        tpl = parcel_fr[0] if lang == "fr" else parcel_en[i % 3]
        text = tpl.format(p=parcel_ref(p, i, lang), m=month_ref(y, m, i + 1, lang))
        qs.append(Question("quality", text, lang, Expect(
            parcels={p}, parcels_allowed={p}, dates=set(bad), date_words=QUALITY_WORDS,
            clear_dates=set(f.clear_dates(p, *month_bounds(y, m))), words=[QUALITY_WORDS], default_year=y),
            f"{p} {y}-{m:02d}: unusable on {bad}; clear on {f.clear_dates(p, *month_bounds(y, m))}"))
    crop_en = ["When were the {c} parcels clouded in {m}?", "cloudy dates for {c} in {m}"]
    crop_fr = ["Quand les parcelles de {c} étaient-elles sous les nuages en {m} ?"]
    cands = []
    for crop in ("Winter wheat", "Maize", "Permanent grass crops"):
        members = [p for p in f.crop_members(crop) if not f.is_sliver(p)]
        for y, m in months:
            a, b = month_bounds(y, m)
            ds = f.dates_in(a, b)
            bad = [d for d in ds if f.group_share(members, d) < 0.3 and f.group_share(members, d, "snow") < 0.1]
            if bad and any(f.group_share(members, d) >= 0.8 for d in ds):
                cands.append((crop, members, y, m, bad, [d for d in ds if f.group_share(members, d) >= 0.8]))
    for i, (crop, members, y, m, bad, clear) in enumerate(rng.sample(cands, 3)):
        lang = "fr" if i == 2 else "en"
        words = CROP_WORDS[crop][1 if lang == "fr" else 0][0]
        tpl = crop_fr[0] if lang == "fr" else crop_en[i % 2]
        text = tpl.format(c=words, m=month_ref(y, m, i, lang))
        qs.append(Question("quality", text, lang, Expect(
            dates=set(bad), date_words=QUALITY_WORDS, clear_dates=set(clear), words=[QUALITY_WORDS],
            parcels_allowed=set(f.crop_members(crop)), default_year=y),
            f"{crop} {y}-{m:02d}: cloudy on {bad}; clear on {clear}"))
    snowy = {d for d in f.dates if f.area[d]["snow"] >= 0.5}
    snow_q = [("Which dates had snow?", "en"), ("Was there any snow in the archive?", "en"),
              ("Y a-t-il eu de la neige sur les parcelles ?", "fr"), ("any snowy dates in 2018?", "en")]
    for text, lang in snow_q:
        qs.append(Question("quality", text, lang, Expect(dates=snowy, date_words=SNOW_WORDS, words=[SNOW_WORDS],
                                                         max_parcels=3),
                           f"snow over >= 50% of the parcels on {sorted(snowy)}"))
    count_en = ["How many clear acquisitions were there in {m}?", "how many usable dates in {m}"]
    count_fr = ["Combien de dates exploitables en {m} ?"]
    for i, (y, m) in enumerate(rng.sample([ym for ym in months if ym != (2019, 11)], 3)):
        a, b = month_bounds(y, m)
        ds = f.dates_in(a, b)
        sure = sum(f.area[d]["clear"] >= 0.8 for d in ds)
        maybe = sum(0.3 <= f.area[d]["clear"] < 0.8 for d in ds)
        lang = "fr" if i == 1 else "en"
        tpl = count_fr[0] if lang == "fr" else count_en[i % 2]
        text = tpl.format(m=month_ref(y, m, 0, lang))
        qs.append(Question("quality", text, lang, Expect(
            integers=[set(range(sure, sure + maybe + 1))], lead=True, max_parcels=3, default_year=y),
            f"{y}-{m:02d}: {len(ds)} acquisitions, {sure} clear, {maybe} partly clear"))
    return qs


def _variants(f: Facts, members: list[str], date: str) -> list[list[str]]:
    """The clear members of a group on a date, and the same without the slivers under each possible
    size cut (a product may drop parcels below any minimum size up to `SLIVER_PIXELS`)."""
    clear = [p for p in members if f.state(p, date) == "clear"]
    cuts = sorted({f.pixels[p] for p in clear if f.is_sliver(p)})
    out = [clear]
    for cut in cuts:
        kept = [p for p in clear if f.pixels[p] > cut]
        if kept and kept not in out:
            out.append(kept)
    return out


def group_questions(f: Facts, rng: random.Random) -> list[Question]:
    """Aggregates, rankings of exactly N, thresholds and the parcels behind their crop's peers."""
    qs: list[Question] = []
    dates = [d for d in f.dates if all(f.state(p, d) != "partial" for p in f.parcels)
             and sum(f.state(p, d) == "clear" for p in f.parcels) >= 15]
    # aggregates over a crop
    mean_en = ["What is the average NDVI of the {c} parcels on {d}?", "mean ndvi {c} {d}",
               "average vegetation index over all {c} fields on {d}"]
    mean_fr = ["Quel est le NDVI moyen des parcelles de {c} le {d} ?"]
    crops = [c for c in CROP_WORDS if len([p for p in f.crop_members(c) if not f.is_sliver(p)]) >= 3]
    cands = [(c, d) for c in crops for d in dates]
    for i, (crop, d) in enumerate(rng.sample(cands, 4)):
        lang = "fr" if i == 2 else "en"
        variants = _variants(f, f.crop_members(crop), d)
        means = [float(np.mean([f.ndvi(p, d) for p in v])) for v in variants]
        weighted = [float(np.average([f.ndvi(p, d) for p in v], weights=[f.pixels[p] for p in v])) for v in variants]
        tpl = mean_fr[0] if lang == "fr" else mean_en[i % 3]
        text = tpl.format(c=CROP_WORDS[crop][1 if lang == "fr" else 0][0], d=date_ref(d, i, lang))
        qs.append(Question("groups", text, lang, Expect(
            values_with=[(MEAN_WORDS, means + weighted)], dates={d}, parcels_allowed=set(f.crop_members(crop)),
            default_year=int(d[:4])),
            f"{crop} {d}: mean {[round(x, 3) for x in means]}, pixel-weighted {[round(x, 3) for x in weighted]} "
            f"over {variants[0]}"))
    # median and range over all parcels
    for i, d in enumerate(rng.sample(dates, 3)):
        variants = _variants(f, f.parcels, d)
        lang = "fr" if i == 1 else "en"
        if i == 0:
            text, exp = (f"What was the median NDVI of all parcels on {date_ref(d, 1)}?",
                         Expect(values_with=[(MEDIAN_WORDS, [float(np.median([f.ndvi(p, d) for p in v]))
                                                             for v in variants])], dates={d}))
        elif i == 1:
            lo = [min(f.ndvi(p, d) for p in v) for v in variants]
            hi = [max(f.ndvi(p, d) for p in v) for v in variants]
            text, exp = f"Quelle était la plage de NDVI des parcelles le {date_ref(d, 0, 'fr')} ?", Expect(
                values_with=[(LOW_WORDS, lo), (HIGH_WORDS, hi)], dates={d})
        else:
            text, exp = (f"min and max ndvi across the fields on {date_ref(d, 3)}",
                         Expect(values_with=[(LOW_WORDS, [min(f.ndvi(p, d) for p in v) for v in variants]),
                                             (HIGH_WORDS, [max(f.ndvi(p, d) for p in v) for v in variants])],
                                dates={d}))
        exp.default_year = int(d[:4])
        qs.append(Question("groups", text, lang, exp, f"{d}: clear parcels {len(variants[0])}"))
    # rankings with exactly N
    rank_en = ["Which {n} parcels had the highest NDVI on {d}?", "top {n} fields by ndvi on {d}",
               "Show me the {n} weakest parcels on {d}", "bottom {n} parcels {d}"]
    rank_fr = ["Quelles sont les {n} parcelles au NDVI le plus élevé le {d} ?",
               "Les {n} parcelles les plus faibles le {d} ?"]
    made = 0
    for i, d in enumerate(rng.sample(dates, len(dates))):
        if made == 6:
            break
        n = [3, 5, 2, 4][made % 4]
        high = made % 2 == 0
        sets = []
        for v in _variants(f, f.parcels, d):
            order = sorted(v, key=lambda p: f.ndvi(p, d), reverse=high)
            if len(order) <= n or abs(f.ndvi(order[n - 1], d) - f.ndvi(order[n], d)) < 0.01:
                sets = []
                break
            sets.append(set(order[:n]))
        if not sets:
            continue
        lang = "fr" if made % 3 == 1 else "en"
        if lang == "fr":
            tpl = rank_fr[0 if high else 1]
        else:
            tpl = rank_en[(0 if made % 4 == 0 else 1) if high else (2 if made % 4 == 1 else 3)]
        text = tpl.format(n=n, d=date_ref(d, made, lang))
        qs.append(Question("groups", text, lang, Expect(
            parcel_sets=sets, dates={d}, default_year=int(d[:4])),
            f"{d}: {'highest' if high else 'lowest'} {n}: {[sorted(s) for s in sets]}"))
        made += 1
    # thresholds
    thr_en = ["Which parcels had NDVI below {t} on {d}?", "fields above {t} ndvi on {d}?",
              "list the parcels under {t} on {d}"]
    thr_fr = ["Quelles parcelles avaient un NDVI inférieur à {t} le {d} ?", "Parcelles au-dessus de {t} le {d} ?"]
    made = 0
    combos = [(d, t) for d in dates for t in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)]
    for d, t in rng.sample(combos, len(combos)):
        if made == 6:
            break
        below = made % 2 == 0
        variants = _variants(f, f.parcels, d)
        if any(abs(f.ndvi(p, d) - t) < 0.02 for p in variants[0]):
            continue
        sets = [{p for p in v if (f.ndvi(p, d) < t) == below} for v in variants]
        if not all(sets) or len(sets[0]) > 10:
            continue
        lang = "fr" if made % 3 == 2 else "en"
        tpl = thr_fr[0 if below else 1] if lang == "fr" else thr_en[(0 if made % 4 == 0 else 2) if below else 1]
        text = tpl.format(t=t, d=date_ref(d, made, lang))
        qs.append(Question("groups", text, lang, Expect(
            parcel_sets=sets, dates={d}, default_year=int(d[:4])),
            f"{d}: {'below' if below else 'above'} {t}: {[sorted(s) for s in sets]}"))
        made += 1
    # behind their crop's peers: one member clearly below the others, which agree among themselves
    lag_en = ["Which {c} parcels are behind the others on {d}?", "is any {c} field lagging behind its peers on {d}?"]
    lag_fr = ["Quelles parcelles de {c} sont en retard sur les autres le {d} ?"]
    # A member is behind when its NDVI is at least 0.15 under the median of its crop's clear members
    # on that date; 0.07 to 0.15 under is a judgement call (named or not, both accepted).
    cands = []
    for crop in crops:
        members = [p for p in f.crop_members(crop) if not f.is_sliver(p)]
        for d in f.dates:
            if not all(f.state(p, d) == "clear" for p in members):
                continue
            median = float(np.median([f.ndvi(p, d) for p in members]))
            behind = {p for p in members if median - f.ndvi(p, d) >= 0.15}
            maybe = {p for p in members if 0.07 <= median - f.ndvi(p, d) < 0.15}
            if behind:
                cands.append((crop, d, behind, maybe, members, median))
    for i, (crop, d, behind, maybe, members, median) in enumerate(rng.sample(cands, min(4, len(cands)))):
        lang = "fr" if i == 1 else "en"
        tpl = lag_fr[0] if lang == "fr" else lag_en[i % 2]
        text = tpl.format(c=CROP_WORDS[crop][1 if lang == "fr" else 0][0], d=date_ref(d, i, lang))
        qs.append(Question("groups", text, lang, Expect(
            first_sentence_parcels=(behind, behind | maybe), values=[[f.ndvi(p, d)] for p in sorted(behind)],
            parcels_allowed=set(f.crop_members(crop)), default_year=int(d[:4])),
            f"{crop} {d}: median {median:.3f}; behind {sorted(behind)}, judgement call {sorted(maybe)}; "
            + ", ".join(f"{p[-3:]} {f.ndvi(p, d):.3f}" for p in members)))
    return qs


def several_questions(f: Facts, rng: random.Random) -> list[Question]:
    """Several named parcels compared on the same date or window."""
    qs: list[Question] = []
    big = [p for p in f.parcels if not f.is_sliver(p)]
    date_en = ["Compare {a} with {b} on {d}", "{a} vs {b} on {d}?", "How do {a}, {b} and {c} compare on {d}?",
               "which is greener on {d}: {a} or {b}"]
    date_fr = ["Compare {a} et {b} le {d}", "Comparer {a}, {b} et {c} le {d}"]
    for i in range(8):
        lang = "fr" if i % 4 == 1 else "en"
        three = (lang == "en" and i % 4 == 2) or (lang == "fr" and i % 2 == 1)
        while True:
            ps = rng.sample(big, 3 if three else 2)
            common = [d for d in f.dates if all(f.get(p, d).clear == 1.0 for p in ps)]
            if common:
                break
        d = rng.choice(common)
        tpl = (date_fr[1 if three else 0] if lang == "fr" else date_en[i % 4])
        refs = [parcel_ref(p, i + k, lang) for k, p in enumerate(ps)] + [""]
        text = tpl.format(a=refs[0], b=refs[1], c=refs[2], d=date_ref(d, i, lang))
        qs.append(Question("several", text, lang, Expect(
            parcels=set(ps), parcels_allowed=set(ps), values=[[f.ndvi(p, d)] for p in ps], dates={d},
            cite={(p, d) for p in ps}, default_year=int(d[:4])),
            f"{d}: " + ", ".join(f"{p} {f.ndvi(p, d):.3f}" for p in ps)))
    month_en = ["Compare {a} and {b} in {m}", "{a} versus {b} during {m}", "how did {a} and {b} differ in {m}?"]
    month_fr = ["Comparer {a} et {b} en {m}"]
    months = sorted({(int(d[:4]), int(d[5:7])) for d in f.dates})
    cands = []
    for y, m in months:
        a0, b0 = month_bounds(y, m)
        for k, p in enumerate(big):
            for q in big[k + 1:]:
                dp, dq = f.clear_dates(p, a0, b0), f.clear_dates(q, a0, b0)
                if len(dp) >= 2 and dp == dq and f.window_is_clean([p, q], a0, b0):
                    cands.append((p, q, y, m))
    for i, (p, q, y, m) in enumerate(rng.sample(cands, 5)):
        lang = "fr" if i == 3 else "en"
        a0, b0 = month_bounds(y, m)
        wp, wq = f.window(p, a0, b0), f.window(q, a0, b0)
        tpl = month_fr[0] if lang == "fr" else month_en[i % 3]
        ra, rb = parcel_ref(p, i, lang), parcel_ref(q, i + 1, lang)
        text = tpl.format(a=ra, b=rb, m=month_ref(y, m, i, lang))
        qs.append(Question("several", text, lang, Expect(
            parcels={p, q}, parcels_allowed={p, q}, values=[[wp["mean"]], [wq["mean"]]], words=[MEAN_WORDS],
            cite_scope=({p, q}, a0, b0), default_year=y),
            f"{y}-{m:02d} on {wp['dates']}: {p} mean {wp['mean']:.3f}, {q} mean {wq['mean']:.3f}"))
    return qs


def spectral_neighbours(f: Facts, p: str, d: str, among: list[str], k: int = 5) -> list[str]:
    """The `k` parcels of `among` whose clear-pixel mean reflectance on `d` is closest to `p`'s
    (Euclidean over the bands): an embedding-free notion of 'looked alike' on that date."""
    ref = f.band_means[(p, d)]
    others = [q for q in among if q != p and f.state(q, d) == "clear" and (q, d) in f.band_means]
    return sorted(others, key=lambda q: float(np.linalg.norm(f.band_means[(q, d)] - ref)))[:k]


def similar_questions(f: Facts, rng: random.Random) -> list[Question]:
    """Parcels that looked like a given one, on a date, within a crop or a window."""
    qs: list[Question] = []
    big = [p for p in f.parcels if not f.is_sliver(p)]
    en = ["Which parcels looked like {p} on {d}?", "fields similar to {p} on {d}", "what looks like {p} on {d}?"]
    fr = ["Quelles parcelles ressemblaient à {p} le {d} ?", "Parcelles similaires à {p} le {d}"]
    cands = [(p, d) for p in big for d in f.dates
             if f.state(p, d) == "clear" and sum(f.state(q, d) == "clear" for q in big) >= 12]
    for i, (p, d) in enumerate(rng.sample(cands, 8)):
        lang = "fr" if i % 3 == 1 else "en"
        tpl = fr[i % 2] if lang == "fr" else en[i % 3]
        near = spectral_neighbours(f, p, d, f.parcels, 6)
        ref = parcel_ref(p, i, lang)
        text = tpl.format(p=ref, d=date_ref(d, i, lang))
        qs.append(Question("similar", text, lang, Expect(
            parcels={p}, similar_allowed=set(f.parcels) - {p}, some_of=set(near), date_any=[{d}],
            default_year=int(d[:4])),
            f"{p} {d}: nearest by clear-pixel reflectance {near}"))
    win_en = ["Which fields looked like {p} in {m}?", "parcels similar to {p} during {m}"]
    win_fr = ["Quelles parcelles ressemblaient à {p} en {m} ?"]
    months = sorted({(int(d[:4]), int(d[5:7])) for d in f.dates})
    cands = [(p, y, m) for p in big for y, m in months if len(f.clear_dates(p, *month_bounds(y, m))) >= 2]
    for i, (p, y, m) in enumerate(rng.sample(cands, 3)):
        lang = "fr" if i == 1 else "en"
        tpl = win_fr[0] if lang == "fr" else win_en[i % 2]
        start, end = month_bounds(y, m)
        text = tpl.format(p=parcel_ref(p, i + 3, lang), m=month_ref(y, m, i + 2, lang))
        qs.append(Question("similar", text, lang, Expect(
            parcels={p}, similar_allowed=set(f.parcels) - {p}, similar_window=(start, end), default_year=y),
            f"{p} {y}-{m:02d}: clear dates {f.clear_dates(p, start, end)}"))
    crop_en = ["Which other {c} fields looked like {p} on {d}?", "{c} parcels similar to {p} on {d}"]
    crop_fr = ["Quelles autres parcelles de {c} ressemblaient à {p} le {d} ?"]
    cands = []
    for crop in ("Winter wheat", "Permanent grass crops", "Maize"):
        members = [p for p in f.crop_members(crop) if not f.is_sliver(p)]
        for p in members:
            for d in f.dates:
                if all(f.state(q, d) == "clear" for q in members):
                    cands.append((crop, p, d))
    for i, (crop, p, d) in enumerate(rng.sample(cands, 4)):
        lang = "fr" if i == 2 else "en"
        tpl = crop_fr[0] if lang == "fr" else crop_en[i % 2]
        ref = parcel_ref(p, i + 1, lang)
        text = tpl.format(c=CROP_WORDS[crop][1 if lang == "fr" else 0][0], p=ref, d=date_ref(d, i, lang))
        qs.append(Question("similar", text, lang, Expect(
            parcels={p}, similar_allowed=set(f.crop_members(crop)) - {p}, default_year=int(d[:4])),
            f"{crop} {d}: members {f.crop_members(crop)}"))
    return qs


def archive_questions(f: Facts) -> list[Question]:
    """What the archive holds: parcels, crops, dates, seasons."""
    n_parcels, n_dates = len(f.parcels), len(f.dates)
    crops = sorted(set(f.crops.values()))
    maize = {p for p in f.parcels if f.crops[p] == "Maize"}
    wheat = [p for p in f.parcels if f.crops[p] == "Winter wheat"]
    p12 = next(p for p in f.parcels if num(p) == 12)
    p4 = next(p for p in f.parcels if num(p) == 4)
    first, last = f.dates[0], f.dates[-1]
    count = {"lead": True, "no_values": True}
    qs = [
        ("How many parcels are in the archive?", "en", Expect(integers=[{n_parcels}], **count)),
        ("how many fields do you have", "en", Expect(integers=[{n_parcels}], **count)),
        ("Combien de parcelles contient l'archive ?", "fr", Expect(integers=[{n_parcels}], **count)),
        ("Which crops are there?", "en", Expect(words=[CROP_PATTERNS[c] for c in crops], no_values=True)),
        ("Quelles cultures sont présentes ?", "fr", Expect(words=[CROP_PATTERNS[c] for c in crops], no_values=True)),
        ("What dates does the archive cover?", "en", Expect(dates={first, last}, no_values=True)),
        ("Quelle période couvrent les images ?", "fr", Expect(dates={first, last}, no_values=True)),
        ("How many acquisitions are stored?", "en", Expect(integers=[{n_dates}], **count)),
        ("which seasons can I ask about", "en", Expect(words=[r"2018", r"2019"], no_values=True)),
        ("What crop is parcel 12?", "en", Expect(words=[CROP_PATTERNS[f.crops[p12]]], parcels={p12}, **count)),
        ("Quelle est la culture du champ 004 ?", "fr", Expect(words=[CROP_PATTERNS[f.crops[p4]]], parcels={p4}, **count)),
        ("what's growing on field 4", "en", Expect(words=[CROP_PATTERNS[f.crops[p4]]], parcels={p4}, **count)),
        ("Qu'est-ce qui pousse sur la parcelle 12 ?", "fr", Expect(words=[CROP_PATTERNS[f.crops[p12]]], parcels={p12},
                                                                  **count)),
        ("Which parcels are maize?", "en", Expect(parcels=maize, parcels_allowed=maize, no_values=True)),
        ("how many winter wheat fields are there", "en", Expect(integers=[{len(wheat)}], **count)),
        ("Quelles parcelles sont en blé d'hiver ?", "fr", Expect(parcels=set(wheat), parcels_allowed=set(wheat),
                                                                  no_values=True)),
    ]
    return [Question("archive", text, lang, exp, "") for text, lang, exp in qs]


def decline_questions() -> list[Question]:
    """Questions the store cannot answer: yields, prices, weather, advice, owners, forecasts are
    refused in a sentence; what is not understood gets a clarifying answer. Neither cites anything."""
    refuse = [
        ("What yield will parcel 1 give this year?", "en"),
        ("how many tonnes per hectare did field 009 produce", "en"),
        ("What is the price of wheat today?", "en"),
        ("Will it rain tomorrow over parcel 3?", "en"),
        ("weather forecast for next week?", "en"),
        ("How much nitrogen should I apply on parcel 4?", "en"),
        ("Who owns Flanders31UES-007?", "en"),
        ("What will the NDVI of parcel 2 be next month?", "en"),
        ("Quel sera le rendement de la parcelle 1 ?", "fr"),
        ("Quel est le prix du blé ?", "fr"),
        ("Quelle météo demain sur le champ 005 ?", "fr"),
        ("Combien d'engrais mettre sur la parcelle 9 ?", "fr"),
    ]
    clarify = [("What is the capital of France?", "en"), ("qwxz vbnm", "en"), ("blah", "en")]
    return ([Question("decline", t, lang, Expect(decline="refuse"), "out of scope: refuse") for t, lang in refuse]
            + [Question("decline", t, lang, Expect(decline="clarify"), "not understood: clarify")
               for t, lang in clarify])


def build_bank(f: Facts, seed: int = 0) -> list[Question]:
    """Every question of the bank over `f` (the same bank for the same facts and seed)."""
    rng = random.Random(seed)
    qs = (window_questions(f, rng) + past_questions(f, rng) + calendar_questions(f, rng) + why_questions(f, rng)
          + quality_questions(f, rng) + group_questions(f, rng) + several_questions(f, rng)
          + similar_questions(f, rng) + archive_questions(f) + decline_questions()
          # Drawn last, so the questions of the other kinds stay the ones the bank always asked.
          + damage_questions(f, rng) + month_questions(f, rng))
    return qs
