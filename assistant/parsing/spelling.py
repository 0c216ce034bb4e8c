"""Misspelt words read by edit distance, and the words of a question no part of the parser used.

The rule (`correct`): a word of the question (folded, letters only, at least 4 letters) that is
not a known word is compared with the *targets*: month names (English and French), parcel words
("parcel", "parcelle", "field" ...), the words of the store's crop values and of the crop lexicon,
and the words that choose a kind of answer ("harvested", "cloudy", "compare" ...). Its distance
is the optimal-string-alignment edit distance (insertions, deletions, substitutions and swaps of
two neighbouring letters each count 1). It is read as the target when the distance is at most 1
(words of 4 to 6 letters) or 2 (7 letters or more), the first letter is the same, and exactly one
target is that close. Every reading is echoed ("reading 'jully' as July").

`unused_words(text)`: the words left in the parser's working text (places, dates, thresholds
blanked) that are neither function words nor words the parser or a kind of answer understands.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from assistant.parsing.dates import MONTH_NAMES, MONTHS
from assistant.parsing.text import _EN, _FR

PARCEL_WORDS = ("parcel", "parcels", "parcelle", "parcelles", "field", "fields", "plot", "plots")
KIND_WORDS = ("harvest", "harvested", "harvesting", "cloudy", "clouded", "cloud", "clouds", "compare", "compared",
              "similar", "average", "history", "trend", "snowy", "snow", "recolte", "recoltee", "nuageux", "nuageuses",
              "moyenne", "semblables", "evolution", "emergence", "senescence", "peak", "usable",
              "unusable", "exploitable", "inexploitable", "archive", "ranking", "median", "highest", "lowest",
              "vegetation", "moisture", "stressed")
#: Words that are never corrected nor reported unused (function words, question words).
FUNCTION_WORDS = _EN | _FR | set("""
a an the of to in on at by for from with about into than then there their it its this that these those
is are was were be been being do does did has have had will would can could should may might must
i me my we our you your he she they them his her what which who whom whose when where why how
not no yes and or but if so as also just only very more most less least much many some any all each
every both either neither other another same such own up down out over under again once here
please show tell give list let know want see look looking looked doing going get got make
et ou mais donc or ni car je tu il elle on nous vous ils elles me te se le la les un une des du de
au aux ce cet cette ces mon ma mes ton ta tes son sa ses notre nos votre vos leur leurs qui que quoi
dont ou est sont etait etaient a ont avait avaient ete etre avoir fait faire quel quelle quels quelles
comment pourquoi quand combien y en ne pas plus moins tres bien aussi encore deja toujours jamais
donne donner montre montrer dis dire voir sur sous dans par pour avec sans entre vers chez
doing going happening happened looks going value values index indices state status condition
among between during within across parmi pendant durant
date dates moyen moyenne healthy health low high reach reached sera seront so still yet
""".split())


def osa_distance(a: str, b: str, limit: int = 3) -> int:
    """Optimal string alignment distance (Levenshtein plus swaps of neighbouring letters)."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[-1]


def _allowed(word: str) -> int:
    return 1 if len(word) <= 6 else 2


def targets(crop_words: Iterable[str] = ()) -> dict[str, str]:
    """Folded target word -> how it is echoed (month names capitalised in English)."""
    out: dict[str, str] = {}
    for name, month in MONTHS.items():
        if len(name) >= 4:
            out[name] = MONTH_NAMES["fr" if name in {"janvier", "fevrier", "avril", "juin", "juillet", "aout",
                                                      "septembre", "octobre", "novembre", "decembre", "mars", "mai"}
                                    else "en"][month - 1]
    for w in (*PARCEL_WORDS, *KIND_WORDS):
        out.setdefault(w, w)
    for w in crop_words:
        if len(w) >= 4 and w.isalpha():
            out.setdefault(w, w)
    return out


_WORD = re.compile(r"[a-z]+")


def _meaning(target: str) -> str:
    """What a target means: a month's number, "parcel" for every parcel word, else itself (two
    targets of one meaning, "june" and "juin" for "juen", are no tie)."""
    if target in MONTHS:
        return f"month {MONTHS[target]}"
    if target in PARCEL_WORDS:
        return "parcel"
    return target


def correct(folded: str, crop_words: Iterable[str] = (), understood: Iterable[re.Pattern[str]] = ()
            ) -> tuple[str, list[tuple[str, str]]]:
    """`folded` with its misspelt words replaced (see the module docstring), and the readings
    [(as written, as read)]. Words inside a match of an `understood` pattern are known words."""
    table = targets(crop_words)
    known = FUNCTION_WORDS | set(table)
    taken = set()
    for pattern in understood:
        for m in pattern.finditer(folded):
            taken.update(range(m.start(), m.end()))
    readings: list[tuple[str, str]] = []
    pieces: list[str] = []
    last = 0
    for m in _WORD.finditer(folded):
        word = m.group()
        if len(word) < 4 or word in known or (word.endswith("s") and word[:-1] in known) or m.start() in taken:
            continue
        best, tie = None, False
        best_d = _allowed(word) + 1
        for target in table:
            if target[0] != word[0]:
                continue
            d = osa_distance(word, target, best_d)
            if d < best_d:
                best, best_d, tie = target, d, False
            elif d == best_d and best is not None and _meaning(target) != _meaning(best):
                tie = True
        if best is None or tie or best_d > _allowed(word):
            continue
        pieces.append(folded[last:m.start()] + best)
        last = m.end()
        readings.append((word, table[best]))
    pieces.append(folded[last:])
    return "".join(pieces), readings


def unused_words(text: str, understood: Iterable[re.Pattern[str]] = ()) -> list[str]:
    """Words of the parser's working `text` that nothing understood (see the module docstring)."""
    for pattern in understood:
        text = pattern.sub(lambda m: " " * len(m.group()), text)
    out = []
    for m in _WORD.finditer(text):
        w = m.group()
        if len(w) >= 3 and w not in FUNCTION_WORDS and w.removesuffix("s") not in FUNCTION_WORDS and w not in out:
            out.append(w)
    return out
