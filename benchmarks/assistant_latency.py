"""Question -> answer latency of the assistant, warm, per intent: p50 and p95 (target p50 < 1 s).

    .venv/bin/python benchmarks/assistant_latency.py --model DIR [--store DIR] [--repeats 5]
    .venv/bin/python benchmarks/assistant_latency.py --no-model          # answers from stored analyses

The store defaults to the real worldcereal-flanders sample (19 LPIS parcels x 72 dates), indexed
once into `--work` (default: ``xvision-bench-assistant`` in the system temp folder); the model defaults to the bundled demo model
(`assistant.models.BUNDLED_MODEL`) when it exists. The assistant is opened once (model loaded,
store facts and suspect dates computed) and every question is asked once before timing, so the
figures are warm: parse, retrieve, generate (tiny profile, greedy, stopped early by the grounding
gate when it goes wrong), ground and compose, as `Assistant.ask` runs them. Each question of an
intent is then asked `--repeats` times; the table gives the median and 95th percentile per intent
and how often the generated analysis was kept. Numbers depend on the machine's load: run it alone.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FLANDERS = ROOT / "data" / "worldcereal-flanders"
if not FLANDERS.is_dir():
    FLANDERS = ROOT.parent / "shared" / "data" / "worldcereal-flanders"


def questions(store) -> dict[str, list[str]]:
    """A few questions of each intent over what the store holds."""
    records = store.records()
    parcels = sorted(records["parcel_id"].unique())
    usable = records[records["valid"]].sort_values("date")
    unusable = records[~records["valid"]]
    last = usable.iloc[-1]
    mid = usable.iloc[len(usable) // 2]
    p0, p1 = parcels[0], parcels[len(parcels) // 2]
    month = f"{int(mid['date'][5:7])}"
    names = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
             "November", "December"]
    m, y = names[int(month) - 1], mid["date"][:4]
    qs = {
        "describe": [f"How is parcel {p0} doing on {last['date']}?", f"How was parcel {p1} in {m} {y}?",
                     f"Comment allait la parcelle {mid['parcel_id']} le {mid['date']} ?"],
        "compare": [f"How did parcel {p0} do in {m} {y} compared with {m} {int(y) - 1}?",
                    f"Compare parcel {p1} in {m} {y} with the same month last year"],
        "history": [f"NDVI history of parcel {p0} in {y}", f"How has parcel {p1} evolved since {int(y) - 1}?"],
        "similar": [f"Which parcels looked like parcel {p0} on {last['date']}?",
                    f"Fields similar to {p1} in {m} {y}"],
        "rank": [f"Which parcels had NDVI below 0.5 in {m} {y}?", f"Which fields were water-stressed in {y}?"],
        "unusable": [f"How was parcel {r['parcel_id']} on {r['date']}?" for _, r in unusable.head(2).iterrows()],
        "unknown": ["What is the capital of France?", "qwxz vbnm"],
    }
    return {k: v for k, v in qs.items() if v}


def main(argv: list[str] | None = None) -> int:
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser(description="Warm question -> answer latency of the assistant, per intent.")
    parser.add_argument("--store", type=Path, help="store folder (default: worldcereal-flanders indexed into --work)")
    parser.add_argument("--model", type=Path, help="generator folder (default: the bundled demo model when present)")
    parser.add_argument("--no-model", action="store_true", help="no generator: answers composed from stored analyses")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "xvision-bench-assistant",
                        help="where the default store is built (default: a folder in the system temp dir)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each question (default 5)")
    args = parser.parse_args(argv)

    from assistant.api import Assistant
    from assistant.models import BUNDLED_MODEL

    store = args.store
    if store is None:
        store = args.work / "flanders-store"
        if not (store / "manifest.json").is_file():
            from indexer.pipeline import IndexConfig, index
            from xvision_model.encoders import DEFAULT_ENCODER, build_encoder

            print(f"indexing {FLANDERS} into {store} ...", flush=True)
            index(IndexConfig(store=store, inputs=(str(FLANDERS),), parcels=FLANDERS / "parcels_Flanders31UES.gpkg",
                              progress=False), build_encoder(DEFAULT_ENCODER))
    model = None if args.no_model else (args.model or (BUNDLED_MODEL if BUNDLED_MODEL.exists() else None))
    if model is None and not args.no_model:
        print(f"no --model and no bundled model at {BUNDLED_MODEL}: timing without a generator", flush=True)
    started = time.perf_counter()
    assistant = Assistant.open(store, model)
    opened = time.perf_counter() - started
    import torch

    print(f"store {store} ({len(assistant.view)} records); generator: {assistant.choice.origin} "
          f"{assistant.choice.path or ''}; torch threads {torch.get_num_threads()}; opened in {opened:.2f} s")
    table = questions(assistant.view)
    for qs in table.values():  # warm-up: every question once
        for q in qs:
            assistant.ask(q)
    print(f"\n{'intent':<10} {'n':>3} {'p50 s':>7} {'p95 s':>7} {'max s':>7}  generated analysis kept")
    everything = []
    for intent, qs in table.items():
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
        print(f"{intent:<10} {len(times):>3} {statistics.median(times):>7.3f} {q[18]:>7.3f} {max(times):>7.3f}  "
              f"{kept}/{generated}" if generated else
              f"{intent:<10} {len(times):>3} {statistics.median(times):>7.3f} {q[18]:>7.3f} {max(times):>7.3f}  -")
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
    print("\ntarget: p50 < 1 s per intent")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
