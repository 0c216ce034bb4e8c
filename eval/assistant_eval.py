"""Evaluate `xvision ask` answers against ground truth computed from the rasters with plain numpy.

    .venv/bin/python eval/assistant_eval.py [--model DIR] [--work DIR] [--json]

Two stores are built (indexed with the project's default encoder into `--work`, reused when
present): the real two-season sample worldcereal-flanders (``data/worldcereal-flanders`` in the
repository when present, else ``../shared/data/worldcereal-flanders``) and the generated farm of
`eval/farm.py` (a drought season, a late sowing, a hazy acquisition, a cloudy one).

The expected answers do not come from the project: for every parcel and date this script reads
B04, B08 and SCL with rasterio, masks the parcel (pixel centres inside the polygon, as rasterio's
`geometry_mask` gives them), drops no-data pixels and SCL cloud/shadow/saturated classes
(1, 3, 8, 9, 10), and takes the mean NDVI of the rest with numpy; a date is usable for a parcel
when at least 30 % of its pixels remain. Suspect dates follow the rule the assistant documents
(`assistant/suspect.py`), re-implemented here on these numpy values. The questions are written
from templates (English and French, dates in ISO, "20 June 2019", "June 20, 2019" or
"20/06/2019" form) over parcels and dates drawn with a fixed seed.

A question scores on each check that applies to it:
* cites: the expected (parcel, date) pairs are among the answer's citations (rank: the cited
  parcels are exactly the expected set, or the answer says that no parcel meets the condition
  when none does);
* values: every expected NDVI value appears, within 0.01, in a sentence of the answer that names
  its date;
* direction: the signed difference stated beside the two dates has the sign of the true change;
* status: unusable dates are said to be unusable, suspect ones suspect (and never given a vigor).
A question is right when all its checks pass. The script prints every question with its verdict,
then the share of right answers per check and overall, per store.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from rasterio.features import geometry_mask

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eval import farm  # noqa: E402

SCL_MASKED = (1, 3, 8, 9, 10)
MIN_VALID = 0.3
MONTHS_EN = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
             "November", "December"]
MONTHS_FR = ["janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
             "novembre", "décembre"]


def flanders_dir() -> Path:
    local = ROOT / "data" / "worldcereal-flanders"
    return local if local.is_dir() else ROOT.parent / "shared" / "data" / "worldcereal-flanders"


# -- ground truth (rasterio + numpy only) ---------------------------------------------------------
@dataclass
class Truth:
    """Per (parcel, date): mean NDVI over valid pixels (None when unusable) and the valid share."""

    ndvi: dict[tuple[str, str], float | None]
    valid: dict[tuple[str, str], float]
    parcels: list[str]
    dates: list[str]
    suspects: set[str] = field(default_factory=set)

    def usable(self, p: str, d: str) -> bool:
        return self.ndvi.get((p, d)) is not None and d not in self.suspects

    def usable_dates(self, p: str, start: str = "0000", end: str = "9999") -> list[str]:
        return [d for d in self.dates if start <= d <= end and self.usable(p, d)]


def _date_of(path: Path, tags: dict) -> str:
    for key in ("ACQUISITION_DATE", "ACQUISITION_DATETIME"):
        if key in tags:
            return tags[key][:10]
    return re.search(r"(\d{4}-\d{2}-\d{2})", path.name).group(1)


def truth_from_rasters(rasters: list[Path], parcels_file: Path, id_column: str = "parcel_id") -> Truth:
    parcels = gpd.read_file(parcels_file)
    ndvi, valid, dates = {}, {}, []
    masks = None
    for path in sorted(rasters):
        with rasterio.open(path) as src:
            tags = src.tags()
            date = _date_of(path, tags)
            names = list(src.descriptions)
            offset = float(tags.get("BOA_ADD_OFFSET", 0) or 0)
            data = src.read().astype(np.float64)
            if masks is None:
                geoms = parcels.to_crs(src.crs)
                masks = {str(pid): geometry_mask([g], out_shape=(src.height, src.width), transform=src.transform, invert=True)
                         for pid, g in zip(geoms[id_column], geoms.geometry)}
        band = {n: data[i] for i, n in enumerate(names)}
        observed = np.all(data[[i for i, n in enumerate(names) if n != "SCL"]] != 0, axis=0)
        clear = ~np.isin(band["SCL"], SCL_MASKED) if "SCL" in band else np.ones_like(observed)
        red, nir = (band["B04"] + offset) / 10000, (band["B08"] + offset) / 10000
        pixel_ndvi = (nir - red) / (nir + red)
        dates.append(date)
        for pid, inside in masks.items():
            ok = inside & observed & clear
            share = ok.sum() / inside.sum()
            valid[(pid, date)] = float(share)
            ndvi[(pid, date)] = float(pixel_ndvi[ok].mean()) if share >= MIN_VALID and ok.any() else None
    truth = Truth(ndvi, valid, sorted(masks), sorted(dates))
    truth.suspects = suspects_numpy(truth)
    return truth


def suspects_numpy(truth: Truth, threshold: float = 0.15, max_gap: int = 30, min_parcels: int = 3) -> set[str]:
    """The documented suspect rule on the numpy values."""
    table = np.array([[np.nan if truth.ndvi[(p, d)] is None else truth.ndvi[(p, d)] for p in truth.parcels]
                      for d in truth.dates])
    keep = ~np.all(np.isnan(table), axis=1)
    dates = [d for d, k in zip(truth.dates, keep) if k]
    table = table[keep]
    out = set()
    day = [dt.date.fromisoformat(d) for d in dates]
    for i in range(1, len(dates) - 1):
        if (day[i] - day[i - 1]).days > max_gap or (day[i + 1] - day[i]).days > max_gap:
            continue
        both = ~np.isnan(table[i - 1]) & ~np.isnan(table[i]) & ~np.isnan(table[i + 1])
        if both.sum() < min_parcels:
            continue
        a = np.median(table[i, both] - table[i - 1, both])
        b = np.median(table[i, both] - table[i + 1, both])
        if (a <= -threshold and b <= -threshold) or (a >= threshold and b >= threshold):
            out.add(dates[i])
    return out


# -- questions ------------------------------------------------------------------------------------
@dataclass
class Question:
    text: str
    kind: str
    cites: list[tuple[str, str]] = field(default_factory=list)
    values: list[tuple[str, float]] = field(default_factory=list)  # (date, NDVI)
    direction: int | None = None  # sign of the true change
    dates_pair: tuple[str, str] | None = None
    rank_parcels: set[str] | None = None
    status: str | None = None  # "unusable" or "suspect"
    any_of: list[tuple[str, str]] = field(default_factory=list)  # at least one of these cited


#: Phrasings of a describe question ({p}: the parcel as a user types it, {d}: the date in some format).
DESCRIBE_TEMPLATES = (
    "How is parcel {p} doing on {d}?",
    "What did field {p} look like on {d}?",
    "NDVI of parcel {p} on {d}",
    "Quel était l'état de la parcelle {p} le {d} ?",
    "Comment va le champ {p} le {d} ?",
)


def date_formats(d: str) -> list[str]:
    """The same date written the ways people write it: ISO, '20 June 2019', 'June 20, 2019', '20/06/2019'."""
    day = dt.date.fromisoformat(d)
    return [d, f"{day.day} {MONTHS_EN[day.month - 1]} {day.year}", f"{MONTHS_EN[day.month - 1]} {day.day}, {day.year}",
            day.strftime("%d/%m/%Y")]


def _month_label(d: str, lang: str = "en") -> str:
    y, m = int(d[:4]), int(d[5:7])
    return f"{(MONTHS_EN if lang == 'en' else MONTHS_FR)[m - 1]} {y}"


def _month_bounds(d: str) -> tuple[str, str]:
    y, m = int(d[:4]), int(d[5:7])
    end = (dt.date(y + (m == 12), m % 12 + 1, 1) - dt.timedelta(days=1)).isoformat()
    return f"{d[:7]}-01", end


def _doy(d: str) -> int:
    return dt.date.fromisoformat(d).timetuple().tm_yday


def _near_doy(dates: list[str], target: str) -> str:
    def dist(d):
        x = abs(_doy(d) - _doy(target))
        return (min(x, 365 - x), d)
    return min(dates, key=dist)


def questions_for(truth: Truth, short_id, seed: int = 0, n: int = 6) -> list[Question]:
    """Questions over `truth` (`short_id` turns a stored id into the words a user would type)."""
    rng = random.Random(seed)
    qs: list[Question] = []
    usable = [(p, d) for p in truth.parcels for d in truth.dates if truth.usable(p, d)]
    for p, d in rng.sample(usable, min(n, len(usable))):
        text = rng.choice(DESCRIBE_TEMPLATES).format(p=short_id(p), d=rng.choice(date_formats(d)))
        qs.append(Question(text, "describe", [(p, d)], [(d, truth.ndvi[(p, d)])]))
    # A month: the latest usable date in it.
    for p, d in rng.sample(usable, min(n // 2, len(usable))):
        start, end = _month_bounds(d)
        best = truth.usable_dates(p, start, end)[-1]
        lang = rng.choice(["en", "fr"])
        text = (f"How was parcel {short_id(p)} in {_month_label(d)}?" if lang == "en"
                else f"Comment allait la parcelle {short_id(p)} en {_month_label(d, 'fr')} ?")
        qs.append(Question(text, "describe-month", [(p, best)], [(best, truth.ndvi[(p, best)])]))
    # Unusable dates.
    unusable = [(p, d) for p in truth.parcels for d in truth.dates
                if truth.ndvi[(p, d)] is None and truth.valid[(p, d)] < MIN_VALID and truth.usable_dates(p)]
    for p, d in rng.sample(unusable, min(n // 2, len(unusable))):
        near = sorted(truth.usable_dates(p), key=lambda x: abs((dt.date.fromisoformat(x) - dt.date.fromisoformat(d)).days))[:3]
        qs.append(Question(f"How was parcel {short_id(p)} on {d}?", "unusable", [(p, d)], status="unusable",
                           any_of=[(p, x) for x in near]))
    # Suspect dates.
    for d in sorted(truth.suspects):
        ps = [p for p in truth.parcels if truth.ndvi[(p, d)] is not None]
        if ps:
            p = rng.choice(ps)
            qs.append(Question(f"How was parcel {short_id(p)} on {d}?", "suspect", [(p, d)], status="suspect"))
    # Same month one year earlier.
    pairs = []
    for p in truth.parcels:
        for d in truth.usable_dates(p):
            start, end = _month_bounds(d)
            if truth.usable_dates(p, start, end)[-1] != d:
                continue
            y = int(d[:4]) - 1
            past = truth.usable_dates(p, f"{y}{start[4:]}", f"{y}{end[4:]}")
            if past:
                pairs.append((p, d, _near_doy(past, d)))
    for p, d, b in rng.sample(pairs, min(n, len(pairs))):
        delta = round(truth.ndvi[(p, d)], 2) - round(truth.ndvi[(p, b)], 2)
        lang = rng.choice(["en", "fr"])
        y0 = int(d[:4]) - 1
        text = (f"How did parcel {short_id(p)} do in {_month_label(d)} compared with {_month_label(f'{y0}{d[4:]}')}?"
                if lang == "en" else
                f"Comment allait la parcelle {short_id(p)} en {_month_label(d, 'fr')} par rapport à {_month_label(f'{y0}{d[4:]}', 'fr')} ?")
        qs.append(Question(text, "compare", [(p, d), (p, b)], [(d, truth.ndvi[(p, d)]), (b, truth.ndvi[(p, b)])],
                           direction=int(np.sign(round(delta, 2))), dates_pair=(d, b)))
    # Trend over a year.
    years = sorted({d[:4] for d in truth.dates})
    for p in rng.sample(truth.parcels, min(n // 2, len(truth.parcels))):
        y = rng.choice(years)
        good = truth.usable_dates(p, f"{y}-01-01", f"{y}-12-31")
        if len(good) < 2:
            continue
        a, b = good[0], good[-1]
        delta = round(truth.ndvi[(p, b)], 2) - round(truth.ndvi[(p, a)], 2)
        qs.append(Question(f"NDVI history of parcel {short_id(p)} in {y}", "history", [(p, a), (p, b)],
                           [(a, truth.ndvi[(p, a)]), (b, truth.ndvi[(p, b)])], direction=int(np.sign(round(delta, 2))),
                           dates_pair=(b, a)))
    # Threshold over a month: every parcel with a usable record below it.
    months = sorted({d[:7] for d in truth.dates})
    for m in rng.sample(months, min(n // 2, len(months))):
        start, end = _month_bounds(f"{m}-01")
        t = rng.choice([0.3, 0.5, 0.7])
        expected = {p for p in truth.parcels for d in truth.usable_dates(p, start, end) if truth.ndvi[(p, d)] < t}
        if not any(truth.usable_dates(p, start, end) for p in truth.parcels):
            continue
        qs.append(Question(f"Which parcels had NDVI below {t} in {_month_label(f'{m}-01')}?", "rank", rank_parcels=expected))
    return qs


def farm_questions(truth: Truth) -> list[Question]:
    """The farm's known events, asked about directly."""
    qs = []
    for p in ("farm-01", "farm-05"):
        a, b = "2022-07-19", "2021-07-19"
        delta = round(truth.ndvi[(p, a)], 2) - round(truth.ndvi[(p, b)], 2)
        qs.append(Question(f"How did parcel {p} do in July 2022 compared with July 2021?", "drought", [(p, a), (p, b)],
                           [(a, truth.ndvi[(p, a)]), (b, truth.ndvi[(p, b)])], int(np.sign(delta)), (a, b)))
    a, b = "2023-05-30", "2022-05-30"
    delta = round(truth.ndvi[("farm-02", a)], 2) - round(truth.ndvi[("farm-02", b)], 2)
    qs.append(Question("Comment allait la parcelle farm-02 en mai 2023 par rapport à mai 2022 ?", "late-sowing",
                       [("farm-02", a), ("farm-02", b)], [(a, truth.ndvi[("farm-02", a)]), (b, truth.ndvi[("farm-02", b)])],
                       int(np.sign(delta)), (a, b)))
    qs.append(Question(f"How was parcel farm-04 on {farm.HAZY_DATE}?", "haze", [("farm-04", farm.HAZY_DATE)], status="suspect"))
    qs.append(Question(f"How was parcel farm-02 on {farm.CLOUDY_DATE}?", "cloud", [("farm-02", farm.CLOUDY_DATE)],
                       status="unusable"))
    summer = {p for p in truth.parcels for d in truth.usable_dates(p, "2022-07-01", "2022-07-31") if truth.ndvi[(p, d)] < 0.3}
    qs.append(Question("Which parcels had NDVI below 0.3 in July 2022?", "drought-rank", rank_parcels=summer))
    return qs


