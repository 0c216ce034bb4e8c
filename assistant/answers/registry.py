"""The kinds of answer, in one table: each kind's module and the triggers that choose it.

A kind is a module of `assistant.answers` with two functions, ``retrieve(turn, ctx) -> Found`` and
``compose(turn, ctx) -> Composition``. `choose(plan)` walks `KINDS` in order and takes the first
whose trigger words appear in the (folded) question and whose condition on the plan holds (when
the parser found no intent, only the rows marked `without_intent`: their words alone say what is
asked); the parser's own reading (places, dates, the index, a threshold) is in the plan. Adding a kind is one
module and one row here; nothing else branches on the kind. A kind may have two rows (the calendar:
an event asked by name wins early, a trend only after past seasons and groups); both name the same
module.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

from assistant.plan import QueryPlan


def _words(*patterns: str) -> re.Pattern[str]:
    return re.compile(r"\b(?:" + "|".join(patterns) + r")\b")


#: What the store cannot know: declined in one sentence.
DECLINE = _words(r"yields?", r"rendements?", r"prices?", r"prix", r"costs?", r"couts?", r"profit\w*", r"revenue",
                 r"forecast\w*", r"previsions?", r"weather", r"meteo", r"rain\w*", r"pluie\w*", r"pleuvoir",
                 r"temperatures?", r"fertili[sz]\w*", r"engrais", r"pesticides?", r"spray\w*", r"irrigat\w*",
                 r"tonnes?", r"t/ha", r"bushels?", r"sell\w*", r"vendre", r"subsid\w*", r"tomorrow", r"demain",
                 r"next\s+(?:week|month|year|season)", r"(?:semaine|mois|annee|saison)\s+prochaine?",
                 r"will\s+(?:it|the|parcel|field)", r"va-t-(?:il|elle)", r"predict\w*", r"predi\w*", r"soil\s+type",
                 r"owner", r"proprietaire", r"farmer'?s?\s+name", r"insurance", r"assurance", r"nitrogen", r"azote",
                 r"who\s+owns", r"qui\s+possede", r"a\s+qui\s+appartient", r"doses?", r"herbicid\w*", r"fongicid\w*",
                 r"fungicid\w*", r"how\s+much\s+(?:money|water|nitrogen|fertili[sz]er)", r"earn\w*", r"income",
                 r"gagner", r"revenus?", r"margins?", r"marges?", r"ph", r"soil\s+(?:texture|organic|nutrients?|analys\w*)",
                 r"(?:matiere\s+organique|analyse\s+de\s+sol)")
#: A parcel's crop asked: "what crop is parcel 14?", "what's growing on parcel 7?", "what is planted
#: in field 3?", "quelle culture ?", "qu'est-ce qui pousse sur la parcelle 7 ?" (not "is it growing?",
#: "est-ce que ça pousse ?": its latest change).
CROP_ASKED = re.compile(
    r"\b(?:what|which)\s+(?:crop|culture)(?:\s+(?:is|was|grows|does|did|on|in|for|of)\s+(?:(?:on|in|at)\s+)?"
    r"(?:the\s+|this\s+|that\s+)?(?:parcel|field|plot|it\b|there|here|grown|planted|sown|cultivated)|(?=\s*\??$))|\bcrop\s+(?:type|grown)\b|\bcrop\s+of\s+(?:the\s+)?(?:parcel|field|plot)|"
    r"\bwhat(?:'s|\s+is|\s+was|\s+are|\s+were)\s+(?:being\s+)?(?:grown|growing|planted|sown|cultivated|farmed)"
    r"\s+(?:on|in|at)\b|\bwhat\s+(?:grows|is\s+there)\s+(?:on|in)\s+(?:parcel|field|plot)|"
    r"\bquelle\s+(?:est\s+la\s+)?culture|\bqu'est-ce\s+qui\s+(?:pousse|est\s+(?:cultive|seme|plante))\s+"
    r"(?:sur|dans)|\bque\s+(?:cultive|pousse)-t-(?:il|on)")
#: What the archive holds.
ARCHIVE = _words(CROP_ASKED.pattern, r"archive", r"store", r"database", r"data\s*set", r"base(?:\s+de\s+donnees)?", r"available",
                 r"disponibles?", r"holds?", r"contains?", r"contient", r"covers?", r"list\s+(?:the|all|of)",
                 r"liste[rz]?",
                 r"how\s+many\s+(?:parcels|fields|dates|acquisitions|images|crops|seasons)"
                 r"(?!\s+(?:have|had|were|with|where|show)\b|\s+are\s+(?!stored|there|in\b|available))",
                 r"how\s+many\s+(?:\w+\s+){1,3}(?:parcels|fields)\s+(?:are\s+there|do\s+you|exist|in\s+the)",
                 r"(?:which|what)\s+(?:parcels|fields)\s+(?:are|grow)\s+(?!(?!winter\b)\w+(?:ed|est|er|ing)\b)",
                 r"quelles\s+parcelles\s+sont\s+(?:en|de|du|des)\b",
                 r"combien\s+(?:de|d')\s*(?:parcelles|champs|dates|acquisitions|images|cultures|saisons)"
                 r"(?!\s+(?:ont|avaient|avait|etaient|presentaient|montraient|depassaient)\b)",
                 r"(?:which|what)\s+(?:crops|cultures|dates|seasons|years|parcels\s+(?:are|do)\s+(?:there|you))",
                 r"quelles\s+(?:cultures|dates|saisons|annees)", r"what\s+(?:do|does)\s+(?:you|it)\s+(?:have|know)",
                 r"first\s+(?:date|acquisition|image)", r"last\s+(?:date|acquisition|image)", r"latest\s+(?:date|acquisition|image)",
                 r"derniere\s+(?:date|acquisition|image)", r"premiere\s+(?:date|acquisition|image)")
#: What an index means ("what does NDMI mean", "qu'est-ce que le NDRE"): a name of an index asked
#: about on its own, not its value for a parcel.
_INDEX = r"(?:the\s+|an?\s+|le\s+|la\s+|l')?(?:ndvi|ndmi|ndwi|savi|evi|ndre)(?:\s+index|\s+indice)?"
GLOSSARY = re.compile(r"\b(?:" + "|".join((rf"what\s+(?:is|does|'s)\s+{_INDEX}\s*(?:mean\w*|measure\w*|stand\s+for|tell\s+\w+|show\w*)?\s*\??$",
                  rf"meaning\s+of\s+{_INDEX}", rf"(?:define|definition\s+(?:of|du|de))\s+{_INDEX}",
                  rf"explain\s+(?:what\s+)?{_INDEX}\s*(?:is|means)?\s*\??$",
                  rf"qu'est-ce\s+que?\s+{_INDEX}\s*\??$", rf"que\s+(?:signifie|mesure|veut\s+dire)\s+{_INDEX}",
                  rf"{_INDEX}\s*,?\s*(?:c'est\s+quoi|ca\s+veut\s+dire\s+quoi)")) + ")")
#: Damage asked about, with the hazard each pattern names (folded: no accents): the imagery sees a
#: canopy that falls, not its cause (`assistant.answers.damage`).
HAZARDS: tuple[tuple[str, str], ...] = (
    ("hail", r"hail\w*|grele\w*"),
    ("frost", r"frost\w*|gel|gels|gelees?"),
    ("disease", r"diseas\w*|sick\w*|blight|mildew|rust|fung(?:us|al|i)|infect\w*|maladies?|malade|mildiou|rouille|"
                r"champignons?"),
    ("pests", r"pests?|insects?|aphids?|slugs?|infest\w*|ravageurs?|insectes?|pucerons?|limaces?"),
    ("storm", r"storms?|wind\s+damage|tempetes?|orages?"),
    ("lodging", r"lodg\w*|flattened|verse"),
    ("damage", r"damag\w*|degats?|dommages?|endommag\w*|abime\w*"),
)
DAMAGE = _words(*(pattern for _, pattern in HAZARDS))
#: A parcel's months ranked ("the best month for parcel 2", "quel mois était le plus sec ?").
MONTHS = _words(r"(?:best|worst|greenest|wettest|driest|highest|lowest|top|which|what)\s+months?",
                r"months?\s+(?:was|were|did|had|with|of)\s+(?:the\s+|its\s+)?(?:best|worst|highest|lowest|most|least|peak)",
                r"(?:meilleur|pire|quel)s?\s+mois", r"mois\s+(?:ou|le|la|les)\s+(?:\w+\s+){0,2}plus",
                r"(?:rank|classe)\w*\s+(?:the\s+|les\s+)?mois", r"(?:rank|sort)\w*\s+(?:the\s+)?months?")
#: "Why" a value changed.
WHY = _words(r"why", r"pourquoi", r"causes?d?", r"reasons?", r"raisons?", r"explain\w*", r"expliqu\w*",
             r"what\s+happened", r"que\s+s'est-il\s+passe", r"qu'est-ce\s+qui\s+s'est\s+passe", r"how\s+come",
             # a worry about a change: "was it a problem?", "should I worry?", "est-ce normal ?"
             r"(?:is|was)\s+(?:it|this|that)\s+(?:a\s+)?(?:problem\w*|concern\w*|worr\w*|normal|bad|serious)",
             r"should\s+i\s+(?:be\s+)?worr\w*", r"est-ce\s+(?:normal|grave|inquietant|un\s+probleme)",
             r"faut-il\s+s'inquieter")
#: Observation quality.
QUALITY = _words(r"cloud\w*", r"overcast", r"(?:images?|dates?|acquisitions?)\s+(?:\w+\s+)?claire?s?", r"snow\w*", r"neig\w*", r"enneig\w*", r"nuag\w*", r"unusable", r"usable",
                 r"exploitables?", r"inexploitables?", r"clear", r"clearest", r"degage\w*", r"quality", r"qualite", r"haze", r"hazy",
                 r"brume\w*", r"no\s+data", r"missing", r"manquant\w*", r"gaps?", r"suspect\w*", r"reliab\w*",
                 r"unreliab\w*", r"fiables?", r"valid", r"trust\w*", r"too\s+small", r"trop\s+petite?s?")
#: Crop-calendar events and trends.
CALENDAR = _words(r"harvest\w*", r"recolt\w*", r"moissonn?\w*", r"fauch\w*", r"mow\w*", r"cut", r"coupee?s?",
                  r"green[- ]?up", r"emergence", r"emerg\w*", r"levee", r"peak\w*", r"pic", r"senescen\w*",
                  r"sowing", r"sown", r"planted", r"semis", r"semee?s?", r"crop\s+calendar", r"calendrier",
                  r"phenolog\w*", r"stages?", r"stades?", r"trends?", r"history", r"historique", r"evolution",
                  r"evolu\w*", r"evolv\w*", r"tendances?", r"over\s+time", r"time\s*series", r"timeline",
                  r"over\s+the\s+(?:season|year)", r"through(?:out)?\s+the\s+(?:season|year)", r"au\s+fil",
                  r"au\s+cours\s+de", r"serie\s+temporelle", r"courbe", r"trajectory", r"bare\s+soil", r"sol\s+nu",
                  r"stubble", r"chaumes?",
                  # its latest change ("is it growing?", "what changed since last week?"): calendar._recent
                  r"growing", r"improv\w*", r"getting\s+(?:better|worse|greener)", r"recover\w*",
                  r"what\s+(?:has\s+)?changed", r"changed?\s+since", r"pousse\w*", r"s'ameliore\w*",
                  r"qu'est-ce\s+qui\s+a\s+change")
#: "Which parcel is at 50.744, 4.063?", "what field is there", "quelle parcelle se trouve à ...": the
#: parcel a point or place resolved to, as last seen.
LOCATE = re.compile(r"\b(?:(?:which|what)\s+(?:parcel|field|plot)\s+(?:is|lies|was)\s+(?:at|near|around|there|here|located)|"
                    r"quel(?:le)?\s+(?:parcelle|champ)\s+(?:est|se\s+trouve|y\s+a-t-il)\s+(?:a|au|en|pres|vers|la|ici))\b")
#: One parcel set against the others ("compared with the other grass fields", "its peers").
PEERS = _words(r"(?:the\s+)?others?\s+(?:\w+\s+){0,3}(?:parcels|fields|plots)", r"the\s+others", r"peers?",
               r"(?:than|behind|ahead\s+of|with|against)\s+the\s+other\s+\w+",
               r"(?:les\s+)?autres\s+(?!dates?\b|annees?\b|saisons?\b|mois\b|acquisitions?\b)\w+", r"same[- ]crop",
               # "better than average", "below average", "dans la moyenne": against its crop's parcels
               r"(?:than|above|below|over|under)\s+(?:the\s+)?(?:average|norm(?:al)?|median|typical)",
               r"(?:au[- ]dessus|en[- ]dessous|au[- ]dessous)\s+de\s+la\s+(?:moyenne|normale|mediane)",
               r"dans\s+la\s+(?:moyenne|normale)", r"(?:plus|moins)\s+\w+\s+que\s+la\s+moyenne")
#: Words for a change, read by the "why" and calendar kinds (vocabulary only: they choose no kind).
CHANGE = _words(r"drop\w*", r"fall\w*", r"fell", r"los[te]\w*", r"perdu\w*", r"declin\w*", r"dip\w*", r"rise", r"rose", r"increas\w*", r"decreas\w*",
                r"went\s+(?:up|down)", r"baiss\w*", r"chut\w*", r"hausse", r"augment\w*", r"diminu\w*", r"lower", r"higher")
#: A crop-calendar event asked by name: answered by the calendar even when several dates are named.
EVENTS = _words(r"harvest\w*", r"recolt\w*", r"plough\w*", r"plow\w*", r"tilled", r"tillage", r"laboure\w*", r"moissonn?\w*", r"green[- ]?up", r"emerg\w*", r"levee", r"senescen\w*",
                r"sowing", r"sown", r"semis", r"peak\w*", r"pic", r"fauch\w*", r"mow\w*", r"mown", r"cut", r"cuts",
                r"graz\w*")
#: A group's latest change ("which parcels are improving / declining / getting worse?").
PROGRESS = _words(r"improv\w*", r"declin\w*", r"getting\s+(?:better|worse|greener)", r"recover\w*",
                  r"s'ameliore\w*", r"se\s+degrade\w*", r"progress\w*")
#: Aggregates, rankings and peers of a group.
GROUPS = _words(r"average", r"mean", r"moyenn\w*", r"median\w*", r"range", r"ecart", r"count", r"how\s+many",
                r"combien", r"rank\w*", r"classe\w*", r"top", r"highest", r"lowest", r"best", r"worst", r"greenest",
                r"most", r"least", r"behind", r"lagg?ing", r"lag", r"peers?", r"en\s+retard", r"retard\w*", r"overall", r"typical", r"summary",
                r"underperform\w*", r"among", r"parmi", r"others",
                r"below\s+(?:the\s+)?(?:others|average|peers)", r"plus\s+\w+", r"moins\s+\w+", r"which", r"quel\w*")


def _always(plan: QueryPlan) -> bool:
    return True


def _one_or_no_parcel(plan: QueryPlan) -> bool:
    return len(plan.places.parcel_ids) <= 1


def _no_filter(plan: QueryPlan) -> bool:
    return plan.condition is None and plan.class_condition is None


def _index_named(plan: QueryPlan) -> bool:
    """The question names an index itself ("NDVI"), not only a word the parser maps to one ("cover")."""
    return plan.index is not None and re.search(rf"\b{plan.index}\b", plan.question, re.IGNORECASE) is not None


def _group(plan: QueryPlan) -> bool:
    p = plan.places
    return plan.intent == "rank" or (not p.parcel_ids and bool(p.attributes or p.all_parcels or p.bbox or p.point))


def _several(plan: QueryPlan) -> bool:
    return len(plan.places.parcel_ids) >= 2


def _past_seasons(plan: QueryPlan) -> bool:
    return bool(plan.compare_windows)


def _subject(plan: QueryPlan) -> bool:
    p = plan.places
    return plan.intent != "unknown" and bool(p.parcel_ids or p.attributes or p.bbox or p.point or p.all_parcels)


def _filtered(plan: QueryPlan) -> bool:
    return plan.condition is not None or plan.class_condition is not None


def one_parcel_filtered(plan: QueryPlan) -> bool:
    """"When was parcel 7 water-stressed in 2019?": the dates one parcel met a threshold or class."""
    w = plan.window
    return len(plan.places.parcel_ids) == 1 and _filtered(plan) and not (w is not None and w.start == w.end)


@dataclass(frozen=True)
class Kind:
    """One row of the table: `name`, its module (under `assistant.answers`), its trigger words
    (None: none needed), and `when`, the condition on the plan. The kind applies when its trigger
    words are in the question and `when` holds; with `or_intent`, also when the parser's intent is
    that one (a date range for one parcel reads as a trend without any trigger word)."""

    name: str
    module: str
    triggers: re.Pattern[str] | None
    when: Callable[[QueryPlan], bool] = _always
    or_intent: str | None = None
    #: What the kind answers, in one line (the clarifying answer lists them).
    answers: str = ""
    #: The kind applies even when the parser found no intent: its trigger words alone say what is
    #: asked (a decline, the archive's contents, a definition).
    without_intent: bool = False

    def applies(self, plan: QueryPlan, folded: str) -> bool:
        said = self.triggers is None or self.triggers.search(folded) is not None
        return (said or plan.intent == self.or_intent) and self.when(plan)

    def load(self) -> ModuleType:
        return importlib.import_module(f"assistant.answers.{self.module}")


KINDS: tuple[Kind, ...] = (
    Kind("decline", "decline", DECLINE, answers="what the store cannot know (yields, prices, weather): declined",
         without_intent=True),
    Kind("glossary", "glossary", GLOSSARY, lambda p: not p.places.parcel_ids,
         answers="what an index means and how the analyses read it", without_intent=True),
    Kind("similar", "similar", None, lambda p: p.intent == "similar", answers="parcels whose imagery looked alike"),
    Kind("damage", "damage", DAMAGE, answers="damage asked about (hail, frost, disease, pests): whether the vegetation "
         "fell where no harvest, cut or season explains it", without_intent=True),
    Kind("why", "why", WHY, _subject, answers="why a value changed: harvest, cloud, snow, suspect scene or a real decline"),
    Kind("quality", "quality", QUALITY, answers="which dates were cloudy, snowy or unusable", without_intent=True),
    # "Which parcels are improving?": their latest changes, not what the archive holds.
    Kind("calendar", "calendar", PROGRESS, lambda p: not _filtered(p) and len(p.places.parcel_ids) != 1,
         answers="each parcel's latest change: growing, declining or stable"),
    Kind("archive", "archive", ARCHIVE, lambda p: _no_filter(p) and not _index_named(p),
         answers="what the archive holds: parcels, crops, dates, seasons", without_intent=True),
    Kind("observe", "observe", LOCATE, lambda p: len(p.places.parcel_ids) == 1 and not _filtered(p),
         answers="the parcel at a point: its latest observation"),
    Kind("peers", "groups", PEERS, lambda p: len(p.places.parcel_ids) == 1 and p.intent != "similar",
         answers="one parcel against the other parcels of its crop"),
    Kind("calendar", "calendar", EVENTS, answers="a crop-calendar event asked by name (harvest, emergence, peak)"),
    Kind("months", "months", MONTHS, lambda p: len(p.places.parcel_ids) <= 1 and not p.compare_windows,
         answers="a parcel's or a crop's months ranked by an index, the best (or the worst) first"),
    Kind("seasons", "seasons", None, lambda p: _past_seasons(p) and _one_or_no_parcel(p) and p.intent != "rank"
         and p.condition is None and p.class_condition is None,
         answers="a parcel against its past seasons, by day of year"),
    # A class or threshold filter over the parcels ("parcels with bare soil in March") is a group
    # question, though "bare soil" also names a calendar stage.
    Kind("calendar", "calendar", CALENDAR, lambda p: not (_filtered(p) and (p.intent == "rank" or one_parcel_filtered(p))),
         or_intent="history",
         answers="trends and crop-calendar events: green-up, peak, senescence, harvest"),
    Kind("groups", "groups", None, lambda p: _group(p) or one_parcel_filtered(p),
         answers="a crop, an area or all parcels: aggregates, rankings, thresholds, laggards; the dates one parcel "
                 "met a threshold"),
    Kind("parcels", "parcels", None, _several, answers="several named parcels on the same dates"),
    Kind("observe", "observe", None, _subject, answers="a parcel on a date, in a month or a season"),
    Kind("clarify", "clarify", None, answers="a question not understood: what it can answer", without_intent=True),
)


def choose(plan: QueryPlan | None, folded: str) -> Kind:
    """The first kind of `KINDS` that applies to the plan (clarify when there is no plan)."""
    if plan is None:
        return KINDS[-1]
    understood = plan.intent != "unknown"
    return next(k for k in KINDS if (understood or k.without_intent) and k.applies(plan, folded))


def by_name(name: str) -> Kind:
    return next(k for k in KINDS if k.name == name)
