"""A model directory: everything needed to rebuild an `XVisionModel`, safetensors and JSON only.

    model_dir/
      model_card.json          encoder id, profile, base model, adapter dims, date, `TrainingCard`
      adapter_config.json      `AdapterConfig`
      adapter.safetensors      vision adapter weights
      lora/                    peft `save_pretrained` (adapter_config.json, adapter_model.safetensors)
      tokenizer/               tokenizer `save_pretrained` (tokenizer.json, tokenizer_config.json)
      base/                    tiny profile only: the base LM (config.json, model.safetensors, ...)

For the full profile the base LM is not copied: the card records its local path or hub id and
it is loaded from there (local files only). A model saved after `merge_lora` has no ``lora/``
and must carry its (merged) ``base/``. Loading refuses any pickle file.

Serving (`load_model(merge=True)`) folds ``lora/`` into the base weights as it reads them
(`lm.merge_lora_files`), without importing peft; only training (`trainable=True`) and adapters
using a peft feature that fold does not implement go through peft. Reading a card
(`read_card`, `has_chat_template`) imports nothing heavy: the assistant chooses its model
without torch.
"""

from __future__ import annotations

import copy
import json
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from indexer.core.errors import InputError, WeightsError

if TYPE_CHECKING:  # torch, transformers and the model load with `load_model`, not with a card
    import torch

    from xvision_model.model import XVisionModel

#: Suffixes of pickled weights, refused everywhere (`lm.PICKLE_SUFFIXES` is this tuple).
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")

CARD_NAME = "model_card.json"
#: 2: the adapter config has no `mode`, the card a typed `training` section. 1 still loads.
FORMAT_VERSION = 2
READABLE_FORMATS = (1, 2)
LORA_DIR, TOKENIZER_DIR, BASE_DIR = "lora", "tokenizer", "base"


@dataclass(frozen=True)
class StageRecord:
    """How one training stage ended."""

    epochs: int
    steps: int
    train_loss: float | None
    val_loss: float | None


@dataclass(frozen=True)
class TrainingCard:
    """The ``training`` section of a model card: what the model was trained on and how.

    `prompts` (language -> instruction) and `max_new_tokens` are what generation uses;
    `store` is the training store's fingerprint (`finetune.dataset.store_fingerprint`), `split`
    the file naming the held-out parcels; `imagery` the folders given to find moved rasters in;
    `augmentation` the spectral augmentation of chips re-read from the records' sources (None:
    trained on the stored embeddings only); `profile` the full `Profile` as a dict.
    """

    store: dict
    lang: str
    prompts: dict[str, str]
    max_new_tokens: int
    n_train: int
    n_val: int
    held_out_parcels: int
    stages: dict[str, StageRecord]
    profile: dict
    seed: int
    device: str
    dtype: str
    seconds: float
    imagery: list[str] | None = None
    augmentation: dict | None = None
    split: str = "split.json"

    @classmethod
    def from_dict(cls, data: dict) -> TrainingCard:
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        data["stages"] = {k: StageRecord(**v) for k, v in (data.get("stages") or {}).items() if v is not None}
        return cls(**data)


def save_model(model: XVisionModel, directory: str | Path, *, encoder_id: str, profile: str = "tiny",
               base_model: str | None = None, training: TrainingCard | None = None) -> Path:
    """Write `model` to `directory`, its card complete (with `training` when it was trained here).

    `base_model` is the path or hub id the LM was loaded from (full profile): then no ``base/`` is
    written. With None (tiny profile) the base LM weights are saved under ``base/``.
    """
    from xvision_model.lm import describe_lm, lora_settings_of

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.adapter.save(directory)
    lora = None
    if model.is_lora:
        model.lm.save_pretrained(str(directory / LORA_DIR), safe_serialization=True)
        lora = lora_settings_of(model.lm)
    elif base_model is not None:
        raise WeightsError(f"{directory}: a merged model has no LoRA to save; save it with its base (base_model=None)")
    if model.tokenizer is not None:
        model.tokenizer.save_pretrained(str(directory / TOKENIZER_DIR))
    if base_model is None:
        # Save the base without LoRA layers: unload a copy so the caller's model keeps its adapter.
        base = copy.deepcopy(model.lm).unload() if model.is_lora else model.lm
        with quiet_transformers():
            base.save_pretrained(str(directory / BASE_DIR), safe_serialization=True)
    card = {
        "format_version": FORMAT_VERSION,
        "profile": profile,
        "encoder": encoder_id,
        "base_model": BASE_DIR if base_model is None else str(base_model),
        "base_model_stored": base_model is None,
        "adapter": model.adapter.config.to_dict(),
        "lm": describe_lm(model.lm),
        "lora": None if lora is None else {**lora.__dict__, "target_modules": list(lora.target_modules)},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "training": None if training is None else asdict(training),
    }
    (directory / CARD_NAME).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return directory


