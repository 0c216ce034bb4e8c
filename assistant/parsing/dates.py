"""Dates in a question -> inclusive `DateWindow`s, one documented rule per kind of expression.

Every window is an inclusive interval of days; the retrievers then keep the acquisitions that
exist in it. `ref` is the *reference date*: the caller's `today`, else the newest acquisition in
the store, else the system date (the plan's `date_rule` says which). The rules, as echoed in
the plan (`date_rule`):

- Exact date ("2019-06-15", "15/06/2019", "15.06.2019", "15 June 2019", "June 15, 2019",
  "le 15 juin 2019"): that single day. Numeric dates are read day first (15/06/2019); month
  first only when the second number cannot be a month (06/15/2019). Two-digit years are 20xx.
- A day without a year ("on 3 June"): the latest such day on or before the reference date.
- Month with a year ("June 2021", "juin 2021"): the whole calendar month.
- Month without a year ("in July", "en juillet"): the latest such month that began on or
  before the reference date. "last July" / "juillet dernier": the latest July that ended before
  the reference date.
- "early / mid / late June" ("début / mi- / fin juin"): days 1-10, 11-20, 21-end of that month;
  "the first / second / third / fourth / last week of June": days 1-7, 8-14, 15-21, 22-28, the
  month's last 7 days.
- A weekday ("on Monday", "lundi"): the latest such day on or before the reference date; "last
  Monday" / "lundi dernier": the latest before it. Next to a date ("Monday 3 June") it is ignored.
- A year alone ("in 2019", "en 2019"): the whole calendar year.
- Seasons are meteorological (three whole months), following the hemisphere of the parcels'
  mean latitude (the named parcels, else the parcels matching the attributes, else the
  question's point, else every parcel; north when unknown). North: spring = March-May, summer = June-August, autumn = September-November,
  winter = December-February; south: the opposite. A December-February season carries the year
  of its January ("winter 2019" = 2018-12-01 to 2019-02-28; "winter 2018/19" is the same).
  A season without a year ("in summer", "en été"): the latest that began on or before the
  reference date; "this summer" / "cet été": the same, up to the reference date; "last summer" /
  "l'été dernier": the latest that ended before the reference date.
- "this season" / "cette saison": the meteorological season containing the reference date, up to
  it; "last season": the season before that one.
- "today" / "yesterday": the reference date / the day before.
- "last month" / "le mois dernier": the calendar month before the reference date's month;
  "this month": from the 1st of the reference month to the reference date. Same for "last year"
  (the calendar year before) and "this year". "last week": the Monday-Sunday week before the
  one containing the reference date; "this week": its Monday to the reference date.
- "N days ago": that day; "N weeks ago": the Monday-Sunday week containing the reference date
  minus N weeks; "N months ago": the calendar month N months before the reference month;
  "N years ago": the calendar year N years before.
- "the last/past N days|weeks|months|years" ("les N derniers mois", "depuis 3 mois"): from the
  reference date minus that span to the reference date. "the past month" is the past 1 month.
- "since X" / "depuis X" / "from X" (without an end): from the start of X to the reference date.
- Days of one month ("from 1 to 15 June 2019", "du 1er au 15 juin"): those days, inclusive.
- Ranges ("between April and June", "from 1 May to 15 June 2019", "d'avril à juin", "April-June
  2019"): from the start of the first expression to the end of the second. A year given on one
  side applies to both (the first side a year earlier when it would fall after the second);
  without any year, the first side follows its own rule and the second is the next such one.
- Comparisons ("compared with", "vs", "than", "against", "par rapport à", "comparé à"):
  "last year" / "the same month last year" / "l'an dernier" = the main window shifted one
  calendar year back ("N years ago": N years back); a bare year ("vs 2018") = the main window's
  calendar days in that year; "previous years" / "past seasons" / "les années précédentes" = the
  main window in every earlier year back to the oldest acquisition; another expression
  ("par rapport à l'automne dernier") = its own window, moved back a year at a time when it does
  not start before the main window. A question with no main window of its own: with "last
  year" / a year / "previous years", the main window is the reference date's calendar month up
  to the reference date ("compared with last year" on 2019-11-27 = 2019-11-01..27 against
  2018-11-01..27); with another expression, that expression's window moved forward by whole
  years to the latest one that began on or before the reference date, clipped to it ("par
  rapport à l'automne dernier" on 2019-11-27 = autumn 2019 up to 2019-11-27 against autumn 2018).
- Several expressions with no range word and no comparison word between them: the latest is the
  main window, the others are compared with it.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from dataclasses import dataclass, replace

from assistant.plan import DateWindow
from assistant.parsing.text import NUMBER, blank, source_span, to_int

MONTHS: dict[str, int] = {
    "january": 1, "jan": 1, "janvier": 1, "janv": 1,
    "february": 2, "feb": 2, "fevrier": 2, "fevr": 2, "fev": 2,
    "march": 3, "mar": 3, "mars": 3,
    "april": 4, "apr": 4, "avril": 4, "avr": 4,
    "may": 5, "mai": 5,
    "june": 6, "jun": 6, "juin": 6,
    "july": 7, "jul": 7, "juillet": 7, "juil": 7,
    "august": 8, "aug": 8, "aout": 8,
    "september": 9, "sep": 9, "sept": 9, "septembre": 9,
    "october": 10, "oct": 10, "octobre": 10,
    "november": 11, "nov": 11, "novembre": 11,
    "december": 12, "dec": 12, "decembre": 12,
}
# Short names ("jan", "mar") and "may" (a verb too) count only next to a day or a year.
_SHORT = {"jan", "janv", "feb", "fev", "fevr", "mar", "apr", "avr", "jun", "jul", "juil", "aug", "sep",
          "sept", "oct", "nov", "dec", "may"}
_MONTH_ALL = "|".join(sorted(MONTHS, key=len, reverse=True))
_MONTH_FULL = "|".join(sorted((k for k in MONTHS if k not in _SHORT), key=len, reverse=True))
MONTH_NAMES = {
    "en": ("January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December"),
    "fr": ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre",
           "octobre", "novembre", "décembre"),
}
SEASONS: dict[str, str] = {
    "spring": "spring", "summer": "summer", "autumn": "autumn", "fall": "autumn", "winter": "winter",
    "printemps": "spring", "ete": "summer", "automne": "autumn", "hiver": "winter",
}
SEASON_NAMES = {
    "en": {"spring": "spring", "summer": "summer", "autumn": "autumn", "winter": "winter"},
    "fr": {"spring": "printemps", "summer": "été", "autumn": "automne", "winter": "hiver"},
}
#: First month of each meteorological season, per hemisphere.
SEASON_START = {
    "north": {"spring": 3, "summer": 6, "autumn": 9, "winter": 12},
    "south": {"spring": 9, "summer": 12, "autumn": 3, "winter": 6},
}
_SEASON = r"(?:spring|summer|autumn|fall|winter|printemps|ete|automne|hiver)"
_WEEKDAYS = {"monday": 0, "tuesday": 1, "wednesday": 2, "thursday": 3, "friday": 4, "saturday": 5, "sunday": 6,
             "lundi": 0, "mardi": 1, "mercredi": 2, "jeudi": 3, "vendredi": 4, "samedi": 5, "dimanche": 6}
_WEEKDAY = "|".join(_WEEKDAYS)
_WEEK_PART = {"first": "week1", "1st": "week1", "premiere": "week1", "second": "week2", "2nd": "week2",
              "deuxieme": "week2", "seconde": "week2", "third": "week3", "3rd": "week3", "troisieme": "week3",
              "fourth": "week4", "4th": "week4", "quatrieme": "week4", "last": "week_last", "derniere": "week_last"}
_ORDINAL_WEEK = "|".join(_WEEK_PART)
_YEAR = r"(?:19|20)\d{2}"


# ----------------------------------------------------------------------------- calendar helpers
def month_end(year: int, month: int) -> dt.date:
    return dt.date(year, month, calendar.monthrange(year, month)[1])


def month_window(year: int, month: int, lang: str) -> DateWindow:
    return DateWindow(dt.date(year, month, 1), month_end(year, month), f"{MONTH_NAMES[lang][month - 1]} {year}")


def add_months(year: int, month: int, n: int) -> tuple[int, int]:
    k = year * 12 + (month - 1) + n
    return k // 12, k % 12 + 1


def shift_years(day: dt.date, n: int) -> dt.date:
    try:
        return day.replace(year=day.year + n)
    except ValueError:  # 29 February
        return day.replace(year=day.year + n, day=28)


def season_window(season: str, year: int, hemi: str, lang: str) -> DateWindow:
    """The meteorological season; one spanning December-February carries its January's year."""
    m0 = SEASON_START[hemi][season]
    y0 = year - 1 if m0 == 12 else year
    y2, m2 = add_months(y0, m0, 2)
    name = SEASON_NAMES[lang][season]
    label = f"{name} {y0}/{str(year)[-2:]}" if m0 == 12 else f"{name} {year}"
    return DateWindow(dt.date(y0, m0, 1), month_end(y2, m2), label)


