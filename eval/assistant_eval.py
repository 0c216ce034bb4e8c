"""Score the assistant on a bank of questions people ask, against facts read from the rasters.

    .venv/bin/python eval/assistant_eval.py [--store DIR] [--model DIR] [--work DIR]
                                            [--kinds window,past,...] [--failures FILE] [--json FILE]

The bank (`eval/bank/questions.py`) holds about 160 questions over the ten kinds of issue 22 — a
parcel on a date, month or season; past seasons by day of year; crop calendar and harvest; why a
value changed; observation quality; groups (aggregates, rankings of exactly N, thresholds,
laggards); several named parcels; similar parcels; what the archive holds; questions to decline —
in English and French, short and long, with typos and the three ways people name a parcel.

Its expected facts never come from the project: `eval/bank/truth.py` reads the Flanders sample's
rasters with rasterio, rasterises the parcels and averages NDVI over the SCL-clear pixels (4
vegetation, 5 bare soil; 6 water and every other class are not clear) with numpy. The checker
(`eval/bank/check.py`) looks in each answer for those facts — the right parcels, dates, values
within 0.02 (differences within 0.03), counts, the class of answer (a cause, a cloud, a refusal) —
and for signs that it answered another question (other parcels, citations outside the window, a
refusal that cites records). Formats are read leniently ("0,72", "16 mai 2019", "5-20 July").

The store is the sample indexed with the project's default encoder into `--work` (reused when
present) unless `--store` names one; the assistant is `assistant.api.Assistant` as the product
opens it (its own model choice unless `--model` names one). The report gives the score per
kind and overall against the issue's target (>= 0.95 overall, >= 0.85 per kind) and writes every
failure with its question, facts, failed checks and answer to `--failures` (markdown).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eval.bank.check import score  # noqa: E402
from eval.bank.questions import KIND_TITLES, KINDS, Question, build_bank  # noqa: E402
from eval.bank.truth import read_facts  # noqa: E402

TARGET_OVERALL = 0.95
TARGET_KIND = 0.85


def flanders_dir() -> Path:
    """The Flanders sample: the repository's copy when present, else ../shared/data's."""
    local = ROOT / "data" / "worldcereal-flanders"
    return local if local.is_dir() else ROOT.parent / "shared" / "data" / "worldcereal-flanders"


def build_store(data: Path, work: Path) -> Path:
    """The sample indexed with the project's default encoder into `work` (reused when present)."""
    from indexer.pipeline import IndexConfig, index
    from xvision_model.encoders import DEFAULT_ENCODER, build_encoder

    store = work / "flanders-store"
    if not (store / "manifest.json").is_file():
        print(f"indexing {data} into {store} ...", flush=True)
        index(IndexConfig(store=store, inputs=(str(data),), parcels=data / "parcels_Flanders31UES.gpkg", progress=False),
              build_encoder(DEFAULT_ENCODER))
    return store


def run_bank(assistant, questions: list[Question], known: set[str]) -> list[dict]:
    """Ask every question once; each row holds the question, its checks, the answer and the time."""
    rows = []
    for q in questions:
        started = time.perf_counter()
        try:
            result = assistant.ask(q.text)
            error = None
        except Exception as exc:  # a crash is a wrong answer, reported with its type
            result, error = {"answer": "", "citations": []}, f"{type(exc).__name__}: {exc}"
        seconds = time.perf_counter() - started
        checks = score(q.expect, result, known) if error is None else {"answer": (False, error)}
        rows.append({"kind": q.kind, "lang": q.lang, "question": q.text, "facts": q.note, "seconds": round(seconds, 3),
                     "right": all(ok for ok, _ in checks.values()),
                     "failed": {name: why for name, (ok, why) in checks.items() if not ok},
                     "checks": sorted(checks), "answer": result.get("answer") or "",
                     "cited": sorted({f"{c.get('parcel_id')} {c.get('date')}" for c in result.get("citations") or []})})
    return rows


def summarise(rows: list[dict]) -> dict:
    """Right / asked per kind and overall, and the median answer time per kind."""
    out = {}
    for kind in KINDS:
        part = [r for r in rows if r["kind"] == kind]
        if part:
            right = sum(r["right"] for r in part)
            out[kind] = {"right": right, "of": len(part), "share": right / len(part),
                         "p50_s": statistics.median(r["seconds"] for r in part)}
    right = sum(r["right"] for r in rows)
    out["overall"] = {"right": right, "of": len(rows), "share": right / len(rows) if rows else 0.0,
                      "p50_s": statistics.median(r["seconds"] for r in rows) if rows else 0.0}
    return out