# -- scoring --------------------------------------------------------------------------------------
_NUM = re.compile(r"(?<![\w.-])([+-]?\d+\.\d+)")


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.;])\s+", text) if s]


def score(q: Question, result: dict) -> dict[str, bool]:
    answer = result["answer"]
    cited = {(c["parcel_id"], c["date"]) for c in result["citations"]}
    out: dict[str, bool] = {}
    if q.rank_parcels is not None and not q.rank_parcels:
        out["cites"] = "no parcel meets" in answer.lower() or "aucune parcelle ne remplit" in answer.lower()
    elif q.rank_parcels is not None:
        out["cites"] = {p for p, _ in cited} == q.rank_parcels
    elif q.cites:
        out["cites"] = set(q.cites) <= cited and (not q.any_of or bool(set(q.any_of) & cited))
    if q.values:
        ok = True
        for date, value in q.values:
            near = [float(x) for s in _sentences(answer) if date in s for x in _NUM.findall(s.replace(date, " "))]
            ok &= any(abs(x - value) <= 0.01 for x in near)
        out["values"] = ok
    if q.direction is not None:
        a, b = q.dates_pair
        signed = [x for s in _sentences(answer) if a in s and b in s for x in re.findall(r"(?<![\w.])([+-]\d+\.\d+)", s)]
        out["direction"] = bool(signed) and int(np.sign(float(signed[0]))) == q.direction
    if q.status == "unusable":
        low = answer.lower()
        out["status"] = ("no usable observation" in low or "aucune observation exploitable" in low) and "vigor" not in low
    elif q.status == "suspect":
        low = answer.lower()
        out["status"] = "suspect" in low and "vigor" not in low
    return out