def season_of(day: dt.date, hemi: str) -> tuple[str, int]:
    """(season, season-year) of the meteorological season containing `day`."""
    for season, m0 in SEASON_START[hemi].items():
        months = [add_months(2000, m0, i)[1] for i in range(3)]
        if day.month in months:
            year = day.year + 1 if (m0 == 12 and day.month == 12) else day.year
            return season, year
    raise AssertionError("every month is in a season")


def clip(window: DateWindow, ref: dt.date, label: str | None = None) -> DateWindow:
    end = min(window.end, ref) if window.start <= ref else window.end
    return DateWindow(window.start, end, label or window.label)


def shifted(window: DateWindow, years: int) -> DateWindow:
    start, end = shift_years(window.start, years), shift_years(window.end, years)
    label = re.sub(r"\b(19|20)\d{2}\b", lambda m: str(int(m.group()) + years), window.label)
    if label == window.label:
        label = f"{start.isoformat()} to {end.isoformat()}"
    return DateWindow(start, end, label)


# ----------------------------------------------------------------------------- mentions
@dataclass(frozen=True)
class Mention:
    """One date expression found in the text, not yet resolved when it lacks a year."""

    start: int
    end: int
    text: str
    kind: str                  # day | month | season | year | fixed | shift | earlier
    year: int | None = None
    month: int | None = None
    day: int | None = None
    season: str | None = None
    part: str | None = None    # early | mid | late (months)
    rel: str | None = None     # last | this (months, seasons)
    window: DateWindow | None = None   # kind "fixed": already resolved
    rule: str | None = None
    years_back: tuple[int, ...] = ()   # kind "shift": comparison offsets
    day0: int | None = None    # "from 1 to 15 June": the first day of a range inside one month
    easter: int | None = None  # a feast that moves with Easter: days after Easter Sunday


#: Named days, as the folded text writes them -> (month, day). Only days whose date is the same
#: across the countries the archive covers ("labour day", May or September, is left out), and
#: only names that are not also ordinary words ("the assumption", "ascension" alone, "Saint-Jean"
#: as a place).
_NAMED_DAYS = {
    r"christmas eve|veille de noel|reveillon de noel": (12, 24),
    r"christmas(?: day)?|xmas|noel": (12, 25),
    r"boxing day|st\.? stephen'?s day": (12, 26),
    r"new year'?s eve|saint[- ]sylvestre|st\.? sylvester'?s day|reveillon du (?:nouvel an|jour de l'an)": (12, 31),
    r"new year'?s day|new year'?s|nouvel an|jour de l'an": (1, 1),
    r"all saints'? day|all saints|toussaint": (11, 1),
    r"halloween": (10, 31),
    r"armistice day|armistice|remembrance day|jour du souvenir": (11, 11),
    r"assumption day|feast of the assumption|assomption": (8, 15),
    r"may day|fete du travail": (5, 1),
    r"midsummer day|midsummer": (6, 24),
}
#: Feasts that move with Easter -> days after Easter Sunday (western computus, `dateutil.easter`).
_EASTER_DAYS = {
    r"good friday|vendredi saint": -2,
    r"easter monday|lundi de paques": 1,
    r"easter(?: sunday| day)?|paques|dimanche de paques": 0,
    r"ascension day|jeudi de l'ascension|l'ascension": 39,
    r"whit monday|pentecost monday|lundi de (?:la )?pentecote": 50,
    r"whit sunday|whitsun|pentecost|pentecote": 49,
}


def easter_day(year: int, offset: int = 0) -> dt.date:
    """Easter Sunday of `year` (western) plus `offset` days."""
    from dateutil.easter import easter

    return easter(year) + dt.timedelta(days=offset)


def _iso_monday(year: int, week: int) -> dt.date | None:
    """The Monday of ISO week `week` of `year`, or None when the year has no such week."""
    try:
        return dt.date.fromisocalendar(year, week, 1)
    except ValueError:
        return None


def _valid_day(y: int, m: int, d: int) -> bool:
    try:
        dt.date(y, m, d)
        return True
    except ValueError:
        return False


def _year2(y: str) -> int:
    return int(y) + 2000 if len(y) == 2 else int(y)


_PART = {"early": "early", "beginning of": "early", "the beginning of": "early", "start of": "early",
         "the start of": "early", "debut": "early", "debut de": "early", "debut d'": "early",
         "mid": "mid", "mid-": "mid", "middle of": "mid", "the middle of": "mid", "mi": "mid",
         "mi-": "mid", "late": "late", "end of": "late", "the end of": "late", "fin": "late",
         "fin de": "late", "fin d'": "late"}
