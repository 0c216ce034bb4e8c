"""A parcel against its past seasons.

Retrieval: the parcel's whole series (every season the store holds).
Composition, by the library's rule (`indexer.seasons`): a single day asked is
paired by closest day of year (`compare_past_seasons`: the same calendar day in the past season,
the usable observation nearest to it within 15 days); a window with several is compared by
same-window means (`compare_windows`), however many usable observations it holds. Each past season asked gets a signed delta, now minus then,
and "stable" when it is within the index's measured noise; the answer says which pairing it used.
"""

from __future__ import annotations

import statistics

from assistant.answers import checks
from assistant.answers import common as K
from assistant.answers.observe import parcels_asked
from assistant.answers.turn import AnswerContext, Found, Turn
from assistant.compose import Composition
from indexer.core.errors import InputError
from indexer.seasons import DOY_TOLERANCE_DAYS, compare_past_seasons, compare_windows, same_day_in

TEXTS = {
    "en": {
        "doy": ("On {date}, parcel {pid}'s {index} was {v} against {pv} on {pdate} in {past_season} (the usable "
                "observation closest in day of year): {delta}, {verdict}."),
        "means": ("Parcel {pid}'s {index} in {label} averaged {v} against {pv} in {past_label}: {delta}, {verdict}."),
        "now_only": "Parcel {pid}: {index} averaged {v} in {label} over {n} usable observations.",
        "before_archive": "The archive starts on {first}: it holds nothing of {labels}.",
        "group_means": ("Over the {n} parcels compared, mean {index} {v} in {label} against {pv} in {past_label}: "
                        "{delta}, {verdict} (each parcel's same-window mean, averaged)."),
        "group_now": "In {label}, the {n} parcels observed averaged {index} {v} (mean of each parcel's usable observations).",
        "means_detail": ("Same-window means of usable observations: {n} in {label} ({dates}) against {pn} in "
                         "{past_label} ({pdates})."),
        "stable_note": "A change within {noise} is read as stable: that is how much two clear observations a few days apart differ.",
        "missing": "No usable observation of {pid} within {tol} days of that day of year in {years}.",
        "missing_window": "No usable observation of {pid} in {labels}.",
        "none_now": "Parcel {pid} has no usable observation in {label} to compare.",
        "stable": "stable", "higher": "higher", "lower": "lower",
        "narrowed": "{label} ({a} to {b})",
        "narrowed_note": "Only those days of the year are in the archive for both years: the comparison covers them alone.",
    },
    "fr": {
        "doy": ("Le {date}, le {index} de la parcelle {pid} était de {v} contre {pv} le {pdate} en {past_season} "
                "(l'observation exploitable la plus proche dans l'année) : {delta}, {verdict}."),
        "means": ("Le {index} de la parcelle {pid} en {label} était en moyenne de {v} contre {pv} en {past_label} : "
                  "{delta}, {verdict}."),
        "now_only": "Parcelle {pid} : {index} moyen de {v} en {label} sur {n} observations exploitables.",
        "before_archive": "L'archive commence le {first} : elle ne contient rien de {labels}.",
        "group_means": ("Sur les {n} parcelles comparées, {index} moyen de {v} en {label} contre {pv} en {past_label} : "
                        "{delta}, {verdict} (moyenne des moyennes de chaque parcelle sur la même période)."),
        "group_now": "En {label}, les {n} parcelles observées avaient un {index} moyen de {v} (moyenne des observations exploitables de chacune).",
        "means_detail": ("Moyennes des observations exploitables sur la même période : {n} en {label} ({dates}) "
                         "contre {pn} en {past_label} ({pdates})."),
        "stable_note": "Un écart inférieur à {noise} est lu comme stable : c'est l'écart entre deux observations dégagées à quelques jours d'intervalle.",
        "missing": "Aucune observation exploitable de {pid} à moins de {tol} jours de ce jour de l'année en {years}.",
        "missing_window": "Aucune observation exploitable de {pid} en {labels}.",
        "none_now": "La parcelle {pid} n'a aucune observation exploitable en {label} à comparer.",
        "stable": "stable", "higher": "en hausse", "lower": "en baisse",
        "narrowed": "{label} (du {a} au {b})",
        "narrowed_note": "Seuls ces jours de l'année sont dans l'archive pour les deux années : la comparaison ne porte que sur eux.",
    },
}


def say(lang: str, key: str, **values: object) -> str:
    return TEXTS.get(lang, TEXTS["en"])[key].format(**values)


MAX_PARCELS = 8


def retrieve(turn: Turn, ctx: AnswerContext) -> Found:
    ids = parcels_asked(turn, ctx, MAX_PARCELS)
    if len(ids) > 1:
        return Found(extra=tuple(ctx.records(parcel_ids=ids)))
    if not ids:
        return Found()
    series = ctx.records(parcel_ids=ids)
    w = turn.plan.window
    now = [d for d in series if w is None or w.start.isoformat() <= d.metadata["date"] <= w.end.isoformat()]
    past = [d for d in series if any(c.start.isoformat() <= d.metadata["date"] <= c.end.isoformat()
                                     for c in turn.plan.compare_windows)]
    good = [d for d in now if K.usable(d, ctx.suspects)]
    return Found(records=tuple(now), extra=tuple(series), focus=good[0] if len(good) == 1 else None)


