"""Observation quality: which dates were cloudy, snowy, suspect or otherwise unusable (or clear) for
a parcel, a crop, an area or all parcels, in a window.

Retrieval: every record of the parcels asked in the window (without one: the whole archive).
Composition, by the library's status (`indexer.observations.observation_status`): for one parcel,
its dates by status; for several parcels, each acquisition date is "clear" when most of them were
usable, else it takes the most common reason among them; a single date lists the parcels by status.
The question's words choose what is listed first: clear dates ("clear", "usable") or the others.
"""

from __future__ import annotations

import re
from collections import Counter

from assistant.answers import checks
from assistant.answers import common as K
from assistant.answers.groups import members
from assistant.answers.turn import AnswerContext, Found, Turn
from assistant.compose import Composition
from indexer.observations import MIN_RELIABLE_PIXELS

_CLEAR = re.compile(r"\b(?:clear|cloud[- ]?free|usable|good|sans\s+nuages?|degage\w*|exploitables?|claire?s?)\b")
_NOT = re.compile(r"\b(?:unusable|inexploitables?|not\s+usable|non\s+exploitables?)\b")
_SNOW = re.compile(r"\b(?:snow\w*|neig\w*|enneig\w*)\b")
#: "Which date had the most clouds?" / "the clearest date": the dates ranked by their parcels' mean cloud cover.
_CLOUDIEST = re.compile(r"\b(?:cloudiest|most\s+(?:clouds?|cloudy|cloud\s+cover)|(?:la|le)\s+plus\s+(?:de\s+)?nuag\w*|"
                        r"plus\s+nuageu\w*)\b")
_CLEAREST = re.compile(r"\b(?:clearest|least\s+(?:clouds?|cloudy|cloud\s+cover)|fewest\s+clouds|"
                       r"(?:la|le)\s+moins\s+(?:de\s+)?nuag\w*|(?:la|le)\s+plus\s+degage\w*)\b")
#: "When was the last clear image of parcel 2?", "la première date enneigée": that date, said first.
#: The word must name an image or a status: "the last clear image", not "cloudy last month".
_OF_IMAGE = (r"\s+(?:\w+\s+){0,2}(?:images?|dates?|acquisitions?|observations?|scenes?|pictures?|photos?|clear|"
             r"cloudy|snowy|usable|cloud-free|time)\b")
_LATEST = re.compile(rf"\b(?:last|latest|most\s+recent|newest|derniere?s?){_OF_IMAGE}")
_EARLIEST = re.compile(rf"\b(?:first|earliest|oldest|premiere?s?){_OF_IMAGE}")
MAX_DATES = 40

