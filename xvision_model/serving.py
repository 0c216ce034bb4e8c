"""The generator served without torch: an ONNX export of a trained model, run by ONNX Runtime.

A question whose answer uses the tiny generator used to spend most of its time importing torch
and transformers' Qwen2 (about 5 s of a 6.6 s cold `xvision ask`, against 0.14 s for
onnxruntime). `export_onnx` writes, beside the model's own files::

    model_dir/serve/
      serve.json        what was exported from what: the source files' SHA-256, the LM's cache
                        shape, the special token ids, the check against torch
      adapter.onnx      encoder features [B, D] -> visual tokens [B, V, H] (the vision adapter)
      embed.onnx        token ids [B, T] -> embeddings [B, T, H] (the LM's input embedding)
      lm.onnx           one step of the merged LM (LoRA folded in) with its key/value cache:
                        inputs_embeds, attention_mask, position_ids, past keys and values ->
                        logits of every position, the keys and values after it

`OnnxXVisionModel` serves it with the interface the writer uses from `XVisionModel` (`generate`,
`continuation_logprobs`, `tokenizer`, the special ids, `number_slots`): the same splice (visual
tokens then the prompt, left-padded, positions counting real tokens), greedy decoding with the
cache, and the class scoring of the writer's repair, in numpy. The tokenizer is the model's own
``tokenizer.json`` read by `tokenizers` (what transformers' fast tokenizer wraps).

An export is used only while it matches the files it came from (`serving_status`): retraining
into the same folder, or editing a weight file, makes it stale, and serving then falls back to
torch and says why. Exports are for models that write the record's analysis (no chat template);
an instruct model reading the conversation is served by torch.

Importing this module imports numpy only; `export_onnx` imports torch, `load_serving`
onnxruntime and tokenizers.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from indexer.core.errors import InputError, WeightsError
from xvision_model.artifacts import BASE_DIR, CARD_NAME, LORA_DIR, TOKENIZER_DIR

SERVE_DIR = "serve"
MANIFEST = "serve.json"
GRAPHS = ("adapter.onnx", "embed.onnx", "lm.onnx")
FORMAT = 1
#: The files of a model directory an export is made from (those present are hashed).
SOURCES = (CARD_NAME, "adapter_config.json", "adapter.safetensors", f"{BASE_DIR}/config.json",
           f"{BASE_DIR}/model.safetensors", f"{LORA_DIR}/adapter_config.json", f"{LORA_DIR}/adapter_model.safetensors",
           f"{TOKENIZER_DIR}/tokenizer.json")
#: Largest logit difference from torch accepted at export (float32 kernels differ in rounding).
TOLERANCE = 1e-3
_LM_INPUTS = ("inputs_embeds", "attention_mask", "position_ids", "past_keys", "past_values")


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _sources(directory: Path) -> dict[str, str]:
    return {name: _sha256(directory / name) for name in SOURCES if (directory / name).is_file()}


@dataclass(frozen=True)
class ServingStatus:
    """Whether `directory`'s ONNX export can serve it: `usable`, else `reason` in plain words;
    `present`: there is an export (usable or not)."""

    usable: bool
    reason: str
    manifest: dict | None = None
    present: bool = True


def serving_status(directory: str | Path) -> ServingStatus:
    """Whether the model in `directory` has an ONNX export that matches its files."""
    directory = Path(directory)
    folder = directory / SERVE_DIR
    path = folder / MANIFEST
    if not path.is_file():
        return ServingStatus(False, f"no ONNX export ({path} not found; `xvision export-onnx {directory}` writes one)",
                             present=False)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return ServingStatus(False, f"{path}: not valid JSON ({exc})")
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        return ServingStatus(False, f"{path}: unknown export format {manifest.get('format') if isinstance(manifest, dict) else None!r}")
    missing = [g for g in GRAPHS if not (folder / g).is_file()]
    if missing:
        return ServingStatus(False, f"{folder}: {', '.join(missing)} missing")
    if manifest.get("sources") != _sources(directory):
        return ServingStatus(False, f"{folder}: the export is stale (the model's files changed since it was "
                                    f"exported); run `xvision export-onnx {directory}` again")
    return ServingStatus(True, "ONNX export matches the model's files", manifest)


# -- export (torch) -----------------------------------------------------------------------------------
def export_onnx(directory: str | Path, *, quiet: bool = True) -> Path:
    """Export the model in `directory` for serving without torch, into ``directory/serve``, and
    check it: the export's logits must match torch's within `TOLERANCE` on a batch with padding
    and a cache. Returns the manifest's path. Refused for a model with a chat template."""
    import contextlib
    import io
    import warnings

    import torch
    from torch import nn

    from xvision_model.artifacts import has_chat_template, load_model, read_card

    directory = Path(directory)
    card = read_card(directory)
    if has_chat_template(directory):
        raise WeightsError(f"{directory}: an instruct model (chat template) is served by torch; only models that "
                           "write the record's analysis are exported", path=directory)
    model = load_model(directory, merge=True, quantize="none", dtype="float32").eval()
    lm, adapter = model.lm, model.adapter
    config = lm.config
    layers, kv_heads = config.num_hidden_layers, config.num_key_value_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads

    class Step(nn.Module):
        """One LM step over explicit cache tensors [layers, B, kv_heads, past, head_dim]."""

        def __init__(self) -> None:
            super().__init__()
            self.lm = lm

        def forward(self, inputs_embeds, attention_mask, position_ids, past_keys, past_values):
            from transformers import DynamicCache

            cache = DynamicCache(config=config)
            for i in range(layers):
                cache.update(past_keys[i], past_values[i], i)
            out = self.lm(inputs_embeds=inputs_embeds, attention_mask=attention_mask, position_ids=position_ids,
                          cache=cache, use_cache=True)
            keys = torch.stack([out.cache.layers[i].keys for i in range(layers)])
            values = torch.stack([out.cache.layers[i].values for i in range(layers)])
            return out.logits, keys, values

    class Embed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = lm.get_input_embeddings()

        def forward(self, input_ids):
            return self.embed(input_ids)

    folder = directory / SERVE_DIR
    folder.mkdir(exist_ok=True)
    for name in (MANIFEST, *GRAPHS):  # a half-written export must not look current
        (folder / name).unlink(missing_ok=True)
    batch, steps, past, hidden = 2, 3, 5, config.hidden_size
    features = torch.randn(batch, adapter.config.in_dim)
    step_args = (torch.randn(batch, steps, hidden), torch.ones(batch, past + steps, dtype=torch.long),
                 torch.arange(past, past + steps).expand(batch, steps).contiguous(),
                 torch.randn(layers, batch, kv_heads, past, head_dim), torch.randn(layers, batch, kv_heads, past, head_dim))
    b, t, p, s = (torch.export.Dim(n) for n in ("batch", "steps", "past", "total"))
    jobs = [
        ("adapter.onnx", adapter, (features,), {"features": {0: b}}, ["features"], ["visual"]),
        ("embed.onnx", Embed(), (torch.tensor([[1, 2, 3], [4, 5, 6]]),), {"input_ids": {0: b, 1: t}},
         ["input_ids"], ["embeds"]),
        ("lm.onnx", Step(), step_args,
         {"inputs_embeds": {0: b, 1: t}, "attention_mask": {0: b, 1: s}, "position_ids": {0: b, 1: t},
          "past_keys": {1: b, 3: p}, "past_values": {1: b, 3: p}}, list(_LM_INPUTS), ["logits", "keys", "values"]),
    ]
    sink = io.StringIO()
    with torch.no_grad(), warnings.catch_warnings(), contextlib.redirect_stdout(sink if quiet else None), \
            contextlib.redirect_stderr(sink if quiet else None):
        warnings.simplefilter("ignore")
        for name, module, args, shapes, inputs, outputs in jobs:
            torch.onnx.export(module.eval(), args, str(folder / name), dynamo=True, dynamic_shapes=shapes,
                              input_names=inputs, output_names=outputs, optimize=True, external_data=False)
    manifest = {
        "format": FORMAT,
        "exported": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "profile": card.get("profile"),
        "layers": layers, "kv_heads": kv_heads, "head_dim": head_dim, "hidden": hidden,
        "num_tokens": adapter.config.num_tokens, "in_dim": adapter.config.in_dim,
        "eos_token_id": model.eos_token_id, "pad_token_id": model.pad_token_id,
        "number_slots": bool(getattr(model, "number_slots", True)),
        "sources": _sources(directory),
    }
    manifest["check"] = {"max_abs_logit_difference": _check(model, folder, manifest)}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return folder / MANIFEST