def window_pairs(series, plan, column: str, ctx: AnswerContext) -> list[tuple]:
    """(compared window, usable observations now, usable observations then, the library's pair when it
    narrowed the windows to the days the archive covers in both years, else None) for each window compared.

    The same window in another year is the library's same-window pairing (`indexer.seasons.
    compare_windows`: its record ids); another window ("this summer against last spring") is its
    own usable observations."""
    if plan.window is None or not series:
        return []
    now = K.good([d for d in series if plan.window.start.isoformat() <= d.metadata["date"] <= plan.window.end.isoformat()],
                 ctx.suspects, column)
    by_id = {d.metadata["record_id"]: d for d in series}
    try:
        library = compare_windows(K.frame(series, ctx.suspects), plan.window.start, plan.window.end, column)
        pairs = {p.past_season: p for p in library.pairs}
    except InputError:  # no usable observation in the window itself
        pairs = {}
    out = []
    start, end = plan.window.start, plan.window.end
    for w in plan.compare_windows:
        p = pairs.get(w.start.year)
        shift = w.start.year - start.year  # the same window, whole years earlier (winters span two)
        same = (w.start, w.end) == (same_day_in(start, start.year + shift), same_day_in(end, end.year + shift))
        if p is not None and same:
            # The library's pair, narrowed to the days of the year the archive covers in both years.
            here = [by_id[i] for i in p.record_ids] if p.narrowed else now
            out.append((w, here, [by_id[i] for i in p.past_record_ids], p if p.narrowed else None))
            continue
        past = K.good([d for d in series if w.start.isoformat() <= d.metadata["date"] <= w.end.isoformat()],
                      ctx.suspects, column)
        out.append((w, now, past, None))
    return out


def _labels(lang: str, label: str, w, narrowed) -> tuple[str, str]:
    """How the answer names the two windows: as asked, or with the narrowed days."""
    if narrowed is None:
        return label, w.label
    return (say(lang, "narrowed", label=label, a=narrowed.window[0], b=narrowed.window[1]),
            say(lang, "narrowed", label=w.label, a=narrowed.past_window[0], b=narrowed.past_window[1]))


def _verdict(lang: str, delta: int, noise: float) -> str:
    key = K.stable_words("en", delta, noise)
    return say(lang, key)


def compose(turn: Turn, ctx: AnswerContext) -> Composition:
    out = Composition()
    lang, plan = turn.lang, turn.plan
    if checks.preamble(turn, ctx, out):
        return out
    ids = parcels_asked(turn, ctx, MAX_PARCELS)
    if not ids:
        from assistant.answers import clarify
        return clarify.compose(turn, ctx)
    if len(ids) > 1:
        return _group(turn, ctx, ids)
    pid = ids[0]
    column = K.column_of(plan.index)
    index = K.label_of(column)
    series = list(turn.found.extra)
    good_now = K.good(turn.found.records, ctx.suspects, column)
    label = plan.window.label if plan.window else plan.reference_date.isoformat()
    if not good_now:
        if turn.found.records:
            checks.not_usable(out, lang, turn.found.records[-1], series, ctx.suspects, column)
        else:
            out.add(say(lang, "none_now", pid=pid, label=label))
        return out
    history = K.frame(series, ctx.suspects)
    noise = K.noise(column)
    asked_years = {w.start.year for w in plan.compare_windows}
    by_id = {d.metadata["record_id"]: d for d in series}
    any_stable = False
    single_day = plan.window is not None and plan.window.start == plan.window.end
    if single_day or (plan.window is None and len(good_now) == 1):
        now = good_now[-1]
        try:
            result = compare_past_seasons(history, now.metadata["date"], column)
        except InputError:
            result = None
        pairs = [p for p in (result.pairs if result else ()) if p.past_season in asked_years or not asked_years]
        for p in pairs:
            then = by_id[p.past_record_id]
            delta = K.hundredths(p.value) - K.hundredths(p.past_value)
            any_stable |= abs(delta) <= round(noise * 100)
            out.add(say(lang, "doy", date=p.date, pid=pid, index=index, v=K.num(p.value), verdict=_verdict(lang, delta, noise),
                        past_season=p.past_season, pv=K.num(p.past_value), pdate=p.past_date, delta=K.signed(delta)))
            out.cite(now, (column,))
            out.cite(then, (column,))
        missing = sorted(asked_years - {p.past_season for p in pairs})
        if missing:
            out.add(say(lang, "missing", pid=pid, tol=DOY_TOLERANCE_DAYS, years=", ".join(map(str, missing))))
            out.counts += [DOY_TOLERANCE_DAYS, *missing]
        out.history += K.history_rows([now, *(by_id[p.past_record_id] for p in pairs)], ctx.suspects, column)
    else:
        missing = []
        for w, now, past, narrowed in window_pairs(series, plan, column, ctx):
            if not past:
                missing.append(w.label)
                continue
            now_label, past_label = _labels(lang, label, w, narrowed)
            v = K.mean_of(out, [K.value(d, column) for d in now])
            pv = K.mean_of(out, [K.value(d, column) for d in past])
            delta = int(round(float(v) * 100)) - int(round(float(pv) * 100))
            any_stable |= abs(delta) <= round(noise * 100)
            out.add(say(lang, "means", pid=pid, index=index, label=now_label, v=v, verdict=_verdict(lang, delta, noise),
                        past_label=past_label, pv=pv, delta=K.signed(delta)))
            if narrowed is not None:
                out.add(say(lang, "narrowed_note"))
            out.add(say(lang, "means_detail", n=len(now), label=now_label,
                        dates=", ".join(d.metadata["date"] for d in now), pn=len(past), past_label=past_label,
                        pdates=", ".join(d.metadata["date"] for d in past)))
            out.counts += [len(now), len(past)]
            K.cite_all(out, [*now, *past], (column,))
            out.history += K.history_rows([*now, *past], ctx.suspects, column)
        if missing:
            first = ctx.dates()[0]
            early = [w.label for w in plan.compare_windows if w.label in missing and w.end.isoformat() < first]
            if early:
                out.add(say(lang, "before_archive", first=first, labels=", ".join(early)))
            if len(early) < len(missing):
                out.add(say(lang, "missing_window", pid=pid, labels=", ".join(m for m in missing if m not in early)))
            if len(missing) == len(plan.compare_windows):
                out.sentences.insert(0, say(lang, "now_only", pid=pid, index=index, label=label, n=len(good_now),
                                            v=K.mean_of(out, [K.value(d, column) for d in good_now])))
                out.counts.append(len(good_now))
                K.cite_all(out, good_now, (column,))
    if any_stable:
        out.add(say(lang, "stable_note", noise=K.num(noise)))
        out.derived.append(K.num(noise))
    return out


