"""Training: a store's (embedding, analysis) pairs -> a model directory `load_model` reads.

    tiny:  BPE tokenizer on the analyses -> stage "text": the small Qwen2 learns the analyses as a
           text-only LM (all parameters) -> stage "vision": base frozen, adapter + LoRA learn to
           write the analysis of an embedding.
    full:  Qwen2-1.5B from local files -> stage "vision" only.

Both stages use the model's own `splice` (the text stage with zero visual tokens), AdamW with a
linear warmup and a cosine decay, gradient accumulation, bf16 autocast on CUDA devices that
support it (float32 elsewhere), a validation loss after every epoch and a checkpoint after every
epoch. Checkpoints hold safetensors and JSON only: the trainable tensors, AdamW's moment tensors
and the RNG state as safetensors, the scalars (stage, epoch, step, learning-rate schedule) as
JSON, so `resume=True` continues exactly where the last epoch ended.

    out_dir/
      model_card.json, adapter*, lora/, tokenizer/, base/   the model (artifacts.save_model)
      split.json            held-out parcels and the store's fingerprint
      train_log.jsonl       one line per optimizer step, one per epoch (with validation loss)
      checkpoint/           state.json, trainable-*.safetensors, optimizer-*.safetensors,
                            tokenizer/ and base/ (tiny: the tokenizer and the stage-1 LM)
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm import tqdm
from transformers import AutoTokenizer, PreTrainedTokenizerBase, Qwen2ForCausalLM

from indexer.analysis import fact_spans
from indexer.store import Store
from indexer.core.errors import InputError, WeightsError
from xvision_model.adapter import AdapterConfig, VisionAdapter
from xvision_model.artifacts import CARD_NAME, save_model
from xvision_model.finetune.augment import augmented_pairs
from xvision_model.finetune.dataset import (
    PROMPTS,
    PairSet,
    Split,
    build_pairs,
    languages,
    same_store,
    with_unobserved,
)
from xvision_model.finetune.numbers import DecimalTokens, decimal_mask, ordinal_loss
from xvision_model.finetune.profiles import Profile, StageSettings, get_profile
from xvision_model.lm import apply_lora, load_base_lm, resolve_dtype, tiny_qwen2_config
from xvision_model.model import XVisionModel
from xvision_model.splice import IGNORE_INDEX, splice
from xvision_model.tokenizer import load_tokenizer, train_tokenizer

LOG_NAME = "train_log.jsonl"
CHECKPOINT_DIR = "checkpoint"
STATE_NAME = "state.json"
CHECKPOINT_FORMAT = 1


@dataclass
class TrainResult:
    """What a `train` call produced."""

    model_dir: Path
    profile: str
    lang: str
    epochs: int
    steps: int
    train_loss: float | None
    val_loss: float | None
    n_train: int
    n_val: int
    held_out_parcels: int
    seconds: float
    resumed: bool
    device: str

    def to_dict(self) -> dict:
        return {**asdict(self), "model_dir": str(self.model_dir)}


# -- tokenized examples ----------------------------------------------------------------------
@dataclass
class Encoded:
    """A PairSet as tensors and token rows (row i of everything is pair i).

    `facts[i][j]` says whether target token j of row i states a fact (`indexer.analysis.fact_spans`:
    a class key phrase or a number); None when not asked for (`_encode(marks=True)`) or when the
    tokenizer cannot give character offsets.
    """

    features: torch.Tensor
    prompts: list[list[int]]
    targets: list[list[int]]
    stats: torch.Tensor  # [N, K] standardized record statistics (NaN: missing)
    source: PairSet | None = None
    tokenizer: PreTrainedTokenizerBase | None = None
    max_target: int | None = None
    facts: list[list[bool]] | None = None

    def __len__(self) -> int:
        return len(self.prompts)

    def rephrased(self, share: float, epoch: int, seed: int) -> Encoded:
        """A copy whose targets are, for `share` of the rows, the analysis in a fresh phrasing for `epoch`."""
        if share <= 0 or self.source is None:
            return self
        pick = np.random.default_rng([seed, epoch]).random(len(self)) < share
        rows = np.flatnonzero(pick).tolist()
        texts = [self.source.rephrase(self.source.pairs[i], variant=epoch + 1) for i in rows]
        targets, facts = list(self.targets), None if self.facts is None else list(self.facts)
        new_targets, new_facts = _tokenize_targets(self.tokenizer, texts, self.max_target, marks=facts is not None)
        for k, i in enumerate(rows):
            targets[i] = new_targets[k]
            if facts is not None:
                facts[i] = new_facts[k]
        return dataclasses.replace(self, targets=targets, facts=facts)


def _tokenize_targets(tokenizer: PreTrainedTokenizerBase, texts: list[str], max_target: int | None,
                      marks: bool = False) -> tuple[list[list[int]], list[list[bool]] | None]:
    """Token ids of `texts` (cut to `max_target`) and, with `marks`, which of them state a fact
    (None without marks or without character offsets, i.e. with a slow tokenizer)."""
    offsets = marks and bool(getattr(tokenizer, "is_fast", False))
    if not texts:
        return [], ([] if offsets else None)
    encoded = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=offsets)
    ids = [row[:max_target] if max_target is not None else row for row in encoded["input_ids"]]
    if not offsets:
        return ids, None
    facts = []
    for text, row, token_offsets in zip(texts, ids, encoded["offset_mapping"]):
        # A token states a fact when any of its characters lies in a fact span: count the marked
        # characters up to each offset once, then every token is one subtraction.
        marked = np.zeros(len(text), dtype=np.int32)
        for start, end in fact_spans(text):
            marked[start:end] = 1
        upto = np.concatenate(([0], np.cumsum(marked)))
        bounds = np.asarray(token_offsets[:len(row)], dtype=np.int64).reshape(-1, 2)
        facts.append((upto[bounds[:, 1]] > upto[bounds[:, 0]]).tolist())
    return ids, facts


def _encode(pairs: PairSet, tokenizer: PreTrainedTokenizerBase, max_target: int | None,
            stat_scale: tuple[np.ndarray, np.ndarray], marks: bool = False) -> Encoded:
    """`pairs` tokenized; `marks`: also mark the target tokens that state a fact."""
    prompts: dict[str, list[int]] = {}
    for p in pairs.pairs:
        if p.prompt not in prompts:
            prompts[p.prompt] = tokenizer(p.prompt, add_special_tokens=False)["input_ids"]
    rows = [p.row for p in pairs.pairs]
    targets, facts = _tokenize_targets(tokenizer, [p.text for p in pairs.pairs], max_target, marks)
    mean, std = stat_scale
    stats = torch.from_numpy(((pairs.stats[rows] - mean) / std).astype(np.float32))
    return Encoded(torch.from_numpy(pairs.features[rows]).float(), [prompts[p.prompt] for p in pairs.pairs], targets,
                   stats, pairs, tokenizer, max_target, facts)


def _stat_scale(pairs: PairSet) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of each statistic over the training records (for the auxiliary targets)."""
    values = pairs.stats[sorted({p.row for p in pairs.pairs})]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
        mean, std = np.nanmean(values, axis=0), np.nanstd(values, axis=0)
    return np.nan_to_num(mean), np.where(np.isfinite(std) & (std > 1e-6), std, 1.0)


