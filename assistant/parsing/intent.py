"""What is asked: the index, a threshold or class filter, how many results, and the intent.

Rules:

- Index: an index name (NDVI, NDWI, NDMI, SAVI, EVI, NDRE) or a word for it ("vegetation
  index", "indice de végétation"); else the index behind a class word (vigor -> NDVI, moisture /
  water stress -> NDMI, cover -> SAVI, biomass -> EVI, growth -> NDRE), the statistic of
  `indexer.analysis.CLASS_RULES`.
- Condition: "<index> below / under / less than / < / inférieur à / sous 0.3" (and the mirrored
  "above / over / > / supérieur à / au-dessus de"); "at most" / "at least" are `<=` / `>=`;
  French decimal commas ("0,3") are read.
- Class condition: words for a class of `indexer.analysis.CLASS_RULES` ("water-stressed", "dry",
  "stress hydrique" = moisture low; "low vigor", "faible vigueur" = vigor low; "bare soil" =
  cover bare_soil ...), else any key phrase `indexer.analysis.read_classes` finds.
- k: "top 5", "5 most similar", "the 3 closest", "les 5 parcelles", "k=5"; number words count.
  Default 5 for similar parcels; for a ranking without a number, every parcel (the store's
  count).
- Intent, first that applies: similar (a similarity word) > rank ("which parcels", "rank",
  "highest", "quelles parcelles", a condition or class filter over more than one parcel) >
  compare (a comparison word, compared windows, or two named parcels with "compare") > history
  ("trend", "history", "évolution", a range / "since" / "the last N months" for one parcel) >
  describe (a place, a date or an index) > unknown (nothing of the above).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from assistant.plan import ClassCondition, Condition
from assistant.parsing.text import NUMBER, blank, to_int
from indexer.analysis import RULE_BY_ASPECT, read_classes

_INDEX_WORDS = {
    "ndvi": r"ndvi|vegetation\s+index|indice\s+de\s+vegetation|greenness|greener|greenest|verdure|plus\s+verte?s?",
    "ndmi": r"ndmi|moisture\s+index|indice\s+d'humidite",
    "ndwi": r"ndwi|water\s+index|indice\s+d'eau",
    "savi": r"savi", "evi": r"evi", "ndre": r"ndre|red[- ]edge|chlorophyll\w*",
}
_INDEX_RE = re.compile(r"\b(?:" + "|".join(f"(?P<{k}>{v})" for k, v in _INDEX_WORDS.items()) + r")\b")

_NUM = r"(?P<num>[-+]?(?:\d+(?:[.,]\d+)?|[.,]\d+))"
_OPS: tuple[tuple[str, str], ...] = (
    ("<=", r"<=|=<|at\s+most|no\s+more\s+than|not\s+above|not\s+over|inferieure?s?\s+ou\s+egale?s?\s+a|au\s+plus|au\s+maximum"),
    (">=", r">=|=>|at\s+least|no\s+less\s+than|not\s+below|superieure?s?\s+ou\s+egale?s?\s+a|au\s+moins|au\s+minimum"),
    ("<", r"<|below|under|beneath|less\s+than|lower\s+than|smaller\s+than|inferieure?s?\s+a|en[- ]dessous\s+de|au[- ]dessous\s+de|sous|moins\s+de|plus\s+(?:bas|faible|petit)e?s?\s+que|drops?\s+below|fell\s+below|falls?\s+below"),
    (">", r">|above|over|exceed(?:s|ed|ing)?|greater\s+than|more\s+than|higher\s+than|superieure?s?\s+a|au[- ]dessus\s+de|plus\s+de|plus\s+(?:haut|eleve|grand)e?s?\s+que|depass\w*|rises?\s+above|rose\s+above"),
)
_OP_RE = "|".join(f"(?P<op{i}>{pat})" for i, (_, pat) in enumerate(_OPS))
# Up to six words between the index and the comparison ("NDVI of parcel 3 in June was below 0.3"),
# none of them a decimal number (that would be the value of something else).
_GAP = r"(?:\s+(?!(?:and|et|or|ou)\b)(?![-+]?\d*[.,]\d)[^\s<>=]+){0,6}?"
_COND_RE = re.compile(rf"(?P<idx>{'|'.join(_INDEX_WORDS.values())}){_GAP}\s*(?:{_OP_RE})\s*(?:a\s+|de\s+|than\s+)?{_NUM}(?![\d.])")
_COND_RE_REV = re.compile(rf"(?:{_OP_RE})\s*{_NUM}\s+(?:of\s+|d'|de\s+|en\s+)?(?P<idx>{'|'.join(_INDEX_WORDS.values())})\b")

# (pattern, aspect, label): words people use for the classes of CLASS_RULES.
_CLASS_WORDS: tuple[tuple[str, str, str], ...] = (
    (r"well[- ]?watered|well[- ]?hydrated|high\s+(?:canopy\s+)?moisture|bien\s+hydratee?s?|humidite\s+(?:elevee|forte)|forte\s+humidite", "moisture", "high"),
    (r"moderate\s+(?:canopy\s+)?moisture|humidite\s+moyenne|humidite\s+moderee", "moisture", "moderate"),
    (r"water[- ]?stress(?:ed)?|drought[- ]?stressed|drought|dry|drier|driest|too\s+dry|low\s+(?:canopy\s+)?moisture|lack(?:ing)?\s+(?:of\s+)?water|thirsty|(?:enough|sufficient)\s+water|(?:assez|suffisamment)\s+d'eau|stress(?:ee?s?)?\s+hydrique|secheresse|seches?|secs|manque\s+d'eau|faible\s+humidite|humidite\s+faible|manquent\s+d'eau|manque\s+d'humidite|stress(?:ed)?|stressee?s?", "moisture", "low"),
    (r"peu\s+vigoureu\w*|low\s+vigou?r|weak\s+(?:vegetation|vigou?r|growth|crops?)|poor\s+vigou?r|poorly\s+growing|faible\s+vigueur|vigueur\s+faible|vegetation\s+faible|stunted", "vigor", "low"),
    (r"moderate\s+vigou?r|medium\s+vigou?r|average\s+vigou?r|vigueur\s+(?:moyenne|moderee)", "vigor", "moderate"),
    (r"high\s+vigou?r|strong\s+vigou?r|vigorous|forte\s+vigueur|vigueur\s+(?:elevee|forte)|vigoureu\w*", "vigor", "high"),
    (r"bare\s+soil|bare|exposed\s+soil|sols?\s+nus?|sol\s+a\s+nu", "cover", "bare_soil"),
    (r"dense\s+(?:vegetation|cover|canopy)|fully\s+covered|couvert\s+dense|vegetation\s+dense", "cover", "vegetation_dominant"),
    (r"partial\s+(?:vegetation\s+)?cover|mixed\s+cover|couvert\s+partiel", "cover", "mixed"),
    (r"low\s+biomass|little\s+biomass|faible\s+biomasse|biomasse\s+faible", "biomass", "low"),
    (r"high\s+biomass|forte\s+biomasse|biomasse\s+elevee", "biomass", "high"),
    (r"senescen\w*|emerging|early\s+growth\s+stage|en\s+levee", "growth", "early_or_senescent"),
    (r"mature\s+canopy|couvert\s+mature", "growth", "mature_canopy"),
    (r"non[- ]uniforme?s?|heterogene\w*|heterogeneous|patchy|uneven", "uniformity", "heterogeneous"),
    (r"uniform|homogene\w*", "uniformity", "uniform"),
    (r"standing\s+water|flood(?:ed|ing|s)?|waterlogg\w*|ponding|puddl\w*|surface\s+water|submerg\w*|"
     r"inondee?s?|inondation\w*|eau\s+stagnante|eau\s+de\s+surface|engorg\w*|open\s+water", "water", "present"),
)
_ASPECT_WORDS: tuple[tuple[str, str], ...] = (
    (r"vigou?r|vigueur|vigoureu\w*|vigorous", "vigor"),
    (r"moisture|humidite|water[- ]?stress\w*|stress\s+hydrique|drought|secheresse|dry|seche?s?|water\s+(?:status|content|supply)|"
     r"hydrat\w*|alimentation\s+en\s+eau", "moisture"),
    (r"cover|couvert|couverture|bare\s+soil|sol\s+nu", "cover"),
    (r"biomass|biomasse", "biomass"),
    (r"growth\s+stage|stade", "growth"),
    (r"uniformity|uniformite|heterogene\w*|heterogeneity", "uniformity"),
)

# "drier than last year", "plus sèche que l'an dernier": a comparison on the aspect's index, not a
# filter on its class ("dry" alone is one). (pattern, aspect)
_COMPARATIVES: tuple[tuple[str, str], ...] = (
    (r"drier|dryer|wetter|moister|more\s+(?:humid|moist|water[- ]?stressed|stressed)|less\s+(?:humid|moist|dry)|"
     r"plus\s+(?:seche?s?|secs|humides?|stressee?s?)|moins\s+(?:seche?s?|secs|humides?)", "moisture"),
    (r"greener|healthier|more\s+(?:vigorous|green)|less\s+(?:vigorous|green)|"
     r"plus\s+(?:verte?s?|vigoureu\w*)|moins\s+(?:verte?s?|vigoureu\w*)", "vigor"),
    (r"barer|more\s+bare|less\s+(?:covered|bare)|more\s+covered|plus\s+(?:nue?s?|couverte?s?)|moins\s+(?:nue?s?|couverte?s?)", "cover"),
)
_COMPARATIVE_RE = re.compile(r"\b(?:" + "|".join(f"(?P<c{i}>{p})" for i, (p, _) in enumerate(_COMPARATIVES))
                             + r")\s+(?:than|que|qu')")

_SIMILAR = re.compile(r"\b(?:similar\w*|resembl\w*|look(?:s|ed|ing)?\s+like\s+(?:the\s+|that\s+|this\s+)?(?:(?:number|no\.?|n°)\s*)?(?:parcels?|fields?|plots?|#|flanders|one|[\w-]*\d)|looks\s+the\s+same|alike|look(?:s|ed|ing)?\s+like\s+(?:it|this|that|mine)\b(?!\s+(?:was|is|did|does))|most\s+like|like\s+(?:parcel|field|plot)|analog\w*|"
                      r"same\s+(?:behaviou?r|profile)\s+as|semblables?|similaires?|ressembl\w*|analogues?|comparables?\s+a|comme\s+la\s+parcelle|"
                      r"proches?\s+de\s+la\s+parcelle|nearest\s+neighbou?rs?|closest\s+(?:match|parcels?|fields?))\b")
_RANK = re.compile(r"\b(?:which|what)\s+(?:of\s+the\s+)?(?:(?!(?:did|does|do|is|was|are|were|has|had|have|about)\b)\w+\s+)?(?:parcels?|fields?|plots?|ones)\b|\bwhich\s+(?:\w+\s+)?(?:had|have|has|were|was|are|is|show\w*)\b|"
                   r"\b(?:rank\w*|sort\w*|order\s+by|highest|lowest|bottom|greenest|driest|wettest|best|worst|top|most(?!\s+recent)|least|strongest|weakest|"
                   r"how\s+many|any\s+(?:parcels?|fields?)|is\s+there|are\s+there|y\s+a-t-il|existe-t-il|show\s+(?:me\s+)?(?:all\s+)?(?:the\s+)?(?:parcels?|fields?)\s+(?:with|where|that)|find\s+(?:the\s+)?(?:parcels?|fields?)|"
                   r"quel(?:le)?s\s+(?:\w+\s+)?(?:parcelles|champs)|quelles?\s+(?:parcelles?|champs?)\b|lesquel\w*|class\w*|trie\w*|"
                   r"(?:le|la|les)\s+plus(?!\s+(?:proches?|semblables?|similaires?)\b)|le\s+moins|la\s+moins|les\s+moins|meilleur\w*|pire\w*|combien\s+de|y\s+a-t-il\s+des)\b")
_COMPARE_WORD = re.compile(r"\b(?:compar\w*|versus|vs|difference|differ\w*|contrast\w*|than|par\s+rapport|against|ecart|changed?\s+from)\b")
_HISTORY = re.compile(r"\b(?:history|historic\w*|trends?|over\s+time|evolution|evolv\w*|evolu\w*|time\s*series|timeline|"
                      r"progress\w*|over\s+the\s+(?:season|year)|through\s+the\s+season|throughout|historique|tendance\w*|au\s+fil|"
                      r"serie\s+temporelle|au\s+cours\s+de|develop\w*|changed?|how\s+has|how\s+did|trajectory|courbe|profil)\b")
_DESCRIBE = re.compile(r"\b(?:describe|description|status|state|condition|health|how\s+(?:is|was|are|were|does|did|look)|what\s+(?:is|was|about)|"
                       r"tell\s+me|show|summar\w*|report|analys\w*|look|etat|comment\s+(?:va|allait|se\s+porte|est|etait|se\s+portait)|decri\w*|sante|quel(?:le)?\s+(?:est|etait)|resume\w*|analyse\w*)\b")
_DESC = re.compile(r"\b(?:highest|greenest|wettest|best|top|most|strongest|le\s+plus|la\s+plus|les\s+plus|meilleur\w*|plus\s+(?:haut|eleve|fort|vert)e?s?)\b")
#: Lowest first: the words for it, and a worry ("which parcels need attention / have problems /
#: are struggling?", "à surveiller", "en difficulté"): the weakest are the answer.
_ASC = re.compile(r"\b(?:lowest|driest|worst|least|weakest|bottom|le\s+moins|la\s+moins|les\s+moins|pire\w*|plus\s+(?:bas|faible|sec)(?:se)?s?|"
                  r"need\w*\s+(?:\w+\s+)?attention|struggl\w*|(?:have|having|has|with)\s+(?:a\s+)?problems?|problematic|"
                  r"(?:a|en)\s+surveiller|en\s+difficulte|ont\s+(?:un\s+|des\s+)?problemes?)\b")
_K_RE = re.compile(rf"\b(?:top|bottom|k\s*=?|the\s+|les\s+|first\s+)?\s*(?P<n>{NUMBER})\s+(?:most\s+|closest\s+|nearest\s+|best\s+|plus\s+|"
                   rf"(?:weakest|strongest|greenest|lowest|highest|worst|driest|wettest|healthiest)\s+)?"
                   rf"(?:similar\w*|closest|nearest|parcels?|fields?|plots?|parcelles?|champs?|semblables?|similaires?|proches|matches|results?|ones|best|lowest|highest)\b"
                   rf"|\b(?:top|bottom)\s*-?\s*(?P<t>{NUMBER})\b|\bk\s*=\s*(?P<k>\d+)\b")
_YES_NO = re.compile(r"^\W*(?:is|are|was|were|did|does|do|has|have|had|est-ce|etait-elle|est-elle|a-t-elle)\b|-t-(?:elle|il)s?\b|\b(?:est|etait|sont|etaient|avait|avaient|ont)-(?:elle|il)s?\b")
DEFAULT_K = 5
#: The patterns of words this module understands (the parser reports the words none of them took).
INTENT_WORDS = (_SIMILAR, _COMPARATIVE_RE, _RANK, _COMPARE_WORD, _HISTORY, _DESCRIBE, _DESC, _ASC, _YES_NO, _INDEX_RE,
                re.compile(r"\b(?:" + "|".join(p for p, _, _ in _CLASS_WORDS) + r")\b"),
                re.compile(r"\b(?:" + "|".join(p for p, _ in _ASPECT_WORDS) + r")\b"))


@dataclass
class AskReading:
    index: str | None = None
    condition: Condition | None = None
    class_condition: ClassCondition | None = None
    k: int | None = None
    order: str | None = None
    similar: bool = False
    rank: bool = False
    compare: bool = False
    history: bool = False
    describe: bool = False
    yes_no: bool = False
    notes: list[str] | None = None
    text: str = ""


def _index_of(matched: str) -> str | None:
    m = _INDEX_RE.search(matched)
    return next((k for k, v in m.groupdict().items() if v), None) if m else None


_VALUE_RANGE = re.compile(rf"(?:{'|'.join(_INDEX_WORDS.values())})\w*\s+(?P<rng>(?:between|entre)\s+[-+]?[\d.,]+\s+(?:and|et)\s+[-+]?[\d.,]+)")


def value_range(text: str) -> re.Match[str] | None:
    """"NDVI between 0.3 and 0.5": one `Condition` holds one bound, so the caller notes it."""
    return _VALUE_RANGE.search(text)


#: "above 0.6" with no index named: NDVI (the index people mean by default), for a decimal value
#: between -1 and 1 only, so that "above 2019" or "within 500 m" is never a threshold.
_COND_BARE = re.compile(rf"(?:{_OP_RE})\s*(?:a\s+|de\s+|than\s+)?(?P<num>[-+]?\d?[.,]\d+)(?![\d.])")


def read_condition(text: str) -> tuple[Condition | None, str]:
    """The first "<index> <op> <number>" of the folded `text`, and the text with it blanked
    (without an index word, a decimal threshold is NDVI's, see `_COND_BARE`).

    Read before places and dates, so that its number is neither a coordinate nor a day.
    """
    for pattern in (_COND_RE, _COND_RE_REV):
        for m in pattern.finditer(text):
            op = next(_OPS[int(k[2:])][0] for k, v in m.groupdict().items() if k.startswith("op") and v)
            idx = _index_of(m["idx"])
            try:
                value = float(m["num"].replace(",", "."))
            except ValueError:
                continue
            if idx:
                # Blank the comparison and its number only: the words between stay for the others.
                op_start = min(m.start(k) for k, v in m.groupdict().items() if k.startswith("op") and v)
                start = m.start() if pattern is _COND_RE_REV else op_start
                end = m.start("idx") if pattern is _COND_RE_REV else m.end()
                return Condition(idx, op, value), blank(text, start, end)
    for m in _COND_BARE.finditer(text):
        value = float(m["num"].replace(",", "."))
        if -1.0 <= value <= 1.0:
            op = next(_OPS[int(k[2:])][0] for k, v in m.groupdict().items() if k.startswith("op") and v)
            return Condition("ndvi", op, value), blank(text, m.start(), m.end())
    return None, text


def read_ask(text: str, question: str, condition: Condition | None = None, words: str | None = None) -> AskReading:
    """Read index, class filter, k and order from the folded `text` (places and dates blanked),
    and intent words from `words` (the folded question before places were blanked: "looks like
    parcel 5" needs its parcel word); `condition` is what `read_condition` found before."""
    out = AskReading(notes=[], condition=condition, index=condition.index if condition else None)
    work = text
    comparative = None
    if m := _COMPARATIVE_RE.search(work):
        comparative = next(_COMPARATIVES[int(k[1:])][1] for k, v in m.groupdict().items() if v)
        out.compare = True
        work = blank(work, m.start(), m.end())
    for pattern, aspect, label in _CLASS_WORDS if comparative is None else ():
        if m := re.search(rf"\b(?:{pattern})\b", work):
            out.class_condition = ClassCondition(aspect, label)
            work = blank(work, m.start(), m.end())
            break
    if out.class_condition is None and comparative is None:
        classes = read_classes(question)
        if classes:
            aspect, label = next(iter(classes.items()))
            out.class_condition = ClassCondition(aspect, label)
    if out.index is None:
        found = [k for k, v in (_INDEX_RE.search(work).groupdict().items() if _INDEX_RE.search(work) else []) if v]
        if found:
            out.index = found[0]
        else:
            aspect = out.class_condition.aspect if out.class_condition else comparative
            if aspect is None:
                for pattern, a in _ASPECT_WORDS:
                    if re.search(rf"\b(?:{pattern})\b", work):
                        aspect = a
                        break
            if aspect in RULE_BY_ASPECT:
                out.index = RULE_BY_ASPECT[aspect].stat.split("_")[0]
    others = {k for m in _INDEX_RE.finditer(work) for k, v in m.groupdict().items() if v} - {out.index}
    if others:
        out.notes.append("other indices mentioned: " + ", ".join(sorted(others)))
    if m := _K_RE.search(work):
        n = to_int(m["n"] or m["t"] or m["k"])
        if n is not None and 1 <= n <= 1000:
            out.k = n
            work = blank(work, m.start(), m.end()) if m["t"] or m["k"] else work
        elif n is not None:
            out.notes.append(f"ignored k = {n}: must be between 1 and 1000")
    said = words if words is not None else work
    out.similar = bool(_SIMILAR.search(said))
    out.rank = bool(_RANK.search(said))
    out.compare = out.compare or bool(_COMPARE_WORD.search(said))
    out.history = bool(_HISTORY.search(said))
    out.describe = bool(_DESCRIBE.search(said))
    out.yes_no = bool(_YES_NO.search(said))
    if _ASC.search(said):
        out.order = "asc"
    elif _DESC.search(said):
        out.order = "desc"
    elif out.condition is not None:
        out.order = "asc" if out.condition.op in ("<", "<=") else "desc"
    out.text = work
    return out
