"""Training: a store's (embedding, analysis) pairs -> a model directory `load_model` reads.

    tiny:  BPE tokenizer on the analyses -> stage "text": the small Qwen2 learns the analyses as a
           text-only LM (all parameters) -> stage "vision": base frozen, adapter + LoRA learn to
           write the analysis of an embedding.
    full:  Qwen2-1.5B from local files -> stage "vision" only.

    out_dir/
      model_card.json, adapter*, lora/, tokenizer/, base/   the model (artifacts.save_model)
      split.json            held-out parcels and the store's fingerprint
      train_log.jsonl       one line per optimizer step, one per epoch (with the validation loss
                            after the epochs the stage validates, `StageSettings.validates_after`)
      checkpoint/           see `finetune.checkpoint`

The pieces: pairs and split (`dataset`), re-read and augmented chips (`augment`), token rows
(`tokens`), the loss through the model's own splice (`loss`), batches and schedule (`batches`),
checkpoints (`checkpoint`), model building (`build`). This file is the loop.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from indexer.core.errors import InputError
from indexer.store import Store
from xvision_model.artifacts import StageRecord, TrainingCard, quiet_transformers, save_model
from xvision_model.finetune import build
from xvision_model.finetune.augment import augmented_pairs, require_sources
from xvision_model.finetune.batches import length_bucketed, lr_at, make_optimizer, steps_per_epoch
from xvision_model.finetune.checkpoint import (
    CHECKPOINT_DIR, STATE_NAME, load_optimizer, load_params, read_state, save_checkpoint, trainable,
)
from xvision_model.finetune.dataset import (
    PROMPTS, PairSet, Split, build_pairs, class_targets, languages, one_language_each, same_store, with_unobserved,
)
from xvision_model.finetune.loss import Objective, token_loss, validation_loss
from xvision_model.finetune.numbers import DecimalTokens
from xvision_model.finetune.profiles import Profile, StageSettings, get_profile
from xvision_model.finetune.seeds import torch_generator
from xvision_model.finetune.tokens import Encoded, token_rows
from xvision_model.model import XVisionModel

LOG_NAME = "train_log.jsonl"
#: Generation budget: this factor times the longest training target, in tokens.
MAX_NEW_TOKENS_FACTOR = 1.3
STAGE_NUMBER = {"text": 0, "vision": 1}


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


class _Log:
    """train_log.jsonl: one JSON object per line, with the seconds since the run started."""

    def __init__(self, path: Path, started: float) -> None:
        self.path, self.started = path, started

    def __call__(self, entry: dict) -> None:
        entry = {**entry, "elapsed_s": round(time.perf_counter() - self.started, 2)}
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")


def run_stage(stage: str, settings: StageSettings, model: XVisionModel, params: dict, train_data: Encoded,
              val_data: Encoded, objective: Objective, state: dict, checkpoint: Path, log: _Log, *,
              seed: int, progress: bool) -> dict:
    """Train `stage` from `state` (epoch, step; resumed tensors already loaded) to its last epoch."""
    visual = stage == "vision"
    optimizer = make_optimizer(params, settings)
    if state.get("files"):
        load_optimizer(optimizer, params, checkpoint / state["files"]["optimizer"])
    micro, per_step = settings.batch_size, settings.batch_size * settings.grad_accum
    total = steps_per_epoch(len(train_data), settings) * settings.epochs
    step, start_epoch = int(state.get("step", 0)), int(state.get("epoch", 0))
    model.train()
    with tqdm(total=total, initial=min(step, total), desc=f"train {stage}", unit="step", disable=not progress) as bar:
        for epoch in range(start_epoch, settings.epochs):
            # Batches and phrasings depend only on the seed, stage and epoch: a resumed run sees
            # the same ones as an uninterrupted run.
            epoch_data = train_data.rephrased(settings.rephrase, seed, variant=1 + epoch + 1000 * STAGE_NUMBER[stage])
            batches = length_bucketed(epoch_data.targets, per_step, torch_generator(seed, "batches", STAGE_NUMBER[stage], epoch))
            epoch_loss, epoch_tokens = 0.0, 0
            for chunk in batches:
                n_tokens = sum(len(epoch_data.targets[i]) + 1 for i in chunk)  # + EOS
                for group in optimizer.param_groups:
                    group["lr"] = lr_at(step, total, settings)
                step_loss, step_aux = 0.0, None
                for start in range(0, len(chunk), micro):
                    idx = chunk[start:start + micro]
                    loss, _, aux = token_loss(model, epoch_data, idx, visual=visual, objective=objective, settings=settings)
                    share = len(idx) / len(chunk)
                    total_loss = loss / n_tokens  # token-weighted mean over the whole accumulated step
                    if aux is not None:
                        total_loss = total_loss + settings.aux_weight * aux * share
                        step_aux = (step_aux or 0.0) + aux.item() * share
                    total_loss.backward()
                    step_loss += loss.item()
                torch.nn.utils.clip_grad_norm_(list(params.values()), 1.0)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                epoch_loss, epoch_tokens = epoch_loss + step_loss, epoch_tokens + n_tokens
                log({"stage": stage, "epoch": epoch + 1, "step": step, "loss": round(step_loss / n_tokens, 5),
                     "lr": optimizer.param_groups[0]["lr"], **({} if step_aux is None else {"aux_mse": round(step_aux, 5)})})
                bar.update(1)
                bar.set_postfix(loss=f"{step_loss / n_tokens:.3f}")
            val = (validation_loss(model, val_data, visual=visual, objective=objective, batch_size=micro)
                   if settings.validates_after(epoch + 1) else None)
            train_loss = epoch_loss / max(1, epoch_tokens)
            log({"stage": stage, "event": "epoch", "epoch": epoch + 1, "step": step, "train_loss": round(train_loss, 5),
                 "val_loss": None if val is None else round(val, 5)})
            state = save_checkpoint(checkpoint, {**state, "stage": stage, "epoch": epoch + 1, "step": step,
                                                 "train_loss": train_loss, "val_loss": val}, params, optimizer)
    return state


def train(
    store_dir: str | Path,
    out_dir: str | Path,
    profile: str | Profile = "tiny",
    epochs: int | None = None,
    lr: float | None = None,
    resume: bool = False,
    lang: str = "both",
    progress: bool = True,
    seed: int = 0,
    *,
    base_model: str | None = None,
    batch_size: int | None = None,
    imagery: Sequence[str | Path] | None = None,
    reread: bool = True,
) -> TrainResult:
    """Train a generator on the store in `store_dir` and write a complete model directory to `out_dir`.

    `profile`: "tiny" (default, offline), "full" or a `Profile`. `epochs`, `lr` and `batch_size`
    override the last (vision) stage's settings; the tiny profile's text stage keeps its own.
    `lang`: "en", "fr" or "both" (the default: each training record is written in one language,
    drawn anew every epoch; validation scores every record in each). `base_model`: the full profile's Qwen2
    (a directory or a cached hub id; default $XVISION_QWEN2_PATH, then Qwen/Qwen2-1.5B).
    `resume=True` continues from `out_dir/checkpoint` (same store, profile and language); asking
    for more epochs than were run extends training. Without it, any previous checkpoint and log
    in `out_dir` are replaced.

    Each training record's chip is re-read from the raster the store recorded as its source, and
    the profile's spectral augmentation (`finetune.augment`) adds perturbed copies with recomputed
    analyses: that is what makes the generator hold up on imagery unlike the store's.
    `imagery`: folders (or files) to look in when the rasters were moved. A source found nowhere
    is an InputError naming it (field "imagery"), raised before any training; `reread=False`
    trains on the stored embeddings only, knowingly (the card records it).

    Raises InputError for an empty store or one without valid records, WeightsError when the
    full profile's base model is not available locally.
    """
    started = time.perf_counter()
    prof = get_profile(profile).with_overrides(epochs=epochs, lr=lr, batch_size=batch_size)
    # Torch's own thread count: on the idle 2-core machine a tiny-profile training step (batch 8 x
    # 90 tokens, forward, backward, AdamW) took 0.12 s on two threads and 0.21 s on one; on the
    # same machine busy with other jobs, 0.8 s on two and 0.23 s on one. To train several models
    # side by side, give each one thread (OMP_NUM_THREADS=1).
    out_dir, langs = Path(out_dir), languages(lang)
    checkpoint = out_dir / CHECKPOINT_DIR
    store = Store.open(store_dir)
    pairs = build_pairs(store, lang, slots=prof.number_slots)
    source = prof.resolve_base_model(base_model)
    if prof.encoder is not None and store.encoder_id != prof.encoder:
        warnings.warn(f"profile {prof.name!r} is meant for encoder {prof.encoder!r}; "
                      f"{store.path} holds {store.encoder_id!r} embeddings", stacklevel=2)

    state, split = _start_or_resume(store, pairs, prof, out_dir, lang, seed, imagery, reread, resume)
    imagery, reread = state["imagery"], state["reread"]  # a resumed run augments as the interrupted one did

    # -- the examples: the stored ones, chips re-read from their sources and augmented, "unusable" ones
    # Each training record in one language (drawn anew every epoch when the stage rephrases).
    train_pairs = one_language_each(pairs.select(split.held_out, keep=False))
    augment = prof.augment if reread and prof.augment is not None and prof.augment.copies else None
    if augment is not None:
        require_sources(store, train_pairs, imagery or ())
        train_pairs = augmented_pairs(train_pairs, store, imagery or (), augment, seed=seed, progress=progress)
    train_pairs = with_unobserved(train_pairs, seed=seed)
    val_pairs = pairs.select(split.held_out, keep=True)
    if len(train_pairs) == 0:
        raise InputError(f"{store.path}: every parcel is held out for validation; index more parcels", path=store.path)
    device, bf16 = build.device()
    log = _Log(out_dir / LOG_NAME, started)
    log({"event": "start", "resume": resume, "profile": prof.name, "lang": lang, "store": str(store.path),
         "n_train": len(train_pairs), "n_val": len(val_pairs), "held_out_parcels": len(split.held_out),
         "device": str(device), "from_stage": state["stage"], "from_epoch": state["epoch"]})

    # -- tokenizer, base LM, token rows
    texts = [p.text for p in train_pairs.pairs] + [PROMPTS[code] for code in langs]
    lm, tokenizer = build.base_lm(prof, source, texts, checkpoint, resume=resume, seed=seed,
                                  text_stage_done="text" in state["stages_done"])
    lm = lm.to(device)
    objective = Objective(device=device, autocast=bf16)
    # The decimal table scans the whole vocabulary (151k entries for Qwen2): only when a stage uses it.
    if any(stage.decimal_sigma > 0 for stage in prof.stages) and (decimals := DecimalTokens.of(tokenizer)):
        objective.decimals = decimals.to(device)
    # Fact marks cost a scan of every text per epoch: only when a stage weights facts.
    marks = any(stage.fact_weight != 1.0 for stage in prof.stages)
    train_data, val_data = token_rows(train_pairs, val_pairs, tokenizer, prompts=[PROMPTS[c] for c in langs],
                                      max_length=getattr(lm.config, "max_position_embeddings", None),
                                      visual_tokens=prof.num_tokens, marks=marks)
    stage_args = dict(objective=objective, checkpoint=checkpoint, log=log, seed=seed, progress=progress)

    # -- stage 1 (tiny): the base LM learns the analyses as text
    if prof.builds_base and "text" not in state["stages_done"]:
        params = trainable(lm)
        if state["stage"] == "text" and state.get("files"):
            load_params(params, checkpoint / state["files"]["trainable"])
        holder = build.text_model(lm, tokenizer, train_data.features.shape[1])
        state = run_stage("text", prof.text_stage, holder, params, train_data, val_data, state=state, **stage_args)
        with quiet_transformers():
            lm.save_pretrained(str(checkpoint / build.BASE_DIR), safe_serialization=True)
        state = save_checkpoint(checkpoint, {**state, "stage": "vision", "epoch": 0, "step": 0,
                                             "stages_done": state["stages_done"] + ["text"],
                                             "stage_results": {"text": asdict(_stage_record(state, prof.text_stage))}})

    # -- stage 2: base frozen, adapter + LoRA learn to describe an embedding
    lm.requires_grad_(False)
    model = build.vision_model(lm, tokenizer, prof, train_data.features, seed, device, encoder_id=store.encoder_id,
                               targets=class_targets(train_pairs))
    params = trainable(model)
    if prof.vision_stage.aux_weight > 0:
        objective.aux = build.aux_head(lm.config.hidden_size, train_data.stats.shape[1], seed, device)
        params.update({f"aux_head.{n}": p for n, p in objective.aux.named_parameters()})
    if state.get("files"):
        load_params(params, checkpoint / state["files"]["trainable"])
    state = run_stage("vision", prof.vision_stage, model, params, train_data, val_data, state=state, **stage_args)

    # -- the model directory, its card complete
    model.eval()
    seconds = time.perf_counter() - started
    longest_target = max(len(t) for t in train_data.targets + val_data.targets)
    card = TrainingCard(
        store=split.store, lang=lang, prompts={code: PROMPTS[code] for code in langs},
        # Room for the target and its EOS within the LM's positions, as training cut the targets.
        max_new_tokens=min(int(math.ceil(longest_target * MAX_NEW_TOKENS_FACTOR)) + 1, train_data.max_target + 1),
        n_train=len(train_pairs), n_val=len(val_pairs), held_out_parcels=len(split.held_out),
        stages={**{k: StageRecord(**v) for k, v in state.get("stage_results", {}).items()},
                "vision": _stage_record(state, prof.vision_stage)},
        profile=prof.to_dict(), seed=seed, device=str(device),
        dtype="bfloat16 autocast" if bf16 else "float32",
        seconds=round(seconds, 1), imagery=state.get("imagery"), augmentation=None if augment is None else asdict(augment),
    )
    model_dir = save_model(model, out_dir, encoder_id=store.encoder_id, profile=prof.name, base_model=source, training=card)
    log({"event": "done", "model_dir": str(model_dir), "seconds": round(seconds, 1)})
    return TrainResult(
        model_dir=model_dir, profile=prof.name, lang=lang, epochs=prof.vision_stage.epochs, steps=state["step"],
        train_loss=state.get("train_loss"), val_loss=state.get("val_loss"), n_train=len(train_pairs),
        n_val=len(val_pairs), held_out_parcels=len(split.held_out), seconds=seconds, resumed=resume, device=str(device),
    )


def _start_or_resume(store: Store, pairs: PairSet, prof: Profile, out_dir: Path, lang: str, seed: int,
                     imagery: Sequence[str | Path] | None, reread: bool, resume: bool) -> tuple[dict, Split]:
    """The state to start from and the split: a fresh run's (old log and checkpoint state dropped),
    or the last checkpoint of an interrupted run on the same store, profile and language."""
    checkpoint = out_dir / CHECKPOINT_DIR
    if not resume:
        out_dir.mkdir(parents=True, exist_ok=True)
        for stale in (out_dir / LOG_NAME, checkpoint / STATE_NAME):
            stale.unlink(missing_ok=True)
        split = Split.of(store, pairs)
        split.save(out_dir)
        return {"profile": prof.name, "lang": lang, "seed": seed, "stages_done": [], "stage_results": {},
                "imagery": [str(p) for p in imagery] if imagery else None, "reread": reread,
                "stage": "text" if prof.builds_base else "vision", "epoch": 0, "step": 0}, split
    state = read_state(checkpoint)
    if state is None:
        raise InputError(f"{checkpoint}: no checkpoint to resume from; train from the start first", path=checkpoint,
                         field="resume", value=True)
    for key, value in (("profile", prof.name), ("lang", lang)):
        if state.get(key) != value:
            raise InputError(f"{checkpoint}: the checkpoint was trained with {key}={state.get(key)!r}, not {value!r}",
                             path=checkpoint, field=key, value=value)
    split = Split.load(out_dir)
    if split is None or not same_store(split.store, Split.of(store, pairs).store):
        raise InputError(f"{out_dir}: the checkpoint was trained on another store than {store.path}", path=out_dir)
    if imagery is not None:
        state["imagery"] = [str(p) for p in imagery]
    state.setdefault("imagery", None)
    state.setdefault("reread", reread)
    return state, split


def _stage_record(state: dict, settings: StageSettings) -> StageRecord:
    return StageRecord(epochs=settings.epochs, steps=state["step"], train_loss=state.get("train_loss"),
                       val_loss=state.get("val_loss"))
