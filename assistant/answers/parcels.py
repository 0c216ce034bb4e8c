"""Several named parcels compared on the same dates.

Retrieval: each parcel's records in the window (without one: up to the reference date).
Composition: the dates on which every parcel has a usable observation are compared (one date: the
values side by side; several: each parcel's mean over those shared dates, and the difference);
when they share none, each parcel's own window summary, said to be on different dates.
"""

from __future__ import annotations

from assistant.answers import checks
from assistant.answers import common as K
from assistant.answers.turn import AnswerContext, Found, Turn
from assistant.compose import Composition

MAX_PARCELS = 8

TEXTS = {
    "en": {
        "one_date": "On {date}, {index}: {items}.",
        "shared": ("Over the {n} dates of {label} when all of them were clear ({dates}), mean {index}: {items}."),
        "gap": "{a} is {diff} {dir} {b}{noise}.",
        "higher": "above", "lower": "below",
        "spread": "{hi} is the highest and {lo} the lowest, {diff} apart.",
        "same": "{a} and {b} are level ({diff}){noise}.",
        "noise": ", within the noise of repeated clear observations ({noise})",
        "apart": ("They have no clear date in common in {label}; each parcel's own usable observations: {items}."),
        "apart_item": "{pid} {index} {mean} over {n} dates",
        "missing": "No usable observation of {pids} in {label}.",
        "the_window": "the window",
    },
    "fr": {
        "one_date": "Le {date}, {index} : {items}.",
        "shared": ("Sur les {n} dates de {label} où toutes étaient dégagées ({dates}), {index} moyen : {items}."),
        "gap": "{a} est {diff} {dir} {b}{noise}.",
        "higher": "au-dessus de", "lower": "en dessous de",
        "spread": "{hi} est la plus haute et {lo} la plus basse, à {diff} d'écart.",
        "same": "{a} et {b} sont au même niveau ({diff}){noise}.",
        "noise": ", dans le bruit des observations dégagées répétées ({noise})",
        "apart": ("Elles n'ont aucune date dégagée en commun en {label} ; observations exploitables de chacune : {items}."),
        "apart_item": "{pid} {index} {mean} sur {n} dates",
        "missing": "Aucune observation exploitable de {pids} en {label}.",
        "the_window": "la période",
    },
}


def say(lang: str, key: str, **values: object) -> str:
    return TEXTS.get(lang, TEXTS["en"])[key].format(**values)


def retrieve(turn: Turn, ctx: AnswerContext) -> Found:
    plan = turn.plan
    ids = list(plan.places.parcel_ids[:MAX_PARCELS])
    start, end = checks.window_bounds(turn)
    docs = ctx.records(parcel_ids=ids, date_from=start, date_to=end)
    if plan.window is None:
        # No date asked: the latest date on which all of them are usable, else each one's latest.
        column = K.column_of(plan.index)
        per = {pid: {d.metadata["date"]: d for d in K.good(items, ctx.suspects, column)}
               for pid, items in K.by_parcel(docs).items()}
        shared = sorted(set.intersection(*(set(v) for v in per.values()))) if len(per) == len(ids) else []
        if shared:
            docs = [per[pid][shared[-1]] for pid in ids]
        else:
            docs = [items[-1] for items in per.values() if items for items in [list(items.values())]]
    return Found(records=tuple(docs))


def compose(turn: Turn, ctx: AnswerContext) -> Composition:
    out = Composition()
    lang, plan = turn.lang, turn.plan
    if checks.preamble(turn, ctx, out):
        return out
    column = K.column_of(plan.index)
    ids = list(plan.places.parcel_ids[:MAX_PARCELS])
    label = plan.window.label if plan.window else say(lang, "the_window")
    per = {pid: {d.metadata["date"]: d for d in K.good(items, ctx.suspects, column)}
           for pid, items in K.by_parcel(turn.found.records).items()}
    missing = [p for p in ids if not per.get(p)]
    if missing:
        out.add(say(lang, "missing", pids=", ".join(missing), label=label))
    present = [p for p in ids if per.get(p)]
    if len(present) < 2:
        for p in present:
            docs = list(per[p].values())
            out.add(say(lang, "apart", label=label, items=say(lang, "apart_item", pid=p, index=K.label_of(column),
                                                             mean=K.mean_of(out, [K.value(d, column) for d in docs]), n=len(docs))))
            out.counts.append(len(docs))
            K.cite_all(out, docs, (column,))
        return out
    shared = sorted(set.intersection(*(set(per[p]) for p in present)))
    index = K.label_of(column)
    noise = K.noise(column)
    if len(shared) == 1:
        date = shared[0]
        docs = [per[p][date] for p in present]
        out.add(say(lang, "one_date", date=date, index=index, items=", ".join(
            f"{p} {K.num(K.value(d, column))}" for p, d in zip(present, docs))))
        K.cite_all(out, docs, (column,))
        means = {p: K.hundredths(K.value(d, column)) for p, d in zip(present, docs)}
    elif shared:
        means = {}
        items = []
        for p in present:
            xs = [K.value(per[p][d], column) for d in shared]
            text = K.mean_of(out, xs)
            means[p] = int(round(float(text) * 100))
            items.append(f"{p} {text}")
            K.cite_all(out, [per[p][d] for d in shared], (column,))
        out.add(say(lang, "shared", n=len(shared), label=label, dates=", ".join(shared), index=index,
                    items=", ".join(items)))
        out.counts.append(len(shared))
    else:
        items = []
        for p in present:
            docs = list(per[p].values())
            items.append(say(lang, "apart_item", pid=p, index=index, n=len(docs),
                             mean=K.mean_of(out, [K.value(d, column) for d in docs])))
            out.counts.append(len(docs))
            K.cite_all(out, docs, (column,))
        out.add(say(lang, "apart", label=label, items=K.semicolon(lang).join(items)))
        return out
    if len(present) > 2:
        # Several: the highest and the lowest, and how far apart.
        hi = max(present, key=lambda p: (means[p], p))
        lo = min(present, key=lambda p: (means[p], p))
        gap = means[hi] - means[lo]
        out.sentences.insert(1 if missing else 0, say(lang, "spread", hi=hi, lo=lo, diff=f"{gap / 100:.2f}"))
        out.derived.append(f"{gap / 100:.2f}")
        return out
    a, b = present[0], present[1]
    diff = means[a] - means[b]
    within = abs(diff) <= round(noise * 100)
    noise_text = say(lang, "noise", noise=K.num(noise)) if within else ""
    if within:
        out.derived.append(K.num(noise))
    # The answer first: the verdict goes before the values it rests on.
    at = 1 if missing else 0
    if diff == 0 or within:
        out.sentences.insert(at, say(lang, "same", a=a, b=b, diff=K.signed(diff), noise=noise_text))
    else:
        out.sentences.insert(at, say(lang, "gap", a=a, b=b, diff=f"{abs(diff) / 100:.2f}", dir=say(lang, "higher" if diff > 0 else "lower"),
                    noise=""))
        out.derived.append(f"{abs(diff) / 100:.2f}")
    return out