#: Optimizer steps whose rows are sorted by length together (see `_length_bucketed`).
BUCKET_POOL_STEPS = 32


# -- the pieces of one step ----------------------------------------------------------------------
@dataclass
class _Context:
    out_dir: Path
    checkpoint: Path
    device: torch.device
    autocast: bool
    progress: bool
    seed: int
    noise_scale: float  # RMS of the training embeddings (feature noise is relative to it)
    started: float
    aux: nn.Module | None = None  # training-only head: mean visual token -> record statistics
    decimals: DecimalTokens | None = None  # the tokenizer's two-digit decimal tokens (ordinal targets)


def _token_loss(model: XVisionModel, data: Encoded, idx: list[int], *, visual: bool, ctx: _Context,
                settings: StageSettings | None = None) -> tuple[torch.Tensor, int, torch.Tensor | None]:
    """Summed cross-entropy over the target tokens of rows `idx`, their count, and the mean
    squared error of the auxiliary head (None without one, or for text-only batches).

    With `settings` (training) the embeddings are perturbed, label smoothing applies and, with
    `settings.decimal_sigma`, decimals after a "." get ordinal targets (`finetune.numbers`).
    """
    prompts = [data.prompts[i] for i in idx]
    targets = [data.targets[i] for i in idx]
    embed = model.lm.get_input_embeddings()
    aux_loss = None
    with torch.autocast(device_type=ctx.device.type, dtype=torch.bfloat16, enabled=ctx.autocast):
        if visual:
            features = data.features[idx].to(ctx.device)
            if settings is not None and settings.feature_noise > 0:
                # Relative to each dimension's own spread when the adapter standardizes its input
                # (a dimension that moves by hundredths would drown in noise scaled to the RMS).
                adapter = model.adapter
                scale = adapter.input_std.to(features.dtype) if adapter.config.standardize else ctx.noise_scale
                features = features + torch.randn_like(features) * (settings.feature_noise * scale)
            if settings is not None and settings.feature_dropout > 0:
                features = F.dropout(features, settings.feature_dropout, training=True)
            tokens = model.adapter(features)
            if ctx.aux is not None:
                wanted = data.stats[idx].to(ctx.device)
                known = torch.isfinite(wanted)
                if known.any():
                    guess = ctx.aux(tokens.float().mean(dim=1))
                    aux_loss = F.mse_loss(guess[known], wanted[known])
        else:
            # Text-only LM: zero visual tokens through the same splice, so positions and padding match.
            tokens = torch.zeros(len(idx), 0, embed.embedding_dim, device=ctx.device, dtype=embed.weight.dtype)
        batch = splice(tokens, prompts, embed, target_ids=targets, eos_id=model.eos_token_id, pad_id=model.pad_token_id)
        logits = model.lm(inputs_embeds=batch.inputs_embeds, attention_mask=batch.attention_mask,
                          position_ids=batch.position_ids, use_cache=False).logits
    labels = batch.labels[:, 1:]
    keep = labels != IGNORE_INDEX
    # Only target positions reach the vocabulary-sized float32 cross-entropy.
    picked, wanted = logits[:, :-1][keep].float(), labels[keep]
    smoothing = settings.label_smoothing if settings is not None else 0.0
    sigma = settings.decimal_sigma if settings is not None else 0.0
    weights = _fact_weights(data, idx, batch.labels, settings)[:, 1:][keep]
    loss = torch.zeros((), device=picked.device)
    if sigma > 0 and ctx.decimals is not None:
        ordinal = decimal_mask(ctx.decimals, wanted, batch.labels[:, :-1][keep])
        loss = ordinal_loss(picked[ordinal], wanted[ordinal], ctx.decimals, sigma, weights[ordinal])
        picked, wanted, weights = picked[~ordinal], wanted[~ordinal], weights[~ordinal]
    token_losses = F.cross_entropy(picked, wanted, reduction="none", label_smoothing=smoothing)
    loss = loss + (token_losses * weights).sum()
    return loss, int(keep.sum()), aux_loss


