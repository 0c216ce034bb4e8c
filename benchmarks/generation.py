"""Generation speed: time to first token and decode tokens/s, beside the memory-bandwidth bound.

    python benchmarks/generation.py                    # tiny profile shape, then the Qwen2-1.5B shape
    python benchmarks/generation.py --shape tiny
    python benchmarks/generation.py --shape 1.5b --quick --variants unmerged merged fp32 int8
    python benchmarks/generation.py --shape tiny --compile

Models have random weights (same compute as trained ones; no download). Decoding one token reads
every weight the forward pass uses once, so on a CPU the ceiling is

    bound (tokens/s) = copy bandwidth (bytes/s, read + write) / bytes read per token

where the bytes per token are the weights of every Linear (LoRA A/B included; lm_head counted even
when tied to the input embedding, whose single-row lookup is not), norms and biases. The KV cache
adds 2 x layers x kv_heads x head_dim x dtype bytes per context token (~57 KB per token for the
1.5B shape in bf16, i.e. < 0.2% at 100 tokens) and is left out. Copy bandwidth is measured here,
in the same process, so `achieved / bound` is comparable across noisy runs.

Variants, applied one after the other to the same model (one model in memory at a time):

* unmerged  peft LoRA (r=32 on q/k/v/o/gate/up/down), `XVisionModel.generate` (the product path)
* merged    after `XVisionModel.merge_lora()` (peft `merge_and_unload`), `XVisionModel.generate`
* static    merged, static KV cache (`cache_implementation="static"`), through the same `splice`
* compile   (--compile) static + `torch.compile` of the decode step (first call compiles: slow)
* fp32      merged, weights cast to float32 (only when the shape's dtype is bfloat16)
* int8      merged, `torch.ao.quantization.quantize_dynamic` on every Linear: int8 weights,
            float32 activations (fbgemm)

TTFT counts adapter + splice + prefill + the first token, from the call to the first token out.
Decode tokens/s is (tokens - 1) / (time of last token - time of first token), batch size 1.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import CompileConfig, GenerationConfig, Qwen2Config, Qwen2ForCausalLM
from transformers.generation.streamers import BaseStreamer
from transformers.utils import logging as hf_logging

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from xvision_model.adapter import AdapterConfig, VisionAdapter  # noqa: E402
from xvision_model.lm import LoraSettings, apply_lora  # noqa: E402
from xvision_model.model import XVisionModel  # noqa: E402

PROMPT_TOKENS = 16
VARIANTS = ("unmerged", "merged", "static", "compile", "fp32", "int8")


@dataclass(frozen=True)
class Shape:
    """An LM architecture to time, with the adapter that feeds it."""

    name: str
    lm: Qwen2Config
    dtype: torch.dtype
    adapter: AdapterConfig
    feature_shape: tuple[int, ...]  # one sample's encoder features
    new_tokens: int
    quick_tokens: int
    repeats: int


def shapes() -> dict[str, Shape]:
    tiny = Qwen2Config(
        vocab_size=1000, hidden_size=256, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=688, max_position_embeddings=512, tie_word_embeddings=True, use_sliding_window=False,
    )
    qwen15 = Qwen2Config(
        vocab_size=151936, hidden_size=1536, num_hidden_layers=28, num_attention_heads=12, num_key_value_heads=2,
        intermediate_size=8960, max_position_embeddings=32768, tie_word_embeddings=True, use_sliding_window=False,
    )
    return {
        # The tiny profile: spectral-v2 gap vector (64-d) -> 8 tokens; float32 ("auto" on CPU).
        "tiny": Shape("tiny (Qwen2 h256 x4, vocab 1000)", tiny, torch.float32,
                      AdapterConfig(in_dim=64, lm_hidden=256, num_tokens=8), (64,), 64, 32, 3),
        # Full profile: CROMA-large global vector (1024-d) -> 64 tokens; bf16.
        "1.5b": Shape("Qwen2-1.5B shape (h1536 x28, vocab 151936)", qwen15, torch.bfloat16,
                      AdapterConfig(in_dim=1024, lm_hidden=1536, num_tokens=64), (1024,), 32, 16, 1),
    }


# -- the bound --------------------------------------------------------------------------------

def copy_bandwidth(gib: float = 1.0, repeats: int = 5) -> float:
    """Best read + write bytes/s of copying a `gib` GiB tensor into another."""
    src = torch.ones(int(gib * 2**30) // 4)
    dst = torch.empty_like(src)
    dst.copy_(src)  # first touch of dst's pages
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        dst.copy_(src)
        best = min(best, time.perf_counter() - start)
    return 2 * src.nbytes / best


def _linear_bytes(module: nn.Module) -> int | None:
    """Weight + bias bytes of a (possibly dynamically quantized) Linear; None for other modules."""
    if isinstance(module, torch.ao.nn.quantized.dynamic.Linear):
        weight, bias = module._packed_params._weight_bias()
        # qint8 weight, one scale (+ zero point) per tensor or per channel, float bias.
        return weight.numel() + (weight.q_per_channel_scales().numel() * 12 if weight.qscheme() in
                                 (torch.per_channel_affine, torch.per_channel_symmetric) else 12) + (
            bias.nbytes if bias is not None else 0)
    if isinstance(module, nn.Linear):
        return module.weight.nbytes + (module.bias.nbytes if module.bias is not None else 0)
    return None


def bytes_per_token(lm: nn.Module) -> int:
    """Bytes of weights one decode step reads (see the module docstring)."""
    total, seen = 0, set()
    for module in lm.modules():
        if isinstance(module, nn.Embedding):
            continue  # one row per token; a tied lm_head is counted as a Linear below
        linear = _linear_bytes(module)
        if linear is not None:
            key = id(module._packed_params) if hasattr(module, "_packed_params") else module.weight.data_ptr()
            if key not in seen:
                seen.add(key)
                total += linear
            continue
        for param in module.parameters(recurse=False):
            if param.data_ptr() not in seen:
                seen.add(param.data_ptr())
                total += param.nbytes
    return total


# -- timing -----------------------------------------------------------------------------------

class TokenTimer(BaseStreamer):
    """Records when each generated token reaches the streamer (the first `put` is the prompt)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        now = time.perf_counter()
        self.times.extend([now] * value.numel())

    def end(self) -> None:
        pass


