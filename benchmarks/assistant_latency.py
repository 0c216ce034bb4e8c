"""Question -> answer latency of the assistant, warm, per kind of question: p50 and p95 (target p50 < 1 s).

    .venv/bin/python benchmarks/assistant_latency.py [--store DIR] [--model DIR] [--per-kind 4] [--repeats 5]

The questions are the evaluation bank's (`eval/bank/questions.py`, the kinds of issue 22: a parcel
on a date or window, past seasons, crop calendar, why, observation quality, groups, several
parcels, similar parcels, the archive, questions to decline), `--per-kind` of each kind drawn with
a fixed seed, so the timing covers every answer module and both languages. The store defaults to
the real worldcereal-flanders sample (19 LPIS parcels x 72 dates), indexed once into `--work`
(default: ``xvision-bench-assistant`` in the system temp folder); the model is the one the
assistant chooses for the store (`assistant.models.choose_model`: registered, else the bundled demo
model) unless `--model` names one. The assistant is opened once (model loaded, store facts and
suspect dates computed) and every question is asked once before timing, so the figures are warm:
parse, retrieve, generate, ground and compose, as `Assistant.ask` runs them. Each question is then
asked `--repeats` times; the table gives the median and 95th percentile per kind and how often the
generated analysis was kept. Numbers depend on the machine's load: run it alone.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FLANDERS = ROOT / "data" / "worldcereal-flanders"
if not FLANDERS.is_dir():
    FLANDERS = ROOT.parent / "shared" / "data" / "worldcereal-flanders"


def questions(per_kind: int, seed: int = 0) -> dict[str, list[str]]:
    """`per_kind` questions of each kind of the evaluation bank (English and French mixed)."""
    import random

    from eval.bank.questions import KINDS, build_bank
    from eval.bank.truth import read_facts

    bank = build_bank(read_facts(FLANDERS), seed)
    rng = random.Random(seed)
    out = {}
    for kind in KINDS:
        texts = [q.text for q in bank if q.kind == kind]
        out[kind] = rng.sample(texts, min(per_kind, len(texts)))
    return out


def main(argv: list[str] | None = None) -> int:
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser(description="Warm question -> answer latency of the assistant, per kind.")
    parser.add_argument("--store", type=Path, help="store folder (default: worldcereal-flanders indexed into --work)")
    parser.add_argument("--model", type=Path, help="generator folder (default: the one the assistant chooses)")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "xvision-bench-assistant",
                        help="where the default store is built (default: a folder in the system temp dir)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each question (default 5)")
    parser.add_argument("--per-kind", type=int, default=4, help="questions of each kind (default 4)")
    args = parser.parse_args(argv)

    from assistant.api import Assistant

    store = args.store
    if store is None:
        store = args.work / "flanders-store"
        if not (store / "manifest.json").is_file():
            from indexer.pipeline import IndexConfig, index
            from xvision_model.encoders import DEFAULT_ENCODER, build_encoder

            print(f"indexing {FLANDERS} into {store} ...", flush=True)
            index(IndexConfig(store=store, inputs=(str(FLANDERS),), parcels=FLANDERS / "parcels_Flanders31UES.gpkg",
                              progress=False), build_encoder(DEFAULT_ENCODER))
    started = time.perf_counter()
    assistant = Assistant.open(store, args.model)
    opened = time.perf_counter() - started
    import torch

    print(f"store {store} ({len(assistant.view)} records); generator: {assistant.choice.origin} "
          f"{assistant.choice.path or ''}; torch threads {torch.get_num_threads()}; opened in {opened:.2f} s")
    table = questions(args.per_kind)
    for qs in table.values():  # warm-up: every question once
        for q in qs:
            assistant.ask(q)
    print(f"\n{'kind':<10} {'n':>3} {'p50 s':>7} {'p95 s':>7} {'max s':>7}  generated analysis kept")
    everything = []
    slow = []
    for kind, qs in table.items():
        times, kept, generated = [], 0, 0
        for q in qs:
            for _ in range(args.repeats):
                t = time.perf_counter()
                result = assistant.ask(q)
                times.append(time.perf_counter() - t)
                source = result["plan"].get("analysis_source")
                generated += any(n.startswith("generated analysis") for n in result["plan"].get("notes", []))
                kept += source == "generated"
        everything += times
        q = statistics.quantiles(times, n=20, method="inclusive") if len(times) > 1 else times * 19
        p50 = statistics.median(times)
        slow += [kind] if p50 >= 1.0 else []
        print(f"{kind:<10} {len(times):>3} {p50:>7.3f} {q[18]:>7.3f} {max(times):>7.3f}  "
              + (f"{kept}/{generated}" if generated else "-"))
    q = statistics.quantiles(everything, n=20, method="inclusive")
    print(f"{'all':<10} {len(everything):>3} {statistics.median(everything):>7.3f} {q[18]:>7.3f} {max(everything):>7.3f}")
    chat = assistant.model
    if chat is not None:
        # What a kept analysis costs: the generator alone, run to its end (no gate stopping it).
        from assistant.generator import DEFAULT_PROMPTS, record_message

        rows = assistant.view.records()
        rows = rows[rows["valid"]].sample(3, random_state=0)
        for rid in rows["record_id"]:
            t = time.perf_counter()
            text = chat.invoke([record_message(DEFAULT_PROMPTS["en"], int(rid))]).content
            took = time.perf_counter() - t
            n = len(chat.model.tokenizer(text, add_special_tokens=False)["input_ids"])
            print(f"generator alone, record {rid}: {n} tokens in {took:.3f} s ({n / took:.0f} tokens/s)")
    print(f"\ntarget: p50 < 1 s per kind: {'met' if not slow else 'missed by ' + ', '.join(slow)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