def _fact_weights(data: Encoded, idx: list[int], labels: torch.Tensor, settings: StageSettings | None) -> torch.Tensor:
    """[B, T] loss weights aligned with `labels`: `settings.fact_weight` on target tokens that
    state a fact, 1 elsewhere (all ones for validation, or without fact marks)."""
    weights = torch.ones(labels.shape, device=labels.device)
    if settings is None or settings.fact_weight == 1.0 or data.facts is None:
        return weights
    # splice right-aligns each row as [... | target | EOS]: the target starts at T - (len + 1).
    length = labels.shape[1]
    for r, i in enumerate(idx):
        marks = torch.tensor(data.facts[i], dtype=torch.bool, device=labels.device)
        start = length - len(data.facts[i]) - 1
        weights[r, start:length - 1][marks] = settings.fact_weight
    return weights


def _length_bucketed(targets: list[list[int]], per_step: int, generator: torch.Generator,
                     pool_steps: int = BUCKET_POOL_STEPS) -> list[list[int]]:
    """Row indices of one epoch, cut into optimizer steps of `per_step` rows of similar length.

    The rows are shuffled, then each pool of `pool_steps` consecutive steps is sorted by target
    length before it is cut, and the steps are shuffled again: batches stay random in content
    and order, but a micro-batch pads to a length close to each of its rows (random batches of
    Hesbaye analyses waste about 11-13 % of their target positions on padding).
    """
    order = torch.randperm(len(targets), generator=generator).tolist()
    pool = max(1, pool_steps) * per_step
    steps: list[list[int]] = []
    for start in range(0, len(order), pool):
        block = sorted(order[start:start + pool], key=lambda i: len(targets[i]))
        steps.extend(block[i:i + per_step] for i in range(0, len(block), per_step))
    shuffle = torch.randperm(len(steps), generator=generator).tolist()
    return [steps[i] for i in shuffle]