def failures_markdown(rows: list[dict], summary: dict, header: str) -> str:
    """Every wrong answer with its question, the facts, the failed checks and the answer."""
    lines = [f"# Assistant eval failures\n\n{header}\n", "| kind | right | of | share |", "|---|---|---|---|"]
    lines += [f"| {k} | {s['right']} | {s['of']} | {s['share']:.3f} |" for k, s in summary.items()]
    for kind in KINDS:
        wrong = [r for r in rows if r["kind"] == kind and not r["right"]]
        if not wrong:
            continue
        lines.append(f"\n## {kind}: {KIND_TITLES[kind]} ({len(wrong)} wrong)\n")
        for r in wrong:
            lines.append(f"### {r['question']}")
            if r["facts"]:
                lines.append(f"- facts: {r['facts']}")
            lines += [f"- failed `{name}`: {why}" for name, why in r["failed"].items()]
            lines.append(f"- cited: {', '.join(r['cited'][:8]) or 'nothing'}{' ...' if len(r['cited']) > 8 else ''}")
            answer = r["answer"].strip().replace("\n", "\n  > ")
            lines.append(f"- answer:\n  > {answer or '(empty)'}\n")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser(description="Score the assistant on the question bank, per kind.")
    parser.add_argument("--store", type=Path, help="a store of the Flanders sample (default: indexed into --work)")
    parser.add_argument("--data", type=Path, default=None, help="the worldcereal-flanders folder (default: data/ or "
                        "../shared/data/)")
    parser.add_argument("--model", type=Path, help="generator folder (default: the one the assistant chooses)")
    parser.add_argument("--work", type=Path, help="where the default store is built (default: a temp folder)")
    parser.add_argument("--kinds", help="comma-separated kinds to ask (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="the bank's seed (default 0)")
    parser.add_argument("--failures", type=Path, help="write the failures (markdown) here")
    parser.add_argument("--json", type=Path, help="write every row and the summary as JSON here")
    parser.add_argument("--show-answers", action="store_true", help="print every answer, not only the wrong ones")
    args = parser.parse_args(argv)

    data = args.data or flanders_dir()
    if not (data / "parcels_Flanders31UES.gpkg").is_file():
        parser.error(f"no Flanders sample at {data} (parcels_Flanders31UES.gpkg missing); pass --data")
    started = time.perf_counter()
    facts = read_facts(data)
    questions = build_bank(facts, args.seed)
    if args.kinds:
        wanted = {k.strip() for k in args.kinds.split(",")}
        unknown = wanted - set(KINDS)
        if unknown:
            parser.error(f"--kinds: unknown {sorted(unknown)}; kinds are {', '.join(KINDS)}")
        questions = [q for q in questions if q.kind in wanted]
    print(f"bank: {len(questions)} questions from {data} (facts read in {time.perf_counter() - started:.1f} s)",
          flush=True)

    from assistant.api import Assistant

    store = args.store or build_store(data, args.work or Path(tempfile.mkdtemp(prefix="xvision-eval-")))
    assistant = Assistant.open(store, args.model)
    origin = assistant.choice.origin if assistant.choice else "none"
    rows = run_bank(assistant, questions, set(facts.parcels))
    summary = summarise(rows)
    for r in rows:
        if args.show_answers or not r["right"]:
            mark = "right" if r["right"] else "WRONG"
            print(f"[{mark}] ({r['kind']}) {r['question']}")
            for name, why in r["failed"].items():
                print(f"      {name}: {why}")
            print("      > " + r["answer"][:400].replace("\n", " "))
    header = (f"store {store}; generator: {origin}; {len(rows)} questions; target >= {TARGET_OVERALL} overall and "
              f">= {TARGET_KIND} per kind")
    print(f"\n{header}\n{'kind':<10} {'right':>5} {'of':>4} {'share':>6} {'p50 s':>6}  what")
    for kind, s in summary.items():
        flag = "" if s["share"] >= (TARGET_OVERALL if kind == "overall" else TARGET_KIND) else "  < target"
        print(f"{kind:<10} {s['right']:>5} {s['of']:>4} {s['share']:>6.3f} {s['p50_s']:>6.2f}  "
              f"{KIND_TITLES.get(kind, 'all kinds')}{flag}")
    if args.failures:
        args.failures.write_text(failures_markdown(rows, summary, header), encoding="utf-8")
        print(f"failures written to {args.failures}")
    if args.json:
        args.json.write_text(json.dumps({"header": header, "summary": summary, "rows": rows}, indent=1,
                                        ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