def _check(model: Any, folder: Path, manifest: dict) -> float:
    """The largest logit difference between torch and the export, on prompts of different
    lengths (left padding) run as a prefix and then two cached steps; WeightsError above
    `TOLERANCE`."""
    import torch

    served = OnnxXVisionModel(folder, manifest, tokenizer=None, threads=1)
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(3, model.adapter.config.in_dim, generator=generator)
    rows = [[5, 6, 7, 8, 9], [10, 11], [12, 13, 14]]
    with torch.no_grad():
        batch = model.splice(features, rows)
        ref = model.lm(inputs_embeds=batch.inputs_embeds, attention_mask=batch.attention_mask,
                       position_ids=batch.position_ids, use_cache=True)
        nxt = torch.tensor([[20], [21], [22]])
        mask = torch.cat([batch.attention_mask, torch.ones(3, 1, dtype=torch.long)], 1)
        ref2 = model.lm(inputs_embeds=model.lm.get_input_embeddings()(nxt), attention_mask=mask,
                        position_ids=batch.position_ids[:, -1:] + 1, cache=ref.cache, use_cache=True)
    embeds, attention, positions = served.splice(features.numpy(), rows)
    logits, keys, values = served.step(embeds, attention, positions, *served.empty_cache(3))
    logits2, _, _ = served.step(served.embed(nxt.numpy()), mask.numpy(), positions[:, -1:] + 1, keys, values)
    real = attention.astype(bool)
    worst = max(float(np.abs(ref.logits.numpy()[real] - logits[real]).max()),
                float(np.abs(ref2.logits.numpy() - logits2).max()))
    if not worst <= TOLERANCE:
        raise WeightsError(f"{folder}: the ONNX export's logits differ from torch's by {worst:.2g} "
                           f"(> {TOLERANCE}); it is not used", path=folder)
    return worst


