"""A parcel on a date, in a month or a season.

Retrieval: the parcel's records in the window (without a window: up to the reference date), and
its whole series (for the nearest usable dates and the crop calendar).
Composition: one usable observation -> its values and what they mean for the crop at that point
of its calendar (with the sentences of the record's analysis about the index asked, or its vigor, moisture
and cover); several -> the window's mean and
range over all its usable observations, its peak and its low with their dates; none usable -> why
(cloud, snow, a suspect scene) and the nearest usable dates.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

from assistant.answers import checks
from assistant.answers import common as K
from assistant.answers.turn import AnswerContext, Found, Turn
from assistant.compose import Composition
from indexer.analysis import CLASS_RULES, EVALUATED_ASPECTS, read_classes, split_sentences


#: The chain may have a generator describe this kind's focus observation (one usable date).
DESCRIBES_FOCUS = True
#: "Give me a summary of parcel 5", "overview", "fais le point sur la parcelle 5": with no date
#: asked, the latest observation and then the parcel's past year (`SUMMARY_DAYS`).
SUMMARY = re.compile(r"\b(?:summary|summari[sz]e|overview|rundown|status\s+report|report\s+on|overall\s+picture|"
                     r"tell\s+me\s+(?:everything|all|more)\s+about|resume|synthese|bilan|vue\s+d'ensemble|"
                     r"fai(?:s|tes)\s+(?:le|un)\s+point|etat\s+des\s+lieux)\b")
SUMMARY_DAYS = 365

TEXTS = {
    "en": {
        "record": "Parcel {pid} on {date}: {values} ({valid} % valid pixels, {cloud} % cloud).",
        "means": "That is {stage}{crop}.",
        "crop": " for {crop}",
        "window": ("Parcel {pid} in {label}: {index} averaged {mean} over {n} usable observations, from {lo} on "
                   "{dlo} to {hi} on {dhi}."),
        "window_peak": "The peak was {hi} on {dhi}: {stage}.",
        "latest": "Latest usable observation in the window: {v} on {date}.",
        "others": "Not usable in that window: {dates}.",
        "none_in_window": "Parcel {pid} has no usable observation in {label}.",
        "analysis_generated": "Analysis (generated from the record's imagery, checked against its indices): {text}",
        "analysis_stored": "Analysis (from the record's indices): {text}",
        "past_year": "the year to {end}",
    },
    "fr": {
        "record": "Parcelle {pid} le {date} : {values} ({valid} % de pixels valides, {cloud} % de nuages).",
        "means": "Cela correspond à {stage}{crop}.",
        "crop": " pour une parcelle de {crop}",
        "window": ("Parcelle {pid} en {label} : {index} moyen de {mean} sur {n} observations exploitables, de {lo} le "
                   "{dlo} à {hi} le {dhi}."),
        "window_peak": "Le maximum était de {hi} le {dhi} : {stage}.",
        "latest": "Dernière observation exploitable de la période : {v} le {date}.",
        "others": "Inexploitables dans cette période : {dates}.",
        "none_in_window": "La parcelle {pid} n'a aucune observation exploitable en {label}.",
        "analysis_generated": "Analyse (générée à partir de l'image de l'enregistrement, vérifiée sur ses indices) : {text}",
        "analysis_stored": "Analyse (d'après les indices de l'enregistrement) : {text}",
        "past_year": "l'année jusqu'au {end}",
    },
}


def focus_aspects(index: str | None) -> set[str]:
    """The aspects an answer shows from the focus record's analysis: the class read from the index
    asked (its `CLASS_RULES` aspect), else vigor, moisture and cover (the aspects a farmer asks "how
    is it doing" about). The chain stops the generator once they are written."""
    return {r.aspect for r in CLASS_RULES if index and r.stat.startswith(f"{index}_")} or set(EVALUATED_ASPECTS)


def relevant_sentences(analysis: str, index: str | None) -> str:
    """The sentences of a record's analysis that matter for the question (`focus_aspects`), not
    every statistic the analysis holds."""
    wanted = focus_aspects(index)
    kept = [s for s in split_sentences(analysis) if wanted & set(read_classes(s))]
    return " ".join(kept)


def say(lang: str, key: str, **values: object) -> str:
    return TEXTS.get(lang, TEXTS["en"])[key].format(**values)


def subject(turn: Turn, ctx: AnswerContext) -> str | None:
    """The parcel the question is about: the first named one, else the only one of its group."""
    places = turn.plan.places
    if places.parcel_ids:
        return places.parcel_ids[0]
    if places.attributes:
        ids = [p for p, attrs in ctx.context.parcel_attributes.items()
               if all(attrs.get(c) in v for c, v in places.attributes.items())]
        if len(ids) == 1:
            return ids[0]
    return None


def parcels_asked(turn: Turn, ctx: AnswerContext, limit: int) -> list[str]:
    """The parcels named (at most `limit`), else the subject, else the parcels of the crop or area
    asked (at most `limit`)."""
    places = turn.plan.places
    if places.parcel_ids:
        return list(places.parcel_ids[:limit])
    pid = subject(turn, ctx)
    if pid is not None:
        return [pid]
    from assistant.answers.groups import members  # groups reads this module's subject

    return members(turn, ctx)[:limit]


def retrieve(turn: Turn, ctx: AnswerContext) -> Found:
    pid = subject(turn, ctx)
    if pid is None:
        return Found()
    series = ctx.records(parcel_ids=[pid])
    start, end = checks.window_bounds(turn)
    in_window = [d for d in series if (start is None or d.metadata["date"] >= start) and d.metadata["date"] <= end]
    if turn.plan.window is None:
        # No date asked: the parcel as last seen, on or before the reference date.
        good = [d for d in in_window if K.usable(d, ctx.suspects)]
        in_window = good[-1:] or in_window[-1:]
    good = [d for d in in_window if K.usable(d, ctx.suspects)]
    focus = good[0] if len(good) == 1 else (in_window[-1] if not good and in_window else None)
    return Found(records=tuple(in_window), extra=tuple(series), focus=focus)


def _crop(lang: str, doc) -> str:
    crop = K.crop_of(doc)
    return say(lang, "crop", crop=K.crop_name(crop, lang)) if crop else ""


def compose(turn: Turn, ctx: AnswerContext) -> Composition:
    out = Composition()
    lang, plan = turn.lang, turn.plan
    if checks.preamble(turn, ctx, out):
        return out
    found = turn.found
    column = K.column_of(plan.index)
    pid = subject(turn, ctx)
    if pid is None:
        from assistant.answers import clarify
        return clarify.compose(turn, ctx)
    docs = list(found.records)
    series = list(found.extra)
    if not docs:
        out.add(say(lang, "none_in_window", pid=pid, label=plan.window.label if plan.window else plan.reference_date))
        return out
    good = K.good(docs, ctx.suspects, column)
    if not good:
        checks.not_usable(out, lang, docs[-1], series, ctx.suspects, column)
        return out
    columns = (column,) if plan.index else ("ndvi_mean", "ndmi_mean")
    if len(good) == 1:
        d = good[0]
        m = d.metadata
        out.add(say(lang, "record", pid=pid, date=m["date"], values=K.values(d, columns),
                    valid=K.pct(m.get("valid_fraction")), cloud=K.pct(m.get("cloud_fraction"))))
        out.cite(d, columns)
        bare = m.get("ndvi_mean") is not None and m["ndvi_mean"] < 0.3
        if m.get("ndvi_mean") is not None:
            out.add(say(lang, "means", stage=K.stage(m["ndvi_mean"], lang, K.after_harvest(d, series, ctx.suspects, south=K.southern(ctx, series))),
                        crop=_crop(lang, d)))
            out.cite(d, ("ndvi_mean",))
        # The analysis reads indices without the crop calendar: on bare soil or stubble its
        # vigor and moisture classes would read a harvested field as a failing crop.
        if turn.analysis and not bare:
            key = "analysis_generated" if turn.analysis["source"] == "generated" else "analysis_stored"
            text = relevant_sentences(turn.analysis["text"], plan.index)
            if text:
                out.add(say(lang, key, text=text))
        if plan.window is None and SUMMARY.search(K.fold_text(turn.question)):
            _past_year(out, lang, pid, series, ctx, m["date"])
    else:
        xs = [K.value(d, column) for d in good]
        hi = max(good, key=lambda d: K.value(d, column))
        lo = min(good, key=lambda d: K.value(d, column))
        out.add(say(lang, "window", pid=pid, label=plan.window.label, index=K.label_of(column),
                    mean=K.mean_of(out, xs), n=len(good), lo=K.num(K.value(lo, column)), dlo=lo.metadata["date"],
                    hi=K.num(K.value(hi, column)), dhi=hi.metadata["date"]))
        out.counts.append(len(good))
        K.cite_all(out, good, (column,))
        if column == "ndvi_mean":
            out.add(say(lang, "window_peak", hi=K.num(K.value(hi, column)), dhi=hi.metadata["date"],
                        stage=K.stage(K.value(hi, column), lang, K.after_harvest(hi, series, ctx.suspects, south=K.southern(ctx, series)))))
        if good[-1] is not hi and good[-1] is not lo:
            out.add(say(lang, "latest", v=K.num(K.value(good[-1], column)), date=good[-1].metadata["date"]))
    bad = [d for d in docs if not K.usable(d, ctx.suspects)]
    if bad and len(docs) > 1:
        out.add(say(lang, "others", dates=", ".join(
            f"{d.metadata['date']} ({K.reason_words(K.status(d, ctx.suspects), lang)})" for d in bad[:8])
            + (f" (+{len(bad) - 8})" if len(bad) > 8 else "")))
        if len(bad) > 8:
            out.counts.append(len(bad) - 8)
        K.cite_all(out, bad[:8], ())
    return out


def _past_year(out: Composition, lang: str, pid: str, series: list, ctx: AnswerContext, last: str) -> None:
    """A summary's second part: the parcel's NDVI over the year to its latest usable
    observation, with its crop-calendar events (the calendar kind's trend)."""
    from assistant.answers import calendar  # calendar reads this module's parcels_asked

    start = (date.fromisoformat(last) - timedelta(days=SUMMARY_DAYS)).isoformat()
    calendar.trend(out, lang, pid, series, ctx, start, last, say(lang, "past_year", end=last), "ndvi_mean")