def _group(turn: Turn, ctx: AnswerContext, ids: list[str]) -> Composition:
    """Several parcels (a crop, an area) against the same windows: one line each, same-window means."""
    out = Composition()
    lang, plan = turn.lang, turn.plan
    column = K.column_of(plan.index)
    series = K.by_parcel(turn.found.extra)
    label = plan.window.label if plan.window else plan.reference_date.isoformat()
    noise = K.noise(column)
    first = ctx.dates()[0]
    early = [w for w in plan.compare_windows if w.end.isoformat() < first]
    for w in early:
        out.add(say(lang, "before_archive", first=first, labels=w.label))
    head = len(out.sentences)
    means: dict = {}
    for pid in ids:
        for w, now, past, narrowed in window_pairs(series.get(pid, []), plan, column, ctx):
            if w in early:
                continue
            if not now or not past:
                out.add(say(lang, "missing_window", pid=pid, labels=label if not now else w.label))
                continue
            now_label, past_label = _labels(lang, label, w, narrowed)
            v = K.mean_of(out, [K.value(d, column) for d in now])
            pv = K.mean_of(out, [K.value(d, column) for d in past])
            key = (w, now_label, past_label)  # parcels compared over the same days are averaged together
            means.setdefault(key, []).append((float(v), float(pv)))
            delta = int(round(float(v) * 100)) - int(round(float(pv) * 100))
            out.add(say(lang, "means", pid=pid, index=K.label_of(column), label=now_label, v=v,
                        verdict=_verdict(lang, delta, noise), past_label=past_label, pv=pv, delta=K.signed(delta)))
            K.cite_all(out, [*now, *past], (column,))
            out.history += K.history_rows([*now, *past], ctx.suspects, column)
    narrowed_any = False
    for (w, now_label, past_label), pairs in means.items():
        narrowed_any |= now_label != label
        if len(pairs) > 1:  # the answer first: the group as a whole, then each parcel
            v, pv = (K.mean_of(out, [p[i] for p in pairs]) for i in (0, 1))
            delta = int(round(float(v) * 100)) - int(round(float(pv) * 100))
            out.sentences.insert(head, say(lang, "group_means", n=len(pairs), index=K.label_of(column), label=now_label,
                                           v=v, pv=pv, past_label=past_label, delta=K.signed(delta),
                                           verdict=_verdict(lang, delta, noise)))
            out.counts.append(len(pairs))
    if narrowed_any:
        out.add(say(lang, "narrowed_note"))
    compared = any(h for h in out.history)
    if compared:
        out.add(say(lang, "stable_note", noise=K.num(noise)))
        out.derived.append(K.num(noise))
    else:  # nothing to compare with: at least the window asked
        xs = []
        for pid in ids:
            now = K.good([d for d in series.get(pid, []) if plan.window is None or plan.window.start.isoformat()
                          <= d.metadata["date"] <= plan.window.end.isoformat()], ctx.suspects, column)
            if now:
                xs.append(statistics.fmean(K.value(d, column) for d in now))
                out.derived.append(K.num(xs[-1]))
                K.cite_all(out, now, (column,))
        if xs:
            out.add(say(lang, "group_now", n=len(xs), label=label, index=K.label_of(column), v=K.mean_of(out, xs)))
            out.counts.append(len(xs))
    return out