def _lr_at(step: int, total: int, settings: StageSettings) -> float:
    """Linear warmup over `warmup_fraction` of the steps, then cosine decay to `min_lr_ratio * lr`."""
    warmup = max(1, round(settings.warmup_fraction * total)) if settings.warmup_fraction > 0 else 0
    if step < warmup:
        return settings.lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    floor = settings.min_lr_ratio
    return settings.lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def _make_optimizer(params: dict[str, nn.Parameter], settings: StageSettings) -> torch.optim.AdamW:
    # No decay on biases and norms (1-D tensors), as usual for transformers.
    decay = [p for n, p in params.items() if p.dim() >= 2]
    other = [p for n, p in params.items() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": settings.weight_decay}, {"params": other, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=settings.lr, betas=(0.9, 0.95))


@torch.no_grad()
def _validation_loss(model: XVisionModel, data: Encoded, *, visual: bool, ctx: _Context, batch_size: int) -> float | None:
    if len(data) == 0:
        return None
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(data), batch_size):
        loss, n, _ = _token_loss(model, data, list(range(start, min(start + batch_size, len(data)))), visual=visual, ctx=ctx)
        total, count = total + float(loss), count + n
    model.train(was_training)
    return total / max(1, count)


# -- checkpoints ---------------------------------------------------------------------------------
def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _read_state(checkpoint: Path) -> dict | None:
    path = checkpoint / STATE_NAME
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise WeightsError(f"{path}: unreadable checkpoint state ({exc})") from None
    if state.get("format") != CHECKPOINT_FORMAT:
        raise WeightsError(f"{path}: unsupported checkpoint format {state.get('format')!r}")
    return state