# -- serving (onnxruntime) ----------------------------------------------------------------------------
class ServingTokenizer:
    """The model's ``tokenizer.json`` through `tokenizers`, with the calls the writer makes of a
    transformers tokenizer: ``tok(text, add_special_tokens=False)["input_ids"]``, `decode`,
    `batch_decode` (special tokens skipped)."""

    chat_template = None

    def __init__(self, path: Path) -> None:
        from tokenizers import Tokenizer

        try:
            self._tok = Tokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises its own Exception subclass
            raise WeightsError(f"{path}: cannot read the tokenizer ({exc})", path=path) from None

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
        return {"input_ids": self._tok.encode(text, add_special_tokens=add_special_tokens).ids}

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        return self._tok.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def batch_decode(self, rows: Sequence[Sequence[int]], skip_special_tokens: bool = True) -> list[str]:
        return [self.decode(r, skip_special_tokens) for r in rows]


def cut_at_eos(rows: Sequence[Sequence[int]], eos: int | None) -> list[list[int]]:
    """Each generated row up to (without) its first `eos`: what both runtimes return."""
    return [list(row[: list(row).index(eos)]) if eos is not None and eos in row else list(row) for row in rows]


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float32, copy=False)
    top = x.max(-1, keepdims=True)
    return x - top - np.log(np.exp(x - top).sum(-1, keepdims=True))