@dataclass
class Timing:
    ttft_s: float
    decode_tps: float
    tokens: int


Generate = Callable[[int, BaseStreamer], list[list[int]]]


def measure(generate: Generate, new_tokens: int, repeats: int, warmup_tokens: int = 2) -> Timing:
    """Median TTFT and decode tokens/s over `repeats` runs, after one short warm-up run."""
    generate(warmup_tokens, TokenTimer())
    ttfts, rates = [], []
    for _ in range(repeats):
        timer = TokenTimer()
        start = time.perf_counter()
        rows = generate(new_tokens, timer)
        if len(rows[0]) != new_tokens or len(timer.times) != new_tokens:
            raise RuntimeError(f"expected {new_tokens} tokens, got {len(rows[0])} ({len(timer.times)} streamed)")
        ttfts.append(timer.times[0] - start)
        rates.append((new_tokens - 1) / (timer.times[-1] - timer.times[0]))
    return Timing(statistics.median(ttfts), statistics.median(rates), new_tokens)


def product_generate(model: XVisionModel, features: torch.Tensor, prompt: list[list[int]]) -> Generate:
    """`XVisionModel.generate`, never stopping at EOS."""
    return lambda n, streamer: model.generate(features, prompt, max_new_tokens=n, eos_token_id=-1, streamer=streamer)


def configured_generate(model: XVisionModel, features: torch.Tensor, prompt: list[list[int]],
                        max_new_tokens: int, **options) -> Generate:
    """`XVisionModel.generate`'s steps (splice, then `lm.generate`) with extra generation options.

    XVisionModel.generate builds its own GenerationConfig; a static cache or compilation needs
    options it does not expose, so this repeats its two lines with them. The cache length is
    fixed so the warm-up and the timed runs share one compiled graph.
    """
    length = model.adapter.config.num_tokens + len(prompt[0]) + max_new_tokens

    def run(n: int, streamer: BaseStreamer) -> list[list[int]]:
        with torch.no_grad():
            batch = model.splice(features, prompt)
            config = GenerationConfig(
                max_new_tokens=n, do_sample=False, eos_token_id=-1, pad_token_id=model.pad_token_id,
                use_cache=True, max_cache_len=length, **options,
            )
            out = model.lm.generate(inputs_embeds=batch.inputs_embeds, attention_mask=batch.attention_mask,
                                    generation_config=config, streamer=streamer)
        return out.tolist()

    return run


# -- models -----------------------------------------------------------------------------------

def build(shape: Shape, seed: int = 0) -> XVisionModel:
    """Random-weight XVisionModel of `shape` with fresh LoRA (r=32, all projections)."""
    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(shape.dtype)  # initialise directly in the target dtype: no fp32 copy
    try:
        lm = Qwen2ForCausalLM(shape.lm)
    finally:
        torch.set_default_dtype(previous)
    lm = apply_lora(lm, LoraSettings(r=32, alpha=64))
    return XVisionModel(VisionAdapter(shape.adapter), lm).eval()