def _rng_tensors() -> dict[str, torch.Tensor]:
    out = {"rng/cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        out["rng/cuda"] = torch.cuda.get_rng_state()
    return out


def _save_checkpoint(ctx: _Context, state: dict, params: dict[str, nn.Parameter] | None,
                     optimizer: torch.optim.Optimizer | None) -> None:
    """Write the tensors under step-numbered names, then `state.json` (the commit point)."""
    ckpt = ctx.checkpoint
    ckpt.mkdir(parents=True, exist_ok=True)
    files = {}
    if params is not None and optimizer is not None:
        tag = f"{state['stage']}-{state['step']:07d}"
        trainable = {n: p.detach().cpu().contiguous() for n, p in params.items()}
        moments = _rng_tensors()
        for name, p in params.items():
            for key, value in optimizer.state.get(p, {}).items():
                if torch.is_tensor(value):
                    moments[f"{name}/{key}"] = value.detach().cpu().contiguous()
        files = {"trainable": f"trainable-{tag}.safetensors", "optimizer": f"optimizer-{tag}.safetensors"}
        for key, tensors in (("trainable", trainable), ("optimizer", moments)):
            tmp = ckpt / (files[key] + ".tmp")
            save_file(tensors, str(tmp))
            os.replace(tmp, ckpt / files[key])
    _write_json(ckpt / STATE_NAME, {**state, "format": CHECKPOINT_FORMAT, "files": files})
    for stale in ckpt.glob("*.safetensors"):
        if stale.name not in files.values():
            stale.unlink(missing_ok=True)


def _load_params(params: dict[str, nn.Parameter], path: Path) -> None:
    if not path.is_file():
        raise WeightsError(f"{path}: checkpoint tensors missing; cannot resume")
    state = load_file(str(path))
    if set(state) != set(params):
        raise WeightsError(
            f"{path}: checkpoint does not match the model being resumed (missing "
            f"{sorted(set(params) - set(state))[:3]}, unexpected {sorted(set(state) - set(params))[:3]})"
        )
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(state[name].to(p.device, p.dtype))


def _load_optimizer(optimizer: torch.optim.Optimizer, params: dict[str, nn.Parameter], path: Path) -> None:
    tensors = load_file(str(path))
    for name, p in params.items():
        entry = {k.rsplit("/", 1)[1]: v for k, v in tensors.items() if k.rsplit("/", 1)[0] == name}
        if entry:
            # AdamW keeps `step` on the CPU unless capturable/fused; the moments live with the parameter.
            optimizer.state[p] = {k: (v if k == "step" else v.to(p.device)) for k, v in entry.items()}
    torch.set_rng_state(tensors["rng/cpu"])
    if torch.cuda.is_available() and "rng/cuda" in tensors:
        torch.cuda.set_rng_state(tensors["rng/cuda"])


# -- one stage -----------------------------------------------------------------------------------
def _trainable(module: nn.Module) -> dict[str, nn.Parameter]:
    return {n: p for n, p in module.named_parameters() if p.requires_grad}


def _run_stage(stage: str, settings: StageSettings, model: XVisionModel, train_data: Encoded,
               val_data: Encoded, ctx: _Context, state: dict, log) -> dict:
    """Train `stage` from `state` (epoch, step; resumed tensors already loaded) to its last epoch."""
    visual = stage == "vision"
    module = model if visual else model.lm
    params = _trainable(module)
    if visual and ctx.aux is not None:
        params.update({f"aux_head.{n}": p for n, p in ctx.aux.named_parameters()})
    optimizer = _make_optimizer(params, settings)
    if state.get("files"):
        _load_optimizer(optimizer, params, ctx.checkpoint / state["files"]["optimizer"])
    micro = settings.batch_size
    per_step = micro * settings.grad_accum
    steps_per_epoch = max(1, math.ceil(len(train_data) / per_step))
    total = steps_per_epoch * settings.epochs
    step, epoch = int(state.get("step", 0)), int(state.get("epoch", 0))
    model.train()
    bar = tqdm(total=total, initial=min(step, total), desc=f"train {stage}", unit="step", disable=not ctx.progress)
    last_train = state.get("train_loss")
    try:
        for epoch in range(epoch, settings.epochs):
            # The order of an epoch depends only on the seed and the epoch: a resumed run sees
            # the same batches as an uninterrupted one.
            generator = torch.Generator().manual_seed(ctx.seed * 7919 + epoch * 31 + (1 if visual else 0))
            epoch_data = train_data.rephrased(settings.rephrase, epoch + (1000 if visual else 0), ctx.seed)
            epoch_loss, epoch_tokens = 0.0, 0
            for chunk in _length_bucketed(epoch_data.targets, per_step, generator):
                micro_batches = [chunk[i:i + micro] for i in range(0, len(chunk), micro)]
                n_tokens = sum(len(epoch_data.targets[i]) + 1 for i in chunk)
                for group in optimizer.param_groups:
                    group["lr"] = _lr_at(step, total, settings)
                step_loss, step_aux = 0.0, None
                for idx in micro_batches:
                    loss, _, aux_loss = _token_loss(model, epoch_data, idx, visual=visual, ctx=ctx, settings=settings)
                    # Token-weighted mean over the whole accumulated step.
                    total_loss = loss / n_tokens
                    if aux_loss is not None:
                        total_loss = total_loss + settings.aux_weight * aux_loss * len(idx) / len(chunk)
                        step_aux = (step_aux or 0.0) + aux_loss.item() * len(idx) / len(chunk)
                    total_loss.backward()
                    step_loss += loss.item()
                torch.nn.utils.clip_grad_norm_(list(params.values()), 1.0)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                epoch_loss, epoch_tokens = epoch_loss + step_loss, epoch_tokens + n_tokens
                entry = {"stage": stage, "epoch": epoch + 1, "step": step, "loss": round(step_loss / n_tokens, 5),
                         "lr": optimizer.param_groups[0]["lr"]}
                if step_aux is not None:
                    entry["aux_mse"] = round(step_aux, 5)
                log(entry)
                bar.update(1)
                bar.set_postfix(loss=f"{step_loss / n_tokens:.3f}")
            val = _validation_loss(model, val_data, visual=visual, ctx=ctx, batch_size=micro)
            last_train = epoch_loss / max(1, epoch_tokens)
            log({"stage": stage, "event": "epoch", "epoch": epoch + 1, "step": step,
                 "train_loss": round(last_train, 5), "val_loss": None if val is None else round(val, 5)})
            if val is not None:
                bar.set_postfix(loss=f"{last_train:.3f}", val=f"{val:.3f}")
            state = {**state, "stage": stage, "epoch": epoch + 1, "step": step, "train_loss": last_train,
                     "val_loss": val, "epochs": settings.epochs}
            _save_checkpoint(ctx, state, params, optimizer)
    finally:
        bar.close()
    return {**state, "stage": stage, "step": step, "train_loss": last_train}


# -- building the model ----------------------------------------------------------------------------
def _pretrained_tokenizer(source: str) -> PreTrainedTokenizerBase:
    try:
        return AutoTokenizer.from_pretrained(source, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise WeightsError(f"{source}: cannot load the base model's tokenizer ({' '.join(str(exc).split())[:200]})") from None


def _vision_model(lm, tokenizer, profile: Profile, features: torch.Tensor, seed: int, device: torch.device) -> XVisionModel:
    """Adapter (its input scale from the training `features`) + LoRA on `lm`."""
    torch.manual_seed(seed + 1)
    hidden = lm.config.hidden_size
    adapter = VisionAdapter(AdapterConfig(mode=profile.adapter_mode, in_dim=features.shape[-1], lm_hidden=hidden,
                                          num_tokens=profile.num_tokens, hidden_mult=profile.adapter_hidden_mult,
                                          depth=profile.adapter_depth, standardize=profile.adapter_standardize))
    if profile.adapter_standardize:
        adapter.set_input_scale(features)
    lm = apply_lora(lm, profile.lora)
    return XVisionModel(adapter, lm, tokenizer).to(device)


def _log_writer(path: Path, ctx_started: float):
    def log(entry: dict) -> None:
        entry = {**entry, "elapsed_s": round(time.perf_counter() - ctx_started, 2)}
        with path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")
    return log


def _device() -> tuple[torch.device, bool]:
    if torch.cuda.is_available():
        return torch.device("cuda"), torch.cuda.is_bf16_supported()
    return torch.device("cpu"), False


def train(
    store_dir: str | Path,
    out_dir: str | Path,
    profile: str | Profile = "tiny",
    epochs: int | None = None,
    lr: float | None = None,
    resume: bool = False,
    lang: str = "en",
    progress: bool = True,
    seed: int = 0,
    *,
    base_model: str | None = None,
    batch_size: int | None = None,
    imagery: Sequence[str | Path] | None = None,
) -> TrainResult:
    """Train a generator on the store in `store_dir` and write a complete model directory to `out_dir`.

    `profile`: "tiny" (default, offline), "full" or a `Profile`. `epochs`, `lr` and `batch_size`
    override the last (vision) stage's settings; the tiny profile's text stage keeps its own.
    `lang`: "en", "fr" or "both" (each record twice). `base_model`: the full profile's Qwen2
    (a directory or a cached hub id; default $XVISION_QWEN2_PATH, then Qwen/Qwen2-1.5B).
    `resume=True` continues from `out_dir/checkpoint` (same store, profile and language); asking
    for more epochs than were run extends training. Without it, any previous checkpoint and log
    in `out_dir` are replaced. `imagery`: the rasters the store was indexed from (files or
    folders); with it, each training parcel's chip is re-read and the profile's spectral
    augmentation (`finetune.augment`) adds perturbed copies with recomputed analyses.

    Raises InputError for an empty store or one without valid records, WeightsError when the
    full profile's base model is not available locally.
    """
    started = time.perf_counter()
    prof = get_profile(profile).with_overrides(epochs=epochs, lr=lr, batch_size=batch_size)
    langs = languages(lang)
    out_dir = Path(out_dir)
    checkpoint = out_dir / CHECKPOINT_DIR
    store = Store.open(store_dir)
    pairs = build_pairs(store, lang)
    source = prof.resolve_base_model(base_model)
    if prof.encoder is not None and store.encoder_id != prof.encoder:
        warnings.warn(f"profile {prof.name!r} is meant for encoder {prof.encoder!r}; "
                      f"{store.path} holds {store.encoder_id!r} embeddings", stacklevel=2)
    if prof.adapter_mode == "patch":
        raise InputError(
            "adapter mode 'patch' needs patch tokens, but a store keeps only each record's global "
            "embedding; train with adapter_mode='gap'"
        )

    state = _read_state(checkpoint) if resume else None
    if state is not None and imagery is None and state.get("imagery"):
        imagery = state["imagery"]  # resume augments exactly as the interrupted run did
    if resume and state is None:
        raise InputError(f"{checkpoint}: no checkpoint to resume from; run without --resume first")
    if state is not None:
        for key, value in (("profile", prof.name), ("lang", lang)):
            if state.get(key) != value:
                raise InputError(f"{checkpoint}: the checkpoint was trained with {key}={state.get(key)!r}, not {value!r}")
        split = Split.load(out_dir)
        if split is None or not same_store(split.store, Split.of(store, pairs).store):
            raise InputError(f"{out_dir}: the checkpoint was trained on another store than {store.path}")
    else:
        out_dir.mkdir(parents=True, exist_ok=True)
        for stale in (out_dir / LOG_NAME, checkpoint / STATE_NAME):
            stale.unlink(missing_ok=True)
        split = Split.of(store, pairs, prof.val_fraction)
        split.save(out_dir)
    train_pairs = pairs.select(split.held_out, keep=False)
    if imagery and prof.augment is not None:
        train_pairs = augmented_pairs(train_pairs, store, imagery, prof.augment, seed=seed, progress=progress)
    elif not imagery and prof.augment is not None and prof.augment.copies:
        warnings.warn(f"no imagery given: profile {prof.name!r} trains on the stored embeddings only, without "
                      "its spectral augmentation (pass the indexed rasters: xvision train --imagery DIR); "
                      "expect weaker analyses on imagery unlike the store's", stacklevel=2)
    train_pairs = with_unobserved(train_pairs, prof.unobserved_share, seed)
    val_pairs = pairs.select(split.held_out, keep=True)
    if len(train_pairs) == 0:
        raise InputError(f"{store.path}: every parcel is held out for validation; index more parcels")

    device, bf16 = _device()
    ctx = _Context(out_dir=out_dir, checkpoint=checkpoint, device=device, autocast=bf16, progress=progress,
                   seed=seed, noise_scale=float(np.sqrt(np.mean(train_pairs.features[[p.row for p in train_pairs.pairs]] ** 2))),
                   started=started)
    log = _log_writer(out_dir / LOG_NAME, started)
    base_state = {"profile": prof.name, "lang": lang, "seed": seed, "stages_done": [],
                  "imagery": [str(p) for p in imagery] if imagery else None}
    state = state or {**base_state, "stage": "text" if prof.builds_base else "vision", "epoch": 0, "step": 0}
    log({"event": "start", "resume": resume, "profile": prof.name, "lang": lang, "store": str(store.path),
         "n_train": len(train_pairs), "n_val": len(val_pairs), "held_out_parcels": len(split.held_out),
         "device": str(device), "from_stage": state["stage"], "from_epoch": state["epoch"]})

    # -- tokenizer and base LM
    torch.manual_seed(seed)
    if prof.builds_base:
        tiny = prof.tiny_lm
        if (checkpoint / "tokenizer" / "tokenizer.json").is_file() and resume:
            tokenizer = load_tokenizer(checkpoint / "tokenizer")
        else:
            texts = [p.text for p in train_pairs.pairs] + [PROMPTS[code] for code in langs]
            tokenizer = train_tokenizer(texts, vocab_size=tiny.vocab_size)
            tokenizer.save_pretrained(str(checkpoint / "tokenizer"))
        if "text" in state["stages_done"]:
            lm = load_base_lm(checkpoint / "base", dtype="float32")
        else:
            lm = Qwen2ForCausalLM(tiny_qwen2_config(
                len(tokenizer), hidden=tiny.hidden, layers=tiny.layers, heads=tiny.heads, kv_heads=tiny.kv_heads,
                intermediate=tiny.intermediate, max_positions=tiny.max_positions,
                pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id))
    else:
        lm = load_base_lm(source, dtype=prof.lm_dtype)
        tokenizer = _pretrained_tokenizer(source)
    lm = lm.to(device)

    # The decimal table scans the whole vocabulary (151k entries for Qwen2): only when a stage uses it.
    if any(stage.decimal_sigma > 0 for stage in prof.stages):
        decimals = DecimalTokens.of(tokenizer)
        ctx.decimals = None if decimals is None else decimals.to(device)
    max_positions = getattr(lm.config, "max_position_embeddings", None) or 10**9
    longest_prompt = max(len(tokenizer(PROMPTS[c], add_special_tokens=False)["input_ids"]) for c in langs)
    max_target = max_positions - prof.num_tokens - longest_prompt - 1
    scale = _stat_scale(train_pairs)
    # Fact marks cost a scan of every text per epoch: only when a stage weights facts.
    marks = any(stage.fact_weight != 1.0 for stage in prof.stages)
    train_data = _encode(train_pairs, tokenizer, max_target, scale, marks)
    val_data = _encode(val_pairs, tokenizer, max_target, scale)
    longest_target = max(len(t) for t in train_data.targets + val_data.targets)

    # -- stage 1 (tiny): the base LM learns the analyses as text
    if prof.builds_base and "text" not in state["stages_done"]:
        holder = XVisionModel(VisionAdapter(AdapterConfig(in_dim=train_data.features.shape[1],
                                                          lm_hidden=lm.config.hidden_size)), lm, tokenizer)
        if state["stage"] == "text" and state.get("files"):
            _load_params(_trainable(lm), checkpoint / state["files"]["trainable"])
        state = _run_stage("text", prof.text_stage, holder, train_data, val_data, ctx, state, log)
        lm.save_pretrained(str(checkpoint / "base"), safe_serialization=True)
        state = {**state, "stage": "vision", "epoch": 0, "step": 0, "files": {},
                 "stages_done": state["stages_done"] + ["text"], "text_stage": {
                     "train_loss": state.get("train_loss"), "val_loss": state.get("val_loss"), "steps": state["step"]}}
        _save_checkpoint(ctx, state, None, None)

    # -- stage 2: base frozen, adapter + LoRA learn to describe an embedding
    lm.requires_grad_(False)
    model = _vision_model(lm, tokenizer, prof, train_data.features, seed, device)
    params = _trainable(model)
    if prof.vision_stage.aux_weight > 0:
        torch.manual_seed(seed + 2)
        ctx.aux = nn.Linear(lm.config.hidden_size, train_data.stats.shape[1]).to(device)
        params.update({f"aux_head.{n}": p for n, p in ctx.aux.named_parameters()})
    if state.get("files"):
        _load_params(params, checkpoint / state["files"]["trainable"])
    state = _run_stage("vision", prof.vision_stage, model, train_data, val_data, ctx, state, log)

    # -- the model directory
    model.eval()
    model_dir = save_model(model, out_dir, encoder_id=store.encoder_id, profile=prof.name, base_model=source)
    seconds = time.perf_counter() - started
    card_path = out_dir / CARD_NAME
    card = json.loads(card_path.read_text(encoding="utf-8"))
    card["training"] = {
        "store": split.store,
        "split": "split.json",
        "lang": lang,
        "prompts": {code: PROMPTS[code] for code in langs},
        "max_new_tokens": int(math.ceil(longest_target * prof.max_new_tokens_factor)) + 1,
        "n_train": len(train_pairs),
        "n_val": len(val_pairs),
        "held_out_parcels": len(split.held_out),
        "stages": {**({"text": state.get("text_stage")} if prof.builds_base else {}),
                   "vision": {"epochs": prof.vision_stage.epochs, "steps": state["step"],
                              "train_loss": state.get("train_loss"), "val_loss": state.get("val_loss")}},
        "augmentation": ({**asdict(prof.augment), "imagery": [str(p) for p in imagery]}
                         if imagery and prof.augment else None),
        "embedding_rms": ctx.noise_scale,
        "profile": prof.to_dict(),
        "seed": seed,
        "device": str(device),
        "dtype": "bfloat16 autocast" if ctx.autocast else str(resolve_dtype(prof.lm_dtype)).removeprefix("torch."),
        "seconds": round(seconds, 1),
    }
    _write_json(card_path, card)
    log({"event": "done", "model_dir": str(model_dir), "seconds": round(seconds, 1)})
    return TrainResult(
        model_dir=model_dir, profile=prof.name, lang=lang, epochs=prof.vision_stage.epochs, steps=state["step"],
        train_loss=state.get("train_loss"), val_loss=state.get("val_loss"), n_train=len(train_pairs),
        n_val=len(val_pairs), held_out_parcels=len(split.held_out), seconds=seconds, resumed=resume, device=str(device),
    )