class OnnxXVisionModel:
    """An exported XVision generator on ONNX Runtime (see the module docstring)."""

    backend = "onnx"

    def __init__(self, folder: Path, manifest: dict, tokenizer: ServingTokenizer | None, threads: int | None = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        # One thread by default: the tiny profile's 256-wide matrices are too small to share
        # between cores (the same rule as torch's, `xvision_model.threads`).
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self._sessions = {name: ort.InferenceSession(str(folder / name), options, providers=["CPUExecutionProvider"])
                          for name in GRAPHS}
        self.manifest = manifest
        self.tokenizer = tokenizer
        self.eos_token_id: int | None = manifest.get("eos_token_id")
        self.pad_token_id: int = int(manifest.get("pad_token_id") or 0)
        self.number_slots = bool(manifest.get("number_slots", True))

    # -- the graphs --------------------------------------------------------------------------
    def visual(self, features: np.ndarray) -> np.ndarray:
        features = np.ascontiguousarray(np.asarray(features, dtype=np.float32))
        return self._sessions["adapter.onnx"].run(None, {"features": features})[0]

    def embed(self, ids: np.ndarray) -> np.ndarray:
        return self._sessions["embed.onnx"].run(None, {"input_ids": np.asarray(ids, dtype=np.int64)})[0]

    def empty_cache(self, batch: int) -> tuple[np.ndarray, np.ndarray]:
        m = self.manifest
        shape = (m["layers"], batch, m["kv_heads"], 0, m["head_dim"])
        return np.zeros(shape, np.float32), np.zeros(shape, np.float32)

    def step(self, embeds: np.ndarray, attention: np.ndarray, positions: np.ndarray, keys: np.ndarray,
             values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Logits of every position of `embeds`, and the cache after them."""
        feeds = dict(zip(_LM_INPUTS, (embeds.astype(np.float32, copy=False), attention.astype(np.int64, copy=False),
                                      positions.astype(np.int64, copy=False), keys, values)))
        logits, keys, values = self._sessions["lm.onnx"].run(None, feeds)
        return logits, keys, values

    def splice(self, features: np.ndarray, prompt_ids: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``[visual | prompt]`` left-padded, as `xvision_model.splice.splice` builds it for
        generation: embeddings, attention mask, positions (real tokens counted, 0 on padding)."""
        visual = self.visual(features)
        batch, n_visual, _ = visual.shape
        rows = [list(map(int, r)) for r in prompt_ids]
        length = n_visual + max(len(r) for r in rows)
        ids = np.full((batch, length), self.pad_token_id, np.int64)
        attention = np.zeros((batch, length), np.int64)
        for i, row in enumerate(rows):
            start = length - n_visual - len(row)
            attention[i, start:] = 1
            ids[i, start + n_visual:] = row
        embeds = self.embed(ids)
        for i, row in enumerate(rows):
            start = length - n_visual - len(row)
            embeds[i, start:start + n_visual] = visual[i]
        positions = np.where(attention == 1, attention.cumsum(-1) - 1, 0)
        return embeds, attention, positions

    # -- what the writer calls ---------------------------------------------------------------
    def generate(self, visual_features: Any, prompt_ids: Sequence[Sequence[int]], max_new_tokens: int = 128,
                 streamer: Any = None, eos_token_id: int | None = None) -> list[list[int]]:
        """Greedy new token ids per row (prompt excluded), cut before the first EOS, as
        `XVisionModel.generate` decodes them. `streamer` (batch size 1) gets ``put`` (the
        prompt first, as transformers does: an empty array) and ``end``."""
        if max_new_tokens < 1:
            raise InputError(f"max_new_tokens must be >= 1, got {max_new_tokens}", field="max_new_tokens", value=max_new_tokens)
        features = np.asarray(visual_features, dtype=np.float32)
        eos = self.eos_token_id if eos_token_id is None else eos_token_id
        embeds, attention, positions = self.splice(features, prompt_ids)
        batch = len(embeds)
        if streamer is not None:
            if batch != 1:
                raise InputError("token streaming needs batch size 1", field="streamer")
            streamer.put(np.zeros((1, 0), np.int64))
        keys, values = self.empty_cache(batch)
        out = np.zeros((batch, 0), np.int64)
        done = np.zeros(batch, bool)
        try:
            for _ in range(max_new_tokens):
                logits, keys, values = self.step(embeds, attention, positions, keys, values)
                token = logits[:, -1].argmax(-1)
                token = np.where(done, self.pad_token_id, token)  # finished rows pad, as transformers does
                out = np.concatenate([out, token[:, None]], 1)
                if streamer is not None:
                    streamer.put(token.copy())
                if eos is not None and eos >= 0:
                    done |= token == eos
                if done.all():
                    break
                embeds = self.embed(token[:, None])
                attention = np.concatenate([attention, np.ones((batch, 1), np.int64)], 1)
                positions = positions[:, -1:] + 1
        finally:
            if streamer is not None:
                streamer.end()
        return cut_at_eos(out.tolist(), eos)

    def continuation_logprobs(self, features: Any, heads: Sequence[Sequence[int]], tails: Sequence[Sequence[int]],
                              owner: Sequence[int]) -> list[float]:
        """Each tail's log-likelihood (summed over its tokens) after ``[visual | head]`` of its
        owner row; `XVisionModel.continuation_logprobs`, on the export."""
        embeds, attention, positions = self.splice(np.asarray(features, dtype=np.float32), heads)
        logits, keys, values = self.step(embeds, attention, positions, *self.empty_cache(len(embeds)))
        first = _log_softmax(logits[:, -1])
        index = np.asarray(owner, np.int64)
        width = max(len(t) for t in tails)
        rest = np.zeros(len(tails), np.float32)
        if width > 1:
            ids = np.asarray([list(t) + [self.pad_token_id] * (width - len(t)) for t in tails], np.int64)
            mask = np.asarray([[1] * len(t) + [0] * (width - len(t)) for t in tails], np.int64)
            full = np.concatenate([attention[index], mask], 1)
            steps = positions[index, -1:] + 1 + np.arange(width)
            tail_logits, _, _ = self.step(self.embed(ids), full, steps, keys[:, index], values[:, index])
            logp = _log_softmax(tail_logits[:, :width - 1])
            taken = np.take_along_axis(logp, ids[:, 1:, None], 2)[..., 0] * mask[:, 1:]
            rest = taken.sum(1)
        return [float(first[i, tail[0]]) + float(r) for i, tail, r in zip(owner, tails, rest)]


def load_serving(directory: str | Path, threads: int | None = 1, status: ServingStatus | None = None) -> OnnxXVisionModel:
    """The ONNX-served generator of the model in `directory`; WeightsError (with the reason) when
    it has no current export (`serving_status`, or the `status` the caller already read: the check
    hashes the model's files) or onnxruntime is not installed."""
    directory = Path(directory)
    status = status or serving_status(directory)
    if not status.usable:
        raise WeightsError(status.reason, path=directory)
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        raise WeightsError("onnxruntime is not installed; the model is served by torch", path=directory) from None
    tokenizer = ServingTokenizer(directory / TOKENIZER_DIR / "tokenizer.json")
    return OnnxXVisionModel(directory / SERVE_DIR, status.manifest, tokenizer, threads)


__all__ = ["OnnxXVisionModel", "ServingStatus", "ServingTokenizer", "export_onnx", "load_serving", "serving_status"]