TEXTS = {
    "en": {
        "parcel": "Parcel {pid} in {label}: {u} of {n} acquisitions usable.",
        "listing": "{what}: {dates}.",
        "area": "For {what} in {label}: {u} of {n} acquisition dates were clear for most of them.",
        "date": "On {date}, {u} of {n} parcels had a usable observation.",
        "date_list": "{what}: {pids}.",
        "clear": "Clear", "cloud": "Cloudy", "snow": "Snow", "nodata": "No data", "suspect": "Suspect (haze or thin cloud the cloud mask missed)",
        "too_small": "Too small for a reliable value",
        "none_of": "No {what} date in {label}.",
        "all_parcels": "the {n} parcels", "crop": "the {n} {crop} parcels",
        "share": "{date} ({p} of {n})",
        "small_parcels": "Too small for a reliable value (fewer than {min} pixels of 10 m): {pids}.",
        "usable_share": "Usable acquisitions per parcel in {label}, fewest first: {items}.", "pct_clear": " ({p} % clear)",
        "none_asked": "No acquisition was flagged {what} for {who} in {label}.",
        "old_rule": ("These records were indexed before snow was told apart from cloud: snowy dates count as "
                     "cloudy or, before that rule, as clear; re-indexing the imagery applies it."),
        "snow_word": "snow", "usable_word": "usable", "unusable_word": "unusable",
        "the_archive": "the whole archive",
        "cloudiest": "The cloudiest acquisition date for {what} in {label}: {date}, {p} % cloud on average over its {n} parcels.",
        "cloudiest_tied": ("The cloudiest acquisition dates for {what} in {label}, {k} tied at {p} % cloud on average over "
                           "their parcels: {dates}."),
        "clearest": "The clearest acquisition date for {what} in {label}: {date}, {p} % cloud on average over its {n} parcels.",
        "clearest_tied": ("The clearest acquisition dates for {what} in {label}, {k} tied at {p} % cloud on average over "
                          "their parcels: {dates}."),
        "cloudiest_one": "The cloudiest acquisition date of parcel {what} in {label}: {date}, {p} % cloud.",
        "cloudiest_tied_one": "The cloudiest acquisition dates of parcel {what} in {label}, {k} at {p} % cloud: {dates}.",
        "clearest_one": "The clearest acquisition date of parcel {what} in {label}: {date}, {p} % cloud.",
        "clearest_tied_one": "The clearest acquisition dates of parcel {what} in {label}, {k} at {p} % cloud: {dates}.",
        "latest": "latest", "earliest": "first",
        "adj_usable": "clear", "adj_snow": "snowy", "adj_cloud": "cloudy", "adj_other": "unusable",
        "end_one": "The {which} {what} acquisition of parcel {pid} in {label}: {date}.",
        "end_area": "The {which} {what} acquisition date for most of {who} in {label}: {date} ({p} of {n}).",
    },
    "fr": {
        "parcel": "Parcelle {pid} en {label} : {u} acquisitions exploitables sur {n}.",
        "listing": "{what} : {dates}.",
        "area": "Pour {what} en {label} : {u} dates d'acquisition sur {n} étaient dégagées pour la plupart d'entre elles.",
        "date": "Le {date}, {u} parcelles sur {n} avaient une observation exploitable.",
        "date_list": "{what} : {pids}.",
        "clear": "Dégagées", "cloud": "Nuageuses", "snow": "Neige", "nodata": "Sans données",
        "suspect": "Suspectes (brume ou voile nuageux que le masque n'a pas vu)", "too_small": "Trop petites pour une valeur fiable",
        "none_of": "Aucune date {what} en {label}.",
        "all_parcels": "les {n} parcelles", "crop": "les {n} parcelles de {crop}",
        "share": "{date} ({p} sur {n})",
        "small_parcels": "Trop petites pour une valeur fiable (moins de {min} pixels de 10 m) : {pids}.",
        "usable_share": "Acquisitions exploitables par parcelle en {label}, les moins nombreuses d'abord : {items}.", "pct_clear": " ({p} % dégagé)",
        "none_asked": "Aucune acquisition n'a été marquée {what} pour {who} en {label}.",
        "old_rule": ("Ces enregistrements ont été indexés avant que la neige soit distinguée des nuages : les dates "
                     "enneigées comptent comme nuageuses ou, avant cette règle, comme dégagées ; réindexer les images l'applique."),
        "snow_word": "enneigée", "usable_word": "exploitable", "unusable_word": "inexploitable",
        "the_archive": "toute l'archive",
        "cloudiest": ("La date d'acquisition la plus nuageuse pour {what} en {label} : {date}, {p} % de nuages en moyenne "
                      "sur ses {n} parcelles."),
        "cloudiest_tied": ("Les dates d'acquisition les plus nuageuses pour {what} en {label}, {k} à égalité avec {p} % de "
                           "nuages en moyenne sur leurs parcelles : {dates}."),
        "clearest": ("La date d'acquisition la plus dégagée pour {what} en {label} : {date}, {p} % de nuages en moyenne "
                     "sur ses {n} parcelles."),
        "clearest_tied": ("Les dates d'acquisition les plus dégagées pour {what} en {label}, {k} à égalité avec {p} % de "
                          "nuages en moyenne sur leurs parcelles : {dates}."),
        "cloudiest_one": "La date d'acquisition la plus nuageuse de la parcelle {what} en {label} : {date}, {p} % de nuages.",
        "cloudiest_tied_one": ("Les dates d'acquisition les plus nuageuses de la parcelle {what} en {label}, {k} à {p} % "
                               "de nuages : {dates}."),
        "clearest_one": "La date d'acquisition la plus dégagée de la parcelle {what} en {label} : {date}, {p} % de nuages.",
        "clearest_tied_one": ("Les dates d'acquisition les plus dégagées de la parcelle {what} en {label}, {k} à {p} % "
                              "de nuages : {dates}."),
        "latest": "dernière", "earliest": "première",
        "adj_usable": "dégagée", "adj_snow": "enneigée", "adj_cloud": "nuageuse", "adj_other": "inexploitable",
        "end_one": "La {which} acquisition {what} de la parcelle {pid} en {label} : le {date}.",
        "end_area": "La {which} date d'acquisition {what} pour {who} (la plupart) en {label} : le {date} ({p} sur {n}).",
    },
}