def build_store(name: str, rasters_dir: Path, parcels: Path, work: Path) -> Path:
    from indexer.pipeline import IndexConfig, index
    from xvision_model.encoders import DEFAULT_ENCODER, build_encoder

    store = work / f"{name}-store"
    if not (store / "manifest.json").is_file():
        index(IndexConfig(store=store, inputs=(str(rasters_dir),), parcels=parcels, progress=False),
              build_encoder(DEFAULT_ENCODER))
    return store


def run(work: Path, model: Path | None) -> dict:
    from assistant.api import Assistant

    stores = {}
    fl = flanders_dir()
    fl_parcels = fl / "parcels_Flanders31UES.gpkg"
    stores["worldcereal-flanders"] = (build_store("flanders", fl, fl_parcels, work),
                                      truth_from_rasters(sorted(fl.glob("*.tif")), fl_parcels),
                                      lambda p: p.rsplit("-", 1)[-1])
    farm_dir = work / "farm"
    if not (farm_dir / "parcels.geojson").is_file():
        farm.write_farm(farm_dir)
    stores["generated-farm"] = (build_store("farm", farm_dir, farm_dir / "parcels.geojson", work),
                                truth_from_rasters(sorted(farm_dir.glob("*.tif")), farm_dir / "parcels.geojson"),
                                lambda p: p)
    report = {}
    for name, (store, truth, short) in stores.items():
        qs = questions_for(truth, short, seed=1)
        if name == "generated-farm":
            qs += farm_questions(truth)
        assistant = Assistant.open(store, model)
        rows = []
        for q in qs:
            started = time.perf_counter()
            result = assistant.ask(q.text)
            checks = score(q, result)
            rows.append({"question": q.text, "kind": q.kind, "checks": checks, "right": all(checks.values()),
                         "seconds": round(time.perf_counter() - started, 3),
                         "analysis_source": result["plan"].get("analysis_source"), "answer": result["answer"]})
        shares = {}
        for check in ("cites", "values", "direction", "status"):
            applicable = [r["checks"][check] for r in rows if check in r["checks"]]
            if applicable:
                shares[check] = {"right": sum(applicable), "of": len(applicable), "share": sum(applicable) / len(applicable)}
        shares["overall"] = {"right": sum(r["right"] for r in rows), "of": len(rows),
                             "share": sum(r["right"] for r in rows) / len(rows)}
        report[name] = {"store": str(store), "suspect_dates_numpy": sorted(truth.suspects), "scores": shares,
                        "model": assistant.choice.origin if assistant.choice else "none", "questions": rows}
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Score xvision ask answers against numpy ground truth on two stores.")
    parser.add_argument("--model", type=Path, help="generator model folder (default: none, answers from stored analyses)")
    parser.add_argument("--work", type=Path, help="folder for the stores and the generated farm (default: a temp folder)")
    parser.add_argument("--json", action="store_true", help="print the full report as JSON")
    parser.add_argument("--show-answers", action="store_true", help="print each answer under its question")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="xvision-eval-"))
    work.mkdir(parents=True, exist_ok=True)
    report = run(work, args.model)
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return 0
    for name, part in report.items():
        print(f"\n== {name} ({part['store']}; generator: {part['model']}; numpy suspect dates: "
              f"{', '.join(part['suspect_dates_numpy']) or 'none'})")
        for r in part["questions"]:
            marks = " ".join(f"{k}={'ok' if v else 'WRONG'}" for k, v in r["checks"].items())
            print(f"  [{'right' if r['right'] else 'WRONG'}] ({r['kind']}) {r['question']}  -> {marks}")
            if args.show_answers or not r["right"]:
                print(f"      {r['answer'][:600]}")
        for check, s in part["scores"].items():
            print(f"  {check:<9} {s['right']}/{s['of']} = {s['share']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