_PART_RE = "|".join(sorted((re.escape(k) for k in _PART), key=len, reverse=True))
_UNIT = {"day": "day", "days": "day", "jour": "day", "jours": "day", "week": "week", "weeks": "week",
         "semaine": "week", "semaines": "week", "month": "month", "months": "month", "mois": "month",
         "year": "year", "years": "year", "an": "year", "ans": "year", "annee": "year", "annees": "year"}


class _WdMatch:
    """A match of "last monday" or "lundi dernier", seen through one group name."""

    def __init__(self, m: re.Match[str]) -> None:
        self._m = m

    def __getitem__(self, key: str) -> str:
        return self._m["wd"] or self._m["wd2"]

    def __getattr__(self, name: str):
        return getattr(self._m, name)


def find_mentions(text: str, ref: dt.date, hemi: str, lang: str) -> tuple[list[Mention], str, list[str]]:
    """All date expressions in the folded `text` (left to right), the text with them blanked,
    and notes about things that looked like dates but are not (31/02/2019)."""
    found: list[Mention] = []
    notes: list[str] = []
    work = text

    def take(pattern: str, build) -> None:
        nonlocal work
        for m in list(re.finditer(pattern, work)):
            if not work[m.start():m.end()].strip():
                continue
            mention = build(m)
            if mention is None:
                continue
            found.append(mention)
            work = blank(work, m.start(), m.end())

    def day_mention(m, y, mo, d):
        if not _valid_day(y if y else 2000, mo, d):
            # Blanked all the same, so that its year is not read as "the whole year".
            notes.append(f"not a date: {m.group().strip()!r}")
            return Mention(m.start(), m.end(), m.group().strip(), "invalid")
        return Mention(m.start(), m.end(), m.group().strip(), "day", year=y, month=mo, day=d)

    # A weekday next to a date ("Monday 3 June 2019", "lundi 3 juin") adds nothing to it.
    for m in list(re.finditer(rf"\b(?:{_WEEKDAY})\b,?(?=\s*(?:the\s+|le\s+)?\d)", work)):
        work = blank(work, m.start(), m.end())
    # --- exact days
    take(r"\b(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})\b",
         lambda m: day_mention(m, int(m[1]), int(m[2]), int(m[3])))

    # --- named days ("Christmas 2018", "a Noel", "Easter Monday 2019"): a day, with or without a year.
    for names, (month, day) in _NAMED_DAYS.items():
        take(rf"\b(?:{names})(?![\w-])(?:,?\s+(?:of\s+|de\s+)?({_YEAR})\b)?",
             lambda m, month=month, day=day: Mention(m.start(), m.end(), m.group().strip(), "day",
                                                     year=int(m[1]) if m[1] else None, month=month, day=day))
    for names, offset in _EASTER_DAYS.items():
        take(rf"\b(?:{names})(?![\w-])(?:,?\s+(?:of\s+|de\s+)?({_YEAR})\b)?",
             lambda m, offset=offset: Mention(m.start(), m.end(), m.group().strip(), "day",
                                              year=int(m[1]) if m[1] else None, easter=offset))

    def dmy(m):
        a, b, y = int(m[1]), int(m[2]), _year2(m[3])
        if b > 12 >= a:
            a, b = b, a  # month first only when the second cannot be a month
        return day_mention(m, y, b, a)
    take(r"\b(\d{1,2})[/.-](\d{1,2})[/.-](\d{4}|\d{2})\b(?![.,]\d)", dmy)
    def day_range(m):
        y = int(m[4]) if m[4] else None
        first, last = int(m[1]), int(m[2])
        mention = day_mention(m, y, MONTHS[m[3]], last)
        if mention.kind == "invalid" or not 1 <= first < last:
            return mention if mention.kind == "invalid" else None
        return replace(mention, day0=first)
    # "from 1 to 15 June 2019", "du 1er au 15 juin", "1-15 June": one month, two days.
    take(rf"\b(\d{{1,2}})(?:st|nd|rd|th|er|e)?\s*(?:-|to|until|au|a|et|and)\s*(\d{{1,2}})(?:st|nd|rd|th|er|e)?\s+(?:of\s+)?"
         rf"({_MONTH_ALL})\b\.?(?:,?\s+({_YEAR})\b)?", day_range)
    take(rf"\b(\d{{1,2}})(?:st|nd|rd|th|er|e)?(?:\s+|\s*-\s*)(?:of\s+)?({_MONTH_ALL})\b\.?(?:,?\s+({_YEAR})\b|\s*-\s*({_YEAR})\b)?",
         lambda m: day_mention(m, int(m[3] or m[4]) if (m[3] or m[4]) else None, MONTHS[m[2]], int(m[1])))
    take(rf"\b({_MONTH_ALL})\b\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?(?![\d.,]\d)\b(?:,?\s+({_YEAR})\b)?",
         lambda m: day_mention(m, int(m[3]) if m[3] else None, MONTHS[m[1]], int(m[2])))
    # --- weeks and parts of months, months with a year
    take(rf"\b(?:the\s+|la\s+)?({_ORDINAL_WEEK})\s+(?:week|semaine)\s+(?:of|de|d')\s*({_MONTH_ALL})\b(?:\s+(?:of\s+)?({_YEAR})\b)?",
         lambda m: Mention(m.start(), m.end(), m.group().strip(), "month", year=int(m[3]) if m[3] else None,
                           month=MONTHS[m[2]], part=_WEEK_PART[m[1]]))
    take(rf"(?<![\w-])({_PART_RE})\s*-?\s*({_MONTH_ALL})\b(?:\s+(?:of\s+)?({_YEAR})\b)?",
         lambda m: Mention(m.start(), m.end(), m.group().strip(), "month", year=int(m[3]) if m[3] else None,
                           month=MONTHS[m[2]], part=_PART[m[1]]))
    take(rf"\b({_MONTH_ALL})\b\.?,?\s+(?:of\s+)?({_YEAR})\b",
         lambda m: Mention(m.start(), m.end(), m.group().strip(), "month", year=int(m[2]), month=MONTHS[m[1]]))
    # --- seasons with a year ("winter 2018/19", "l'ete 2019", "summer of 2019")
    def season_year(m):
        y = int(m[2])
        if m[3]:
            y2 = int(m[3]) if len(m[3]) == 4 else (y // 100) * 100 + int(m[3])
            if y2 == y + 1:
                y = y2
        return Mention(m.start(), m.end(), m.group().strip(), "season", year=y, season=SEASONS[m[1]])
    take(rf"\b({_SEASON})\s+(?:of\s+|de\s+)?({_YEAR})(?:\s*[/-]\s*(\d{{4}}|\d{{2}}))?\b", season_year)
    # --- "this season" / "last season"
    take(r"\b(?:this|the current|current)\s+(?:growing\s+)?season\b|\bcette\s+saison\b|\bla\s+saison\s+(?:en\s+cours|actuelle)\b",
         lambda m: Mention(m.start(), m.end(), m.group().strip(), "season", rel="current"))
    take(r"\b(?:last|the previous|previous|past)\s+season\b|\bla\s+saison\s+(?:derniere|passee|precedente)\b",
         lambda m: Mention(m.start(), m.end(), m.group().strip(), "season", rel="previous"))
    # --- qualified seasons and months
    take(rf"\b(last|this|past|previous)\s+({_SEASON})\b",
         lambda m: Mention(m.start(), m.end(), m.group().strip(), "season", season=SEASONS[m[2]],
                           rel="this" if m[1] == "this" else "last"))
    take(rf"(?:\b(?:l'|le\s+|la\s+)|\b)({_SEASON})\s+(dernier|derniere|passe|precedent)\b",
         lambda m: Mention(m.start(), m.end(), m.group().strip(), "season", season=SEASONS[m[1]], rel="last"))
    take(rf"\b(?:cet|ce)\s+({_SEASON})\b",
         lambda m: Mention(m.start(), m.end(), m.group().strip(), "season", season=SEASONS[m[1]], rel="this"))
    take(rf"\b(last|this|past|previous)\s+({_MONTH_FULL}|may)\b",
         lambda m: Mention(m.start(), m.end(), m.group().strip(), "month", month=MONTHS[m[2]],
                           rel="this" if m[1] == "this" else "last"))
    take(rf"\b({_MONTH_FULL})\s+(dernier|passe)\b",
         lambda m: Mention(m.start(), m.end(), m.group().strip(), "month", month=MONTHS[m[1]], rel="last"))
    # --- relative expressions resolved at once
    def fixed(m, window: DateWindow, rule: str):
        return Mention(m.start(), m.end(), m.group().strip(), "fixed", window=window, rule=rule)

    def iso_week(m):
        week, year = int(m[1]), int(m[2]) if m[2] else None
        if year is None:  # the latest such week that began on or before the reference date
            year = ref.year if _iso_monday(ref.year, week) and _iso_monday(ref.year, week) <= ref else ref.year - 1
        start = _iso_monday(year, week)
        if start is None:
            notes.append(f"not a week: {m.group().strip()!r}")
            return Mention(m.start(), m.end(), m.group().strip(), "invalid")
        end = start + dt.timedelta(days=6)
        return fixed(m, DateWindow(start, end, f"week {week} of {year}"), "isoweek")
    # "week 20 of 2019", "semaine 20 de 2019": the ISO week, Monday to Sunday.
    take(rf"\b(?:iso\s+)?(?:week|semaine)\s+(?:n[o°]\s*)?(\d{{1,2}})\b(?:\s*(?:of|de|in|en|,)?\s*({_YEAR})\b)?", iso_week)
    monday = ref - dt.timedelta(days=ref.weekday())
    take(r"\b(?:today|aujourd'hui|aujourd hui)\b",
         lambda m: fixed(m, DateWindow(ref, ref, ref.isoformat()), "today"))
    take(r"\b(?:yesterday|hier)\b",
         lambda m: fixed(m, DateWindow(ref - dt.timedelta(days=1), ref - dt.timedelta(days=1),
                                       (ref - dt.timedelta(days=1)).isoformat()), "yesterday"))

    def ago(m, n_tok: str, unit_tok: str):
        n = to_int(n_tok)
        unit = _UNIT.get(unit_tok)
        if n is None or unit is None or n > 200:
            return None
        if unit == "day":
            d = ref - dt.timedelta(days=n)
            return fixed(m, DateWindow(d, d, d.isoformat()), "ago_day")
        if unit == "week":
            s = monday - dt.timedelta(weeks=n)
            return fixed(m, DateWindow(s, s + dt.timedelta(days=6), f"week of {s.isoformat()}"), "ago_week")
        if unit == "month":
            y, mo = add_months(ref.year, ref.month, -n)
            return fixed(m, month_window(y, mo, lang), "ago_month")
        y = ref.year - n
        return Mention(m.start(), m.end(), m.group().strip(), "year", year=y, rule="ago_year",
                       years_back=(n,))
    take(rf"\b({NUMBER}|a|an)\s+(days?|weeks?|months?|years?)\s+ago\b", lambda m: ago(m, m[1], m[2]))
    take(rf"\bil\s+y\s+a\s+({NUMBER}|un|une)\s+(jours?|semaines?|mois|ans?|annees?)\b", lambda m: ago(m, m[1], m[2]))

    def past_n(m, n_tok: str | None, unit_tok: str):
        n = to_int(n_tok) if n_tok else 1
        unit = _UNIT.get(unit_tok)
        if n is None or unit is None or n > 200:
            return None
        if unit in ("day", "week"):
            s = ref - dt.timedelta(days=n * (7 if unit == "week" else 1))
        else:
            y, mo = add_months(ref.year, ref.month, -n * (12 if unit == "year" else 1))
            s = dt.date(y, mo, min(ref.day, calendar.monthrange(y, mo)[1]))
        return fixed(m, DateWindow(s, ref, f"{s.isoformat()} to {ref.isoformat()}"), "past_n")
    take(rf"\b(?:the\s+)?(?:last|past|previous)\s+({NUMBER})\s+(days|weeks|months|years)\b",
         lambda m: past_n(m, m[1], m[2]))
    take(r"\b(?:the\s+)?past\s+(day|week|month|year)\b", lambda m: past_n(m, None, m[1]))
    take(rf"\b(?:des|les|ces)\s+({NUMBER})\s+(?:derniers|dernieres)\s+(jours|semaines|mois|annees|ans)\b",
         lambda m: past_n(m, m[1], m[2]))
    take(rf"\bdepuis\s+({NUMBER})\s+(jours|semaines|mois|ans|annees)\b", lambda m: past_n(m, m[1], m[2]))
    take(rf"\b(?:for|over|in)\s+(?:the\s+)?({NUMBER})\s+(days|weeks|months)\b", lambda m: past_n(m, m[1], m[2]))

    def last_unit(m, unit: str, which: str):
        if unit == "month":
            if which == "this":
                return fixed(m, DateWindow(ref.replace(day=1), ref, month_window(ref.year, ref.month, lang).label),
                             "this_month")
            y, mo = add_months(ref.year, ref.month, -1)
            return fixed(m, month_window(y, mo, lang), "last_month")
        if unit == "week":
            if which == "this":
                return fixed(m, DateWindow(monday, ref, f"week of {monday.isoformat()}"), "this_week")
            s = monday - dt.timedelta(weeks=1)
            return fixed(m, DateWindow(s, s + dt.timedelta(days=6), f"week of {s.isoformat()}"), "last_week")
        if which == "this":
            return fixed(m, DateWindow(dt.date(ref.year, 1, 1), ref, str(ref.year)), "this_year")
        return Mention(m.start(), m.end(), m.group().strip(), "year", year=ref.year - 1, rule="last_year",
                       years_back=(1,))
    take(r"\b(?:last|previous|the\s+previous)\s+(month|week|year)\b|\bthe\s+(month|week|year)\s+before\b",
         lambda m: last_unit(m, m[1] or m[2], "last"))
    take(r"\b(?:this|the\s+current|current)\s+(month|week|year)\b", lambda m: last_unit(m, m[1], "this"))
    take(r"\b(?:le\s+)?mois\s+(?:dernier|passe|precedent)\b", lambda m: last_unit(m, "month", "last"))
    take(r"\b(?:la\s+)?semaine\s+(?:derniere|passee|precedente)\b", lambda m: last_unit(m, "week", "last"))
    take(r"\b(?:l'|l\s)?(?:an|annee)\s+(?:dernier|derniere|passe|passee|precedente)\b",
         lambda m: last_unit(m, "year", "last"))
    take(r"\bce\s+mois(?:-ci|\s+ci)?\b", lambda m: last_unit(m, "month", "this"))
    take(r"\bcette\s+semaine\b", lambda m: last_unit(m, "week", "this"))
    take(r"\bcette\s+annee\b", lambda m: last_unit(m, "year", "this"))
    # --- comparisons against every earlier year
    take(r"\b(?:previous|earlier|past|prior|other)\s+(?:years|seasons)\b|\b(?:les|aux|des)\s+(?:annees|saisons)\s+(?:precedentes|passees|anterieures)\b|\b(?:les|aux|des)\s+autres\s+(?:annees|saisons)\b",
         lambda m: Mention(m.start(), m.end(), m.group().strip(), "earlier"))
    def weekday(m, last: bool):
        wd = _WEEKDAYS[m["wd"]]
        back = (ref.weekday() - wd) % 7
        if last and back == 0:
            back = 7
        d = ref - dt.timedelta(days=back)
        return fixed(m, DateWindow(d, d, d.isoformat()), "weekday_last" if last else "weekday")
    take(rf"\b(?:last|previous)\s+(?P<wd>{_WEEKDAY})\b|\b(?P<wd2>{_WEEKDAY})\s+(?:dernier|passe)\b",
         lambda m: weekday(_WdMatch(m), True))
    take(rf"\b(?:(?:on|this|ce)\s+)?(?P<wd>{_WEEKDAY})\b", lambda m: weekday(m, False))
    # --- bare months, seasons and years
    take(rf"\b({_MONTH_FULL})\b",
         lambda m: Mention(m.start(), m.end(), m.group().strip(), "month", month=MONTHS[m[1]]))
    take(r"\b(?:in|since|of|from|until|to|between|and|early|late|mid|en|de|depuis|entre|et|au|debut|fin|jusqu'en)\s+(may)\b(?!\s+(?:be|have|not|show|i|we|you|it|they|he|she)\b)",
         lambda m: Mention(m.start(1), m.end(), "may", "month", month=5))
    # "été" is also "been" ("a été", "ont été"): a season only after l'/en/cet/ce/de/pendant/durant.
    def bare_season(m):
        before = work[:m.start()]
        if m[1] == "ete" and not re.search(r"(?:\bl'|\ben |\bd')\s*$", before):
            return None
        if m[1] == "fall" and not re.search(r"\b(?:the|in|this|last|during|of)\s+$", before):
            return None
        return Mention(m.start(), m.end(), m.group().strip(), "season", season=SEASONS[m[1]])
    # "ete" is also "been" ("a ete"), "fall" a verb: seasons only after l'/en/d' or the/in.
    take(rf"\b({_SEASON})\b", bare_season)
    take(rf"\b({_YEAR})\b(?![.,]\d)",
         lambda m: Mention(m.start(), m.end(), m.group().strip(), "year", year=int(m[1])))
    found = sorted((x for x in found if x.kind != "invalid"), key=lambda x: x.start)
    return found, work, notes


# ----------------------------------------------------------------------------- resolution
RULES = {
    "en": {
        "day": "{expr} = {start}, that day",
        "day_noyear": "{expr} = {start}, the latest such day on or before the reference date {ref}",
        "month": "{expr} = {label} ({start} to {end}), the whole calendar month",
        "month_noyear": "{expr} = {label}, the latest {name} that began on or before the reference date {ref}",
        "month_last": "{expr} = {label}, the latest {name} that ended before the reference date {ref}",
        "month_part": "{expr} = {start} to {end} (early = days 1-10, mid = 11-20, late = 21 to the end of the month)",
        "month_week": "{expr} = {start} to {end} (first week = days 1-7, second 8-14, third 15-21, fourth 22-28, last = the month's last 7 days)",
        "weekday": "{expr} = {start}, the latest such weekday on or before the reference date {ref}",
        "weekday_last": "{expr} = {start}, the latest such weekday before the reference date {ref}",
        "season": "{expr} = {label} ({start} to {end}), meteorological seasons, {hemi}ern hemisphere",
        "season_noyear": "{expr} = {label} ({start} to {end}), the latest {name} that began on or before the reference date {ref} (meteorological, {hemi}ern hemisphere)",
        "season_last": "{expr} = {label} ({start} to {end}), the latest {name} that ended before the reference date {ref} (meteorological, {hemi}ern hemisphere)",
        "season_current": "{expr} = {label} up to the reference date ({start} to {end}), the meteorological season containing {ref} ({hemi}ern hemisphere)",
        "season_previous": "{expr} = {label} ({start} to {end}), the meteorological season before the one containing the reference date {ref} ({hemi}ern hemisphere)",
        "year": "{expr} = the calendar year {label} ({start} to {end})",
        "last_year": "{expr} = {label}, the calendar year before that of the reference date {ref}",
        "ago_year": "{expr} = {label}, the calendar year that many years before that of the reference date {ref}",
        "this_year": "{expr} = {start} to {end}, from 1 January to the reference date",
        "last_month": "{expr} = {label}, the calendar month before the reference date {ref}",
        "this_month": "{expr} = {start} to {end}, from the 1st of the month to the reference date",
        "last_week": "{expr} = {start} to {end}, the Monday-Sunday week before the one containing the reference date {ref}",
        "this_week": "{expr} = {start} to {end}, from Monday to the reference date",
        "ago_day": "{expr} = {start}, the reference date {ref} minus that many days",
        "ago_week": "{expr} = {start} to {end}, the Monday-Sunday week containing the reference date {ref} minus that many weeks",
        "ago_month": "{expr} = {label}, the calendar month that many months before that of the reference date {ref}",
        "past_n": "{expr} = {start} to {end}, the reference date minus that span, to the reference date",
        "today": "{expr} = {start}, the reference date",
        "isoweek": "{expr} = {start} to {end}, the ISO week (Monday to Sunday)",
        "yesterday": "{expr} = {start}, the day before the reference date {ref}",
        "since": "{expr} = {start} to {end}, from the start of that date to the reference date",
        "range": "{expr} = {start} to {end}, from the start of the first date to the end of the second",
        "shift": "{expr} = {windows}, the same calendar days {n} year(s) earlier",
        "in_year": "{expr} = {windows}, the same calendar days in that year",
        "earlier": "{expr} = {windows}, the same calendar days in every earlier year of the archive",
        "compare": "{expr} = {windows}",
        "main_from_compare": "main window = {label} ({start} to {end}), the compared window moved forward to the latest that began on or before the reference date {ref}",
        "main_default": "main window = {start} to {end}, the calendar month of the reference date up to it (the question names none)",
        "reference": "reference date {ref} ({source})",
        "source_today": "given as today",
        "source_store": "the newest acquisition in the store",
        "source_clock": "the system date: no date given and the store is empty",
    },
    "fr": {
        "day": "{expr} = {start}, ce jour-là",
        "day_noyear": "{expr} = {start}, le dernier tel jour au plus tard à la date de référence {ref}",
        "month": "{expr} = {label} (du {start} au {end}), le mois civil entier",
        "month_noyear": "{expr} = {label}, le dernier mois de {name} commencé au plus tard à la date de référence {ref}",
        "month_last": "{expr} = {label}, le dernier mois de {name} terminé avant la date de référence {ref}",
        "month_part": "{expr} = du {start} au {end} (début = jours 1-10, mi = 11-20, fin = du 21 à la fin du mois)",
        "month_week": "{expr} = du {start} au {end} (première semaine = jours 1-7, deuxième 8-14, troisième 15-21, quatrième 22-28, dernière = les 7 derniers jours du mois)",
        "weekday": "{expr} = {start}, le dernier tel jour de la semaine au plus tard à la date de référence {ref}",
        "weekday_last": "{expr} = {start}, le dernier tel jour de la semaine avant la date de référence {ref}",
        "season": "{expr} = {label} (du {start} au {end}), saisons météorologiques, hémisphère {hemi}",
        "season_noyear": "{expr} = {label} (du {start} au {end}), la dernière saison ({name}) commencée au plus tard à la date de référence {ref} (météorologique, hémisphère {hemi})",
        "season_last": "{expr} = {label} (du {start} au {end}), la dernière saison ({name}) terminée avant la date de référence {ref} (météorologique, hémisphère {hemi})",
        "season_current": "{expr} = {label} jusqu'à la date de référence (du {start} au {end}), la saison météorologique qui contient {ref} (hémisphère {hemi})",
        "season_previous": "{expr} = {label} (du {start} au {end}), la saison météorologique précédant celle qui contient la date de référence {ref} (hémisphère {hemi})",
        "year": "{expr} = l'année civile {label} (du {start} au {end})",
        "last_year": "{expr} = {label}, l'année civile précédant celle de la date de référence {ref}",
        "ago_year": "{expr} = {label}, l'année civile autant d'années avant celle de la date de référence {ref}",
        "this_year": "{expr} = du {start} au {end}, du 1er janvier à la date de référence",
        "last_month": "{expr} = {label}, le mois civil précédant la date de référence {ref}",
        "this_month": "{expr} = du {start} au {end}, du 1er du mois à la date de référence",
        "last_week": "{expr} = du {start} au {end}, la semaine (lundi-dimanche) précédant celle de la date de référence {ref}",
        "this_week": "{expr} = du {start} au {end}, du lundi à la date de référence",
        "ago_day": "{expr} = {start}, la date de référence {ref} moins autant de jours",
        "ago_week": "{expr} = du {start} au {end}, la semaine (lundi-dimanche) de la date de référence {ref} moins autant de semaines",
        "ago_month": "{expr} = {label}, le mois civil autant de mois avant celui de la date de référence {ref}",
        "past_n": "{expr} = du {start} au {end}, de la date de référence moins cette durée à la date de référence",
        "today": "{expr} = {start}, la date de référence",
        "isoweek": "{expr} = du {start} au {end}, la semaine ISO (du lundi au dimanche)",
        "yesterday": "{expr} = {start}, la veille de la date de référence {ref}",
        "since": "{expr} = du {start} au {end}, du début de cette date à la date de référence",
        "range": "{expr} = du {start} au {end}, du début de la première date à la fin de la seconde",
        "shift": "{expr} = {windows}, les mêmes jours du calendrier {n} an(s) plus tôt",
        "in_year": "{expr} = {windows}, les mêmes jours du calendrier cette année-là",
        "earlier": "{expr} = {windows}, les mêmes jours du calendrier chaque année antérieure de l'archive",
        "compare": "{expr} = {windows}",
        "main_from_compare": "fenêtre principale = {label} (du {start} au {end}), la fenêtre comparée avancée jusqu'à la dernière commencée au plus tard à la date de référence {ref}",
        "main_default": "fenêtre principale = du {start} au {end}, le mois civil de la date de référence jusqu'à celle-ci (la question n'en nomme pas)",
        "reference": "date de référence {ref} ({source})",
        "source_today": "donnée comme aujourd'hui",
        "source_store": "l'acquisition la plus récente de l'archive",
        "source_clock": "la date du système : aucune date donnée et l'archive est vide",
    },
}
HEMI_NAMES = {"en": {"north": "north", "south": "south"}, "fr": {"north": "nord", "south": "sud"}}


def rule_text(key: str, lang: str, expr: str, window: DateWindow | None, ref: dt.date, **extra) -> str:
    fields = {"expr": expr, "ref": ref.isoformat(), "label": window.label if window else "",
              "start": window.start.isoformat() if window else "", "end": window.end.isoformat() if window else ""}
    fields.update(extra)
    return RULES[lang][key].format(**fields)


def _latest(candidates, ok) -> DateWindow:
    """The latest window among `candidates` (newest first) satisfying `ok`."""
    for w in candidates:
        if ok(w):
            return w
    return candidates[-1]


def resolve(m: Mention, ref: dt.date, hemi: str, lang: str, anchor_year: int | None = None) -> tuple[DateWindow, str]:
    """The window of one mention and its rule text. `anchor_year` fills a missing year."""
    hemi_name = HEMI_NAMES[lang][hemi]
    if m.kind == "fixed":
        assert m.window is not None and m.rule is not None
        return m.window, rule_text(m.rule, lang, m.text, m.window, ref)
    if m.kind == "day" and m.day0 is not None:
        one, _ = resolve(replace(m, day0=None), ref, hemi, lang, anchor_year)
        w = DateWindow(one.start.replace(day=m.day0), one.end, f"{one.start.replace(day=m.day0)} to {one.end}")
        return w, rule_text("range", lang, m.text, w, ref)
    if m.kind == "day" and m.easter is not None:
        y = m.year or anchor_year
        if y is None:
            y = ref.year if easter_day(ref.year, m.easter) <= ref else ref.year - 1
        d = easter_day(y, m.easter)
        rule = "day" if (m.year or anchor_year) else "day_noyear"
        return DateWindow(d, d, d.isoformat()), rule_text(rule, lang, m.text, DateWindow(d, d, ""), ref)
    if m.kind == "day":
        assert m.month and m.day
        if m.year or anchor_year:
            y = m.year or anchor_year
            d = dt.date(y, m.month, min(m.day, calendar.monthrange(y, m.month)[1]))
            return DateWindow(d, d, d.isoformat()), rule_text("day", lang, m.text, DateWindow(d, d, ""), ref)
        y = ref.year if (m.month, m.day) <= (ref.month, ref.day) else ref.year - 1
        d = dt.date(y, m.month, min(m.day, calendar.monthrange(y, m.month)[1]))
        return DateWindow(d, d, d.isoformat()), rule_text("day_noyear", lang, m.text, DateWindow(d, d, ""), ref)
    if m.kind == "month":
        assert m.month
        name = MONTH_NAMES[lang][m.month - 1]
        if m.year or anchor_year:
            w = month_window(m.year or anchor_year, m.month, lang)
            key = "month"
        else:
            cands = [month_window(y, m.month, lang) for y in range(ref.year, ref.year - 3, -1)]
            if m.rel == "last":
                w, key = _latest(cands, lambda w: w.end < ref), "month_last"
            else:
                w, key = _latest(cands, lambda w: w.start <= ref), "month_noyear"
        if m.part:
            last = w.end.day
            lo, hi = {"early": (1, 10), "mid": (11, 20), "late": (21, last), "week1": (1, 7), "week2": (8, 14),
                      "week3": (15, 21), "week4": (22, 28), "week_last": (last - 6, last)}[m.part]
            label = ({"week1": "first week of", "week2": "second week of", "week3": "third week of",
                      "week4": "fourth week of", "week_last": "last week of"} if lang != "fr" else
                     {"week1": "première semaine de", "week2": "deuxième semaine de", "week3": "troisième semaine de",
                      "week4": "quatrième semaine de", "week_last": "dernière semaine de", "early": "début",
                      "mid": "mi-", "late": "fin"}).get(m.part, m.part)
            w = DateWindow(w.start.replace(day=lo), w.start.replace(day=hi),
                           f"{label}{w.label}" if label.endswith("-") else f"{label} {w.label}")
            key = "month_week" if m.part.startswith("week") else "month_part"
        return w, rule_text(key, lang, m.text, w, ref, name=name)
    if m.kind == "season":
        if m.rel == "current":
            s, y = season_of(ref, hemi)
            w = clip(season_window(s, y, hemi, lang), ref)
            return w, rule_text("season_current", lang, m.text, w, ref, hemi=hemi_name)
        if m.rel == "previous":
            s, y = season_of(ref, hemi)
            start = season_window(s, y, hemi, lang).start - dt.timedelta(days=1)
            s, y = season_of(start, hemi)
            w = season_window(s, y, hemi, lang)
            return w, rule_text("season_previous", lang, m.text, w, ref, hemi=hemi_name)
        assert m.season
        name = SEASON_NAMES[lang][m.season]
        if m.year or anchor_year:
            w = season_window(m.season, m.year or anchor_year, hemi, lang)
            return w, rule_text("season", lang, m.text, w, ref, hemi=hemi_name)
        cands = [season_window(m.season, y, hemi, lang) for y in range(ref.year + 1, ref.year - 3, -1)]
        if m.rel == "last":
            w = _latest(cands, lambda w: w.end < ref)
            return w, rule_text("season_last", lang, m.text, w, ref, name=name, hemi=hemi_name)
        w = _latest(cands, lambda w: w.start <= ref)
        if m.rel == "this":
            w = clip(w, ref)
        return w, rule_text("season_noyear", lang, m.text, w, ref, name=name, hemi=hemi_name)
    if m.kind == "year":
        y = m.year or anchor_year or ref.year
        w = DateWindow(dt.date(y, 1, 1), dt.date(y, 12, 31), str(y))
        return w, rule_text(m.rule or "year", lang, m.text, w, ref)
    raise ValueError(f"cannot resolve a {m.kind} mention on its own")


def _range_joined(text: str, a: Mention, b: Mention) -> bool:
    gap = text[a.end:b.start].strip()
    before = text[max(0, a.start - 16):a.start]
    opener = re.search(r"(?:\bbetween|\bfrom|\bentre|\bde|\bdu|\bd'|\bdes|\bstarting)\s*(?:the\s+|le\s+|la\s+|l')?$",
                       before)
    if gap in ("to", "until", "till", "through", "thru", "-", "a", "au", "jusqu'a", "jusqu'au",
               "jusqu'en", "to the", "through the", "until the", "up to", "a la", "au mois de"):
        return True
    return gap in ("and", "et", "and the", "et le") and opener is not None


def _since(text: str, m: Mention) -> int | None:
    """Where "since / depuis / from ..." starts right before `m`, or None."""
    lo = max(0, m.start - 32)
    hit = re.search(r"(?:\bsince|\bdepuis|\bfrom|\ba partir d[eu']?|\bstarting(?: from| in| on)?|\bafter|\bapres)\s*"
                    r"(?:the\s+|le\s+|l')?(?:(?:month|mois)\s+(?:of|de|d')\s*)?$", text[lo:m.start])
    return lo + hit.start() if hit else None


#: After "than" / "que", a number that is not a year is a threshold ("more than 50 % cloud"), not a
#: second window ("greener than 2018").
_NOT_A_THRESHOLD = r"(?!\s*[-+]?(?!(?:19|20)\d\d\b)\d)"
_COMPARE = re.compile(
    r"\b(?:compared?\s+(?:with|to|against)|in\s+comparison\s+(?:with|to)|relative\s+to|vs\.?|versus|than" + _NOT_A_THRESHOLD
    + r"|against|"
    # "behind last year" compares seasons; "behind the others on 6 May" compares parcels (no window).
    r"(?:behind|ahead\s+of|en\s+retard\s+sur|en\s+avance\s+sur)(?=\s+(?:last|previous|the\s+previous|l'an|l'annee|(?:19|20)\d\d))|"
    r"par\s+rapport\s+(?:a|au|aux)|(?:plus|moins|aussi|mieux|pire)\s+(?:\w+\s+){0,2}qu(?:e\b|')" + _NOT_A_THRESHOLD + r"|"
    r"compar\w*\s+(?:(?:la|le|les|the|this|these|ce|cette|ces)\s+)?(?:with|to|against|avec|a|au|aux)\s|compare(?:e|es|s)?\s+(?:a|au|aux|avec)|en\s+comparaison\s+(?:de|avec|du)|face\s+a|"
    r"same\s+(?:month|period|time|season|week|day|window|dates?)|meme\s+(?:mois|periode|saison|semaine|epoque))\b")


def _relative_to_main(m: Mention) -> bool:
    """A comparison that only means something relative to a main window ("last year")."""
    return m.kind in ("shift", "earlier") or (m.kind == "year" and bool(m.years_back))


@dataclass(frozen=True)
class DateReading:
    window: DateWindow | None
    compare_windows: tuple[DateWindow, ...]
    rules: tuple[str, ...]
    notes: tuple[str, ...]
    ranged: bool          # the main window came from a range, "since" or "the last N ..."
    text: str             # the question with the date expressions blanked


def read_dates(text: str, ref: dt.date, hemi: str, lang: str, ref_source: str,
               oldest: dt.date | None = None, compare_verb: bool = False,
               original: str | None = None, parcels_compared: bool = False) -> DateReading:
    """Read every date expression of the folded `text` into a main window and compared windows.

    `original` (the question before folding) gives the rules the question's own words.
    `parcels_compared`: the question compares named parcels with each other ("compare A with B on
    16 May"), so a comparison word does not make the dates after it a second window."""
    mentions, work, notes = find_mentions(text, ref, hemi, lang)
    own = (lambda s, e: source_span(original, text, s, e)) if original is not None else (lambda s, e: text[s:e].strip())
    mentions = [replace(m, text=own(m.start, m.end) or m.text) for m in mentions]
    marker = None if parcels_compared else _COMPARE.search(text)
    cut = marker.start() if marker else len(text)
    main_ms = [m for m in mentions if m.start < cut]
    cmp_ms = [m for m in mentions if m.start >= cut]
    if not main_ms and any(_relative_to_main(m) for m in cmp_ms):
        # "vs the same month last year, in October 2019": the explicit window is the main one.
        main_ms = [m for m in cmp_ms if not _relative_to_main(m)]
        cmp_ms = [m for m in cmp_ms if _relative_to_main(m)]
    rules: list[str] = []
    ranged = False

    # Join ranges among main mentions, then resolve them.
    windows: list[tuple[DateWindow, Mention]] = []
    i = 0
    while i < len(main_ms):
        a = main_ms[i]
        if a.kind in ("shift", "earlier"):
            cmp_ms.insert(0, a)
            i += 1
            continue
        if i + 1 < len(main_ms) and _range_joined(text, a, main_ms[i + 1]) and main_ms[i + 1].kind != "earlier":
            b = main_ms[i + 1]
            try:
                if a.year is None and b.year is not None and a.kind in ("day", "month", "season"):
                    wb, _ = resolve(b, ref, hemi, lang)
                    wa, _ = resolve(a, ref, hemi, lang, anchor_year=b.year)
                    if wa.start > wb.start:
                        wa, _ = resolve(a, ref, hemi, lang, anchor_year=b.year - 1)
                else:
                    wa, _ = resolve(a, ref, hemi, lang)
                    if b.year is None and b.kind in ("day", "month", "season"):
                        wb, _ = resolve(b, ref, hemi, lang, anchor_year=wa.start.year)
                        if wb.end < wa.start:
                            wb, _ = resolve(b, ref, hemi, lang, anchor_year=wa.start.year + 1)
                    else:
                        wb, _ = resolve(b, ref, hemi, lang)
                if wb.end >= wa.start:
                    expr = own(a.start, b.end)
                    w = DateWindow(wa.start, wb.end, f"{wa.label} - {wb.label}")
                    windows.append((w, replace(a, end=b.end, text=expr)))
                    rules.append(rule_text("range", lang, expr, w, ref))
                    ranged = True
                    i += 2
                    continue
            except ValueError:
                pass
        w, rule = resolve(a, ref, hemi, lang)
        since = _since(text, a)
        if since is not None and w.start <= ref:
            w = DateWindow(w.start, ref, f"{w.start.isoformat()} to {ref.isoformat()}")
            rule = rule_text("since", lang, own(since, a.end), w, ref)
            ranged = True
        elif a.rule == "past_n" or a.day0 is not None:
            ranged = True
        windows.append((w, a))
        rules.append(rule)
        i += 1

    main: DateWindow | None = None
    compare: list[DateWindow] = []
    if windows:
        if len(windows) > 1 and (compare_verb or not cmp_ms):
            # Several plain expressions: the latest is the main window, the others compared.
            ordered = sorted(windows, key=lambda wm: wm[0].start, reverse=True)
            main = ordered[0][0]
            compare.extend(w for w, _ in ordered[1:])
        else:
            main = windows[0][0]
            if len(windows) > 1:
                notes.append("other dates mentioned and not used: " + ", ".join(w.label for w, _ in windows[1:]))

    # Comparison windows.
    for m in cmp_ms:
        if m.kind == "year" and m.years_back:
            m = replace(m, kind="shift")
        if m.kind in ("shift", "earlier", "year") and main is None:
            # "compared with last year" with no window of its own: the reference month so far.
            main = DateWindow(ref.replace(day=1), ref, month_window(ref.year, ref.month, lang).label)
            rules.append(rule_text("main_default", lang, "", main, ref))
        if m.kind == "shift":
            ws = [shifted(main, -n) for n in m.years_back]
            compare.extend(ws)
            rules.append(rule_text("shift", lang, m.text, None, ref, n=", ".join(map(str, m.years_back)),
                                   windows=", ".join(f"{w.start} to {w.end}" for w in ws)))
        elif m.kind == "earlier":
            first = (oldest or shift_years(main.start, -1)).year
            ws = [shifted(main, -n) for n in range(1, max(1, main.start.year - first) + 1)
                  if oldest is None or shifted(main, -n).end >= oldest]
            ws = ws or [shifted(main, -1)]
            compare.extend(ws)
            rules.append(rule_text("earlier", lang, m.text, None, ref,
                                   windows=", ".join(f"{w.start} to {w.end}" for w in ws)))
        elif m.kind == "year":
            n = m.year - main.start.year  # type: ignore[operator]
            w = main if n == 0 else shifted(main, n)
            compare.append(w)
            rules.append(rule_text("in_year", lang, m.text, None, ref, windows=f"{w.start} to {w.end}"))
        else:
            w, rule = resolve(m, ref, hemi, lang)
            if main is None:
                back = 0
                while shift_years(w.start, back + 1) <= ref and back < 200:
                    back += 1
                if back:
                    main = clip(shifted(w, back), ref)
                    rules.append(rule_text("main_from_compare", lang, "", main, ref))
                else:
                    main = DateWindow(ref.replace(day=1), ref, month_window(ref.year, ref.month, lang).label)
                    rules.append(rule_text("main_default", lang, "", main, ref))
            elif m.year is None and m.kind in ("month", "season", "day"):
                # "this summer vs last summer": the compared one precedes the main window.
                while w.start >= main.start:
                    w = shifted(w, -1)
            compare.append(w)
            rules.append(rule)
    if main is not None or compare or rules:
        rules.append(RULES[lang]["reference"].format(ref=ref.isoformat(), source=RULES[lang][ref_source]))
    seen: list[DateWindow] = []
    for w in compare:
        if w not in seen and w != main:
            seen.append(w)
    return DateReading(main, tuple(seen), tuple(rules), tuple(notes), ranged, work)