def read_card(directory: str | Path) -> dict:
    """The parsed ``model_card.json`` of a model directory."""
    path = Path(directory) / CARD_NAME
    if not path.is_file():
        raise WeightsError(f"{path}: not found; {Path(directory)} is not an XVision model directory")
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise WeightsError(f"{path}: not valid JSON ({exc})") from None
    if card.get("format_version") not in READABLE_FORMATS:
        raise WeightsError(f"{path}: unsupported format_version {card.get('format_version')!r} (expected {FORMAT_VERSION})",
                           path=path, field="format_version", value=card.get("format_version"))
    return card


def training_card(card: dict) -> TrainingCard | None:
    """The typed training section of a parsed card (None for a model not trained by `finetune`)."""
    section = card.get("training")
    return None if not section else TrainingCard.from_dict(section)


def has_chat_template(directory: str | Path) -> bool:
    """Whether the model's saved tokenizer carries a chat template (an instruct model), read from
    its files (``tokenizer_config.json``'s ``chat_template``, or ``chat_template.jinja`` /
    ``chat_template.json`` as transformers 5 writes it) without loading the tokenizer."""
    folder = Path(directory) / TOKENIZER_DIR
    if (folder / "chat_template.jinja").is_file() or (folder / "chat_template.json").is_file():
        return True
    config = folder / "tokenizer_config.json"
    if not config.is_file():
        return False
    try:
        return bool(json.loads(config.read_text(encoding="utf-8")).get("chat_template"))
    except json.JSONDecodeError as exc:
        raise WeightsError(f"{config}: not valid JSON ({exc})", path=config) from None


def _refuse_pickles(directory: Path) -> None:
    found = sorted(p for p in directory.rglob("*") if p.is_file() and p.suffix in PICKLE_SUFFIXES)
    if found:
        raise WeightsError(f"{found[0]}: pickled weights are refused; XVision model directories hold safetensors only")


@contextmanager
def quiet_transformers():
    """Load or save without transformers' per-file progress bars ("Loading weights 50/50",
    "Writing model shards 1/1": a local folder of a few MB takes milliseconds) and without its
    FutureWarning that peft's use of `is_gradient_checkpointing` is deprecated: none of them says
    anything to a user of the model, and `xvision train --quiet` promises no bars."""
    from transformers.utils import logging as hf_logging

    shown = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            yield
    finally:
        if shown:
            hf_logging.enable_progress_bar()


def load_model(directory: str | Path, *, dtype: str | torch.dtype = "auto", merge: bool = False,
               base_model: str | Path | None = None, trainable: bool = False,
               quantize: str = "auto") -> XVisionModel:
    """Rebuild an `XVisionModel` from `directory`.

    `base_model` overrides the card's base LM location (e.g. the same Qwen2 in another folder);
    `merge=True` folds LoRA into the base for inference; `trainable=True` keeps LoRA trainable.
    `quantize`: "int8" (dynamic int8 Linears, `XVisionModel.quantize_int8`), "none", or "auto":
    int8 when serving a full-profile model on the CPU (merged, not trainable), its fastest
    measured path there; the tiny profile and GPUs keep their float weights.
    """
    from xvision_model.adapter import VisionAdapter
    from xvision_model.lm import load_base_lm, load_lora, merge_lora_files
    from xvision_model.model import XVisionModel
    from xvision_model.tokenizer import load_tokenizer

    if quantize not in ("auto", "int8", "none"):
        raise InputError(f"quantize must be auto, int8 or none, got {quantize!r}", field="quantize", value=quantize)
    directory = Path(directory)
    card = read_card(directory)
    _refuse_pickles(directory)
    adapter = VisionAdapter.load(directory)
    if base_model is None:
        base_model = directory / BASE_DIR if card.get("base_model_stored") else card["base_model"]
    with quiet_transformers():
        lm = load_base_lm(base_model, dtype=dtype)
        if (directory / LORA_DIR).exists():
            # Serving folds LoRA into the weights itself (no peft import); training keeps peft's layers.
            merged = merge_lora_files(lm, directory / LORA_DIR) if merge and not trainable else None
            lm = merged if merged is not None else load_lora(lm, directory / LORA_DIR, trainable=trainable)
        elif card.get("lora") is not None:
            raise WeightsError(f"{directory / LORA_DIR}: LoRA adapter named in {CARD_NAME} is missing")
    tokenizer = load_tokenizer(directory / TOKENIZER_DIR) if (directory / TOKENIZER_DIR).exists() else None
    model = XVisionModel(adapter.to(lm.device), lm, tokenizer)
    # Whether it writes number slots (`Profile.number_slots`); a model trained before them decodes numbers.
    model.number_slots = bool(((card.get("training") or {}).get("profile") or {}).get("number_slots", False))
    if merge:
        model.merge_lora()
    serving_on_cpu = merge and not trainable and lm.device.type == "cpu" and card.get("profile") == "full"
    if quantize == "int8" or (quantize == "auto" and serving_on_cpu):
        if not merge or trainable:
            raise InputError("int8 quantisation is for serving: load with merge=True and trainable=False",
                             field="quantize", value=quantize)
        model.quantize_int8()
    return model.train(trainable)


__all__ = ["CARD_NAME", "StageRecord", "TrainingCard", "has_chat_template", "load_model", "read_card", "save_model",
           "training_card"]