def say(lang: str, key: str, **values: object) -> str:
    return TEXTS.get(lang, TEXTS["en"])[key].format(**values)


def _ids(turn: Turn, ctx: AnswerContext) -> list[str]:
    return list(turn.plan.places.parcel_ids) or members(turn, ctx)


def retrieve(turn: Turn, ctx: AnswerContext) -> Found:
    plan = turn.plan
    if plan is None:
        return Found()
    w = plan.window
    places = plan.places
    docs = ctx.records(parcel_ids=_ids(turn, ctx) if places.parcel_ids or places.attributes else None,
                       date_from=w.start.isoformat() if w else None, date_to=w.end.isoformat() if w else None,
                       bbox=places.bbox, point=places.point if places.radius_m else None, radius_m=places.radius_m)
    return Found(records=tuple(docs))


def _order(folded: str) -> list[str]:
    """The statuses the question asks to list: snow, clear dates, or every reason not to use one."""
    if _SNOW.search(folded):
        return ["snow"]
    if _CLEAR.search(folded) and not _NOT.search(folded):
        return ["usable"]
    return ["cloud", "snow", "suspect", "nodata", "too_small"]


_WHICH_PARCELS = re.compile(r"\b(?:which|what)\s+(?:\w+\s+)?(?:parcels|fields|plots)\b|\bquelles\s+(?:\w+\s+)?(?:parcelles|champs)\b")


_TRUST = re.compile(r"\b(?:trust\w*|reliab\w*|unreliab\w*|fiables?|too\s+small|trop\s+petite?s?)\b")


def _parcels_by_status(out: Composition, lang: str, parcels, ctx: AnswerContext, label: str, order: list[str]) -> None:
    """Which parcels were snowy / cloudy ...: each with its dates of that status."""
    listed = 0
    for st in order:
        hits = {pid: [d for d in items if K.status(d, ctx.suspects) == st] for pid, items in parcels.items()}
        hits = {pid: ds for pid, ds in hits.items() if ds}
        if not hits:
            continue
        listed += 1
        out.add(say(lang, "listing", what=say(lang, st), dates=K.semicolon(lang).join(
            f"{pid} ({', '.join(d.metadata['date'] for d in ds[:6])}{' …' if len(ds) > 6 else ''})" for pid, ds in hits.items())))
        for ds in hits.values():
            K.cite_all(out, ds[:6], ())
    if not listed:
        out.add(say(lang, "none_asked", what=_word(lang, order), who=say(lang, "all_parcels", n=len(parcels)), label=label))
        out.counts.append(len(parcels))
        _old_rule(out, lang, order, [d for items in parcels.values() for d in items])


def _parcels(out: Composition, lang: str, parcels, ctx: AnswerContext, label: str) -> None:
    """Which parcels: those too small for a reliable value, then each one's usable share, lowest first."""
    small = [pid for pid, items in parcels.items() if any(K.status(d, ctx.suspects) == "too_small" for d in items)]
    if small:
        out.derived += [str(MIN_RELIABLE_PIXELS), "10"]
        out.add(say(lang, "small_parcels", min=MIN_RELIABLE_PIXELS, pids=", ".join(
            f"{pid} ({parcels[pid][0].metadata['n_pixels']} px)" for pid in small)))
        out.counts += [parcels[pid][0].metadata["n_pixels"] for pid in small]
        K.cite_all(out, [parcels[pid][-1] for pid in small], ())
    rest = [(pid, sum(K.usable(d, ctx.suspects) for d in items), len(items)) for pid, items in parcels.items()
            if pid not in small]
    rest.sort(key=lambda r: (r[1] / r[2], r[0]))
    out.add(say(lang, "usable_share", label=label, items=", ".join(say(lang, "share", date=p, p=u, n=n) for p, u, n in rest)))
    out.counts += [x for _, u, n in rest for x in (u, n)]


def _old_rule(out: Composition, lang: str, order: list[str], docs) -> None:
    """Records indexed before snow was told apart from cloud: say so when snow is asked."""
    if order == ["snow"] and not any((d.metadata.get("quality_rule") or 0) >= 2 for d in docs):
        out.add(say(lang, "old_rule"))


