"""Text normalisation, number words and language detection shared by the parser's parts.

Every part of the parser works on the *folded* question (`fold`): lower case, accents removed,
typographic quotes, primes, dashes and comparison signs unified. Parts that understood a piece
of the question blank it out (`blank`, same length, so offsets stay valid) so that a number read
as a parcel id or a coordinate is not read again as a day or a threshold.
"""

from __future__ import annotations

import re
import unicodedata

_REPLACE = {
    "\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u2032": "'", "\u00b4": "'", "`": "'",
    "\u201c": '"', "\u201d": '"', "\u2033": '"', "\u00ab": '"', "\u00bb": '"',
    "\u2013": "-", "\u2014": "-", "\u2212": "-", "\u2010": "-", "\u2011": "-",
    "\u2264": "<=", "\u2265": ">=", "\u00ba": "\u00b0", "\u02da": "\u00b0",
    "\u00a0": " ", "\u202f": " ", "\u2009": " ",
}


def fold(text: str) -> str:
    """Lower-case, strip accents (NFD, so "°" and "″" keep their meaning), unify punctuation."""
    # "maïs" (maize) and "mais" (but) differ only by the diaeresis: read the crop before folding
    # ("maiz", same length, so that offsets still point into the question; the lexicon knows it).
    text = re.sub(r"\bmaïs\b", "maiz", unicodedata.normalize("NFC", text.lower()))
    for a, b in _REPLACE.items():
        text = text.replace(a, b)
    text = unicodedata.normalize("NFD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    # Typed without the accent, "mais" is the crop only after an article ("de mais", "du mais").
    text = re.sub(r"\b(de|du|le|les|des|au) mais\b", r"\1 maiz", text)
    return re.sub(r"[\t\r\n\f\v]", " ", text)


def source_span(original: str, folded: str, start: int, end: int) -> str:
    """The question's own words for a span of the folded text (the folded ones when folding
    changed the length, e.g. "≤" -> "<=")."""
    same = len(unicodedata.normalize("NFC", original)) == len(folded)
    return (unicodedata.normalize("NFC", original) if same else folded)[start:end].strip()


def blank(text: str, start: int, end: int) -> str:
    """`text` with [start, end) replaced by spaces (offsets elsewhere unchanged)."""
    return text[:start] + " " * (end - start) + text[end:]


NUMBER_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20, "a": 1, "an": 1,
    "un": 1, "une": 1, "deux": 2, "trois": 3, "quatre": 4, "cinq": 5, "sept": 7,
    "huit": 8, "neuf": 9, "dix": 10, "onze": 11, "douze": 12, "quinze": 15, "vingt": 20,
}
#: A number as digits or as an English/French word (the caller converts with `to_int`).
# "a", "an", "un", "une" are articles far more often than numbers: only patterns that expect them
# ("a week ago", "il y a une semaine") list them.
NUMBER = r"(?:\d+|" + "|".join(sorted((w for w in NUMBER_WORDS if len(w) > 2 and w != "une"), key=len,
                                       reverse=True)) + ")"


def to_int(token: str) -> int | None:
    token = token.strip()
    if token.isdigit():
        return int(token)
    return NUMBER_WORDS.get(token)


# Words frequent in one language and rare in the other (folded). "la", "de", "le" etc. are
# French function words; "the", "of", "which" English ones.
_FR = set("""le la les des du de un une et est sont ou quel quelle quels quelles quoi comment
parcelle parcelles champ champs dans avec sur pour par entre depuis mois annee an semaine jour
dernier derniere derniers dernieres passe passee cette cet ce ces ete hiver printemps automne
janvier fevrier avril mai juin juillet aout septembre octobre novembre decembre rapport au aux
il t elle plus moins que qui leur sa son etait ont avait semblables similaires ressemblent
etat vigueur hydrique stress humidite indice saison hier aujourd toutes tous lesquelles
betterave ble orge prairie pomme terre""".split())
_EN = set("""the of and is are was were which what how in on at for with by between since month
year week day last this these those parcel parcels field fields plot plots similar like most
compared than show tell me did does do has have had its their ago summer winter spring autumn
fall january february march april may june july august september october november december
trend history over below above under during vs versus stressed vigor vigour which all every
any there from to""".split())


def detect_lang(folded: str) -> str:
    """'fr' when French marker words outnumber English ones, else 'en' (ties go to English).

    Markers are function words, date words and domain words of each language; elided forms
    ("l'", "d'", "qu'") count for French.
    """
    words = re.findall(r"[a-z]+", folded)
    fr = sum(w in _FR for w in words) + len(re.findall(r"\b(?:l|d|qu|n|s|j)'", folded))
    en = sum(w in _EN for w in words)
    # "parcelle" alone says French even in a two-word question.
    if "parcelle" in words or "parcelles" in words:
        fr += 1
    return "fr" if fr > en else "en"