def to_float32(model: XVisionModel) -> None:
    model.lm.float()


def to_int8(model: XVisionModel) -> None:
    # The serving path itself: full-profile models load this way on a CPU (artifacts.load_model).
    if next(model.lm.parameters()).dtype != torch.float32:
        to_float32(model)
    model.quantize_int8()


def bench_shape(shape: Shape, variants: list[str], bandwidth: float, new_tokens: int, repeats: int) -> None:
    start = time.perf_counter()
    model = build(shape)
    print(f"\n{shape.name}: {shape.dtype}, {shape.adapter.num_tokens} visual tokens ({shape.adapter.mode} adapter), "
          f"{PROMPT_TOKENS} prompt tokens, {new_tokens} new tokens, median of {repeats} "
          f"(built in {time.perf_counter() - start:.0f} s)")
    print(f"  {'variant':<10} {'weights':>7} {'MB/token':>9} {'TTFT s':>8} {'decode tok/s':>13} "
          f"{'bound tok/s':>12} {'achieved/bound':>15} {'vs unmerged':>12}")
    gen = torch.Generator().manual_seed(1)
    features = torch.randn(1, *shape.feature_shape, generator=gen)
    prompt = torch.randint(1, shape.lm.vocab_size - 1, (1, PROMPT_TOKENS), generator=gen).tolist()
    reference = None
    for name in VARIANTS:
        if name not in variants:
            continue
        if name == "fp32" and shape.dtype == torch.float32:
            continue
        if name != "unmerged" and model.is_lora:
            model.merge_lora()
        if name == "fp32":
            to_float32(model)
        elif name == "int8":
            to_int8(model)
        if name in ("unmerged", "merged", "fp32", "int8"):
            generate = product_generate(model, features, prompt)
        elif name == "static":
            generate = configured_generate(model, features, prompt, new_tokens, cache_implementation="static")
        else:  # compile
            compile_config = CompileConfig(mode="default", fullgraph=False)
            compile_config._compile_all_devices = True  # transformers only auto-compiles on GPUs otherwise
            generate = configured_generate(model, features, prompt, new_tokens, cache_implementation="static",
                                           compile_config=compile_config)
        try:
            timing = measure(generate, new_tokens, repeats,
                             warmup_tokens=new_tokens if name == "compile" else 2)
        except Exception as exc:  # report and go on with the next variant
            print(f"  {name:<10} failed: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}")
            continue
        weights = str(next(iter(model.lm.state_dict().values())).dtype).replace("torch.", "")
        weights = "int8" if name == "int8" else {"bfloat16": "bf16", "float32": "fp32"}.get(weights, weights)
        nbytes = bytes_per_token(model.lm)
        bound = bandwidth / nbytes
        reference = reference or timing.decode_tps
        print(f"  {name:<10} {weights:>7} {nbytes / 1e6:9.1f} {timing.ttft_s:8.3f} {timing.decode_tps:13.2f} "
              f"{bound:12.2f} {timing.decode_tps / bound:15.3f} {timing.decode_tps / reference:11.2f}x")
        gc.collect()
    del model
    gc.collect()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=("tiny", "1.5b", "both"), default="both")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=[v for v in VARIANTS if v != "compile"],
                        help="which variants to time, in this fixed order (default: all but compile)")
    parser.add_argument("--compile", action="store_true", help="add the torch.compile variant (slow to compile)")
    parser.add_argument("--quick", action="store_true", help="fewer new tokens (tiny 32, 1.5B 16) and one repeat")
    parser.add_argument("--new-tokens", type=int, help="override the number of new tokens for every shape")
    parser.add_argument("--repeats", type=int, help="override the number of timed runs per variant")
    parser.add_argument("--copy-gib", type=float, default=1.0, help="size of the bandwidth-probe tensor")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice); on a "
                        "shared machine 1 thread can beat 2 when another process holds a core")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    # eos_token_id=-1 (never stop) draws one warning per call; peft a FutureWarning per call.
    hf_logging.set_verbosity_error()
    warnings.filterwarnings("ignore", category=FutureWarning)
    variants = list(args.variants) + (["compile"] if args.compile else [])

    bandwidth = copy_bandwidth(args.copy_gib)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}; copy bandwidth {bandwidth / 1e9:.1f} GB/s (read + write)")
    gc.collect()
    for key in (("tiny", "1.5b") if args.shape == "both" else (args.shape,)):
        shape = shapes()[key]
        new_tokens = args.new_tokens or (shape.quick_tokens if args.quick else shape.new_tokens)
        repeats = args.repeats or (1 if args.quick else shape.repeats)
        bench_shape(shape, variants, bandwidth, new_tokens, repeats)


if __name__ == "__main__":
    main()