def _extreme_cloud(out: Composition, lang: str, docs, what: str, label: str, folded: str) -> None:
    """The cloudiest (or clearest) acquisition date by its parcels' mean cloud cover, said first;
    dates tied at the percentage written are all named."""
    cloudiest = bool(_CLOUDIEST.search(folded))
    per_date: dict[str, list[float]] = {}
    for d in docs:
        cloud = d.metadata.get("cloud_fraction")
        if cloud is not None and cloud == cloud:
            per_date.setdefault(d.metadata["date"], []).append(float(cloud))
    if not per_date:
        return
    means = {date: sum(v) / len(v) for date, v in per_date.items()}
    best = (max if cloudiest else min)(means.values())
    p = K.pct(best)
    tied = sorted(date for date, m in means.items() if K.pct(m) == p)
    key = "cloudiest" if cloudiest else "clearest"
    one = len({d.metadata["parcel_id"] for d in docs}) == 1
    if len(tied) == 1:
        sentence = say(lang, key + ("_one" if one else ""), what=what, label=label, date=tied[0], p=p,
                       n=len(per_date[tied[0]]))
        out.counts.append(len(per_date[tied[0]]))
    else:
        sentence = say(lang, key + ("_tied_one" if one else "_tied"), what=what, label=label, k=len(tied), p=p,
                       dates=", ".join(tied[:MAX_DATES]) + (" …" if len(tied) > MAX_DATES else ""))
        out.counts.append(len(tied))
    out.sentences.insert(0, sentence)
    K.cite_all(out, [d for d in docs if d.metadata["date"] in set(tied[:MAX_DATES])], ())


def _end_asked(folded: str) -> str | None:
    """"latest" or "earliest" when the question asks for the last or first date of a status."""
    return "latest" if _LATEST.search(folded) else "earliest" if _EARLIEST.search(folded) else None


def _end_statuses(folded: str, order: list[str]) -> list[str]:
    """The statuses a first or last date is looked for in: the order's, or cloud alone when the
    question says cloud ("the last cloudy image")."""
    return ["cloud"] if len(order) > 1 and re.search(r"\b(?:cloud\w*|nuag\w*)", folded) else order


def _adjective(lang: str, order: list[str]) -> str:
    return say(lang, {"usable": "adj_usable", "snow": "adj_snow", "cloud": "adj_cloud"}.get(order[0], "adj_other")
               if len(order) == 1 else "adj_other")


def _word(lang: str, order: list[str]) -> str:
    key = {"snow": "snow_word", "usable": "usable_word"}.get(order[0], "unusable_word") if len(order) == 1 else "unusable_word"
    return say(lang, key)


def compose(turn: Turn, ctx: AnswerContext) -> Composition:
    out = Composition()
    lang, plan = turn.lang, turn.plan
    if plan is None or checks.preamble(turn, ctx, out):
        return out
    docs = list(turn.found.records)
    label = plan.window.label if plan.window else say(lang, "the_archive")
    folded = K.fold_text(turn.question)
    order = _order(folded)
    if not docs:
        out.add(say(lang, "none_of", what="", label=label))
        return out
    parcels = K.by_parcel(docs)
    one_date = len({d.metadata["date"] for d in docs}) == 1
    if len(parcels) > 1 and _WHICH_PARCELS.search(folded) and (_TRUST.search(folded) or not one_date):
        if _TRUST.search(folded) or order[0] == "usable":
            _parcels(out, lang, parcels, ctx, label)
        else:
            _parcels_by_status(out, lang, parcels, ctx, label, order)
        return out
    if len(parcels) == 1:
        [(pid, items)] = parcels.items()
        by_status: dict[str, list] = {}
        for d in items:
            by_status.setdefault(K.status(d, ctx.suspects), []).append(d)
        u = len(by_status.get("usable", []))
        if by_status.get("too_small"):
            # "Is the data for parcel 17 reliable?": its size decides before any date's cloud.
            checks.too_small(out, lang, by_status["too_small"][-1])
        out.add(say(lang, "parcel", pid=pid, label=label, u=u, n=len(items)))
        out.counts += [u, len(items)]
        if _CLOUDIEST.search(folded) or _CLEAREST.search(folded):
            _extreme_cloud(out, lang, items, pid, label, folded)
        if not any(by_status.get(st) for st in order):
            out.sentences.insert(0, say(lang, "none_asked", what=_word(lang, order), who=pid, label=label))
            _old_rule(out, lang, order, items)
        elif (end := _end_asked(folded)) is not None:
            statuses = _end_statuses(folded, order)
            asked = [d for d in items if K.status(d, ctx.suspects) in statuses]
            if asked:
                pick = asked[-1] if end == "latest" else asked[0]
                out.sentences.insert(0, say(lang, "end_one", which=say(lang, end), what=_adjective(lang, statuses),
                                            pid=pid, label=label, date=pick.metadata["date"]))
                out.cite(pick, ())
        for st in order:
            found = by_status.get(st)
            if not found:
                continue
            out.add(say(lang, "listing", what=say(lang, "clear" if st == "usable" else st), dates=", ".join(
                f"{d.metadata['date']}" + ("" if st in ("usable", "suspect", "too_small") else
                                           say(lang, "pct_clear", p=K.pct(d.metadata.get('valid_fraction'))))
                for d in found[:MAX_DATES])))
            K.cite_all(out, found[:MAX_DATES], ())
        return out
    dates = sorted({d.metadata["date"] for d in docs})
    if len(dates) == 1:
        date = dates[0]
        by_status = {}
        for d in docs:
            by_status.setdefault(K.status(d, ctx.suspects), []).append(d.metadata["parcel_id"])
        u = len(by_status.get("usable", []))
        out.add(say(lang, "date", date=date, u=u, n=len(docs)))
        out.counts += [u, len(docs)]
        for st in order:
            if by_status.get(st):
                out.add(say(lang, "date_list", what=say(lang, "clear" if st == "usable" else st),
                            pids=", ".join(by_status[st])))
        K.cite_all(out, docs, ())
        return out
    per_date: dict[str, Counter] = {}
    for d in docs:
        per_date.setdefault(d.metadata["date"], Counter())[K.status(d, ctx.suspects)] += 1
    verdict = {}
    for date, counts in per_date.items():
        n = sum(counts.values())
        usable = counts.get("usable", 0)
        verdict[date] = "usable" if usable * 2 > n else max(
            (s for s in counts if s != "usable"), key=lambda s: (counts[s], s))
    clear = [d for d in dates if verdict[d] == "usable"]
    crops = [v for vals in plan.places.attributes.values() for v in vals]
    what = (say(lang, "crop", n=len(parcels), crop=" / ".join(K.crop_name(c, lang) for c in crops)) if crops
            else say(lang, "all_parcels", n=len(parcels)))
    out.add(say(lang, "area", what=what, label=label, u=len(clear), n=len(dates)))
    out.counts += [len(clear), len(dates), len(parcels)]
    if _CLOUDIEST.search(folded) or _CLEAREST.search(folded):
        _extreme_cloud(out, lang, docs, what, label, folded)
    if not any(verdict[d] in order for d in dates):
        out.sentences.insert(0, say(lang, "none_asked", what=_word(lang, order), who=what, label=label))
        _old_rule(out, lang, order, docs)
    elif (end := _end_asked(folded)) is not None:
        statuses = _end_statuses(folded, order)
        asked = [d for d in dates if verdict[d] in statuses]
        if asked:
            pick = asked[-1] if end == "latest" else asked[0]
            p, n = sum(per_date[pick][st] for st in statuses), sum(per_date[pick].values())
            out.sentences.insert(0, say(lang, "end_area", which=say(lang, end), what=_adjective(lang, statuses),
                                        who=what, label=label, date=pick, p=p, n=n))
            out.counts += [p, n]
            K.cite_all(out, [d for d in docs if d.metadata["date"] == pick], ())
    for st in order:
        listed = [d for d in dates if verdict[d] == st]
        if not listed:
            continue
        n_all = {d: sum(per_date[d].values()) for d in listed}
        out.add(say(lang, "listing", what=say(lang, "clear" if st == "usable" else st), dates=", ".join(
            say(lang, "share", date=d, p=per_date[d][st], n=n_all[d]) for d in listed[:MAX_DATES])))
        out.counts += [per_date[d][st] for d in listed] + list(n_all.values())
        # The counts rest on these records: cite them (their status, no index value).
        shown = set(listed[:MAX_DATES])
        K.cite_all(out, [d for d in docs if d.metadata["date"] in shown], ())
    return out
