"""The language model: a Qwen2-family causal LM from local files, LoRA through peft for training.

Nothing is downloaded: a hub id is only accepted when it is already in the local Hugging Face
cache (``local_files_only=True``). Weights are read from safetensors only; a directory that holds
nothing but ``pytorch_model.bin`` (a pickle) is refused.

peft is imported only where LoRA layers are built or trained (`apply_lora`, `load_lora`): a
saved adapter is folded into the base weights for serving by `merge_lora_files`, which reads
its safetensors directly (peft's own import costs seconds on a cold start).
"""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from transformers import PreTrainedModel, Qwen2Config, Qwen2ForCausalLM

from indexer.core.errors import InputError, WeightsError
from xvision_model.artifacts import PICKLE_SUFFIXES, quiet_transformers

if TYPE_CHECKING:
    from peft import LoraConfig, PeftModel

#: The seed's LoRA targets: every attention and MLP projection of a Qwen2 block.
QWEN2_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class LoraSettings:
    """peft LoRA hyper-parameters; defaults are the seed's (r=32, alpha=64, dropout 0.05)."""

    r: int = 32
    alpha: int = 64
    dropout: float = 0.05
    target_modules: tuple[str, ...] = QWEN2_LORA_TARGETS

    def __post_init__(self) -> None:
        if not isinstance(self.r, int) or self.r < 1:
            raise InputError(f"LoRA r must be a positive integer, got {self.r!r}")
        if not isinstance(self.alpha, (int, float)) or self.alpha <= 0:
            raise InputError(f"LoRA alpha must be positive, got {self.alpha!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise InputError(f"LoRA dropout must be in [0, 1), got {self.dropout!r}")
        if not self.target_modules:
            raise InputError("LoRA target_modules must not be empty")
        object.__setattr__(self, "target_modules", tuple(self.target_modules))

    def to_peft(self) -> LoraConfig:
        from peft import LoraConfig

        return LoraConfig(
            r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout,
            target_modules=list(self.target_modules), task_type="CAUSAL_LM",
        )


def resolve_dtype(dtype: str | torch.dtype = "auto") -> torch.dtype:
    """``auto`` -> bfloat16 when CUDA with bf16 support is present, else float32 (CPU bf16 is slow)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        return torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
    if dtype not in DTYPES:
        raise InputError(f"dtype must be auto, float32 or bfloat16, got {dtype!r}")
    return DTYPES[dtype]


@dataclass(frozen=True)
class TinyLMSettings:
    """The tiny profile's Qwen2 architecture and BPE vocabulary size (the one place they are set)."""

    vocab_size: int = 1000
    hidden: int = 256
    layers: int = 4
    heads: int = 4
    kv_heads: int = 2
    intermediate: int = 688
    max_positions: int = 512

    def __post_init__(self) -> None:
        if self.hidden % self.heads or self.heads % self.kv_heads:
            raise InputError(f"hidden ({self.hidden}) must divide by heads ({self.heads}) and heads by "
                             f"kv_heads ({self.kv_heads})", field="tiny_lm", value=(self.hidden, self.heads, self.kv_heads))


def tiny_qwen2_config(vocab_size: int, arch: TinyLMSettings = TinyLMSettings(), *, pad_token_id: int | None = None,
                      bos_token_id: int | None = None, eos_token_id: int | None = None) -> Qwen2Config:
    """A small Qwen2 architecture for the `tiny` profile and tests (tied embeddings, like Qwen2-1.5B).

    `vocab_size` is the trained tokenizer's actual size (`arch.vocab_size` is what BPE aims for).
    """
    return Qwen2Config(
        vocab_size=vocab_size, hidden_size=arch.hidden, num_hidden_layers=arch.layers,
        num_attention_heads=arch.heads, num_key_value_heads=arch.kv_heads, intermediate_size=arch.intermediate,
        max_position_embeddings=arch.max_positions, tie_word_embeddings=True, pad_token_id=pad_token_id,
        bos_token_id=bos_token_id, eos_token_id=eos_token_id, use_sliding_window=False,
    )


def _looks_like_path(source: str) -> bool:
    # Hub ids are "name" or "org/name"; anything else with separators is meant as a path.
    return source.startswith(("/", ".", "~")) or "\\" in source or source.count("/") > 1


def refuse_pickles(directory: Path) -> None:
    """WeightsError when `directory` offers pickled weights but no safetensors."""
    if not any(directory.glob("*.safetensors")):
        pickles = sorted(p.name for p in directory.iterdir() if p.suffix in PICKLE_SUFFIXES)
        detail = f"only pickled weights ({', '.join(pickles)}), which are refused" if pickles else "no *.safetensors weights"
        raise WeightsError(
            f"{directory}: {detail}; convert them with save_pretrained(..., safe_serialization=True)"
        )


def load_base_lm(source: str | Path, dtype: str | torch.dtype = "auto") -> PreTrainedModel:
    """A Qwen2-family causal LM from a local directory or a hub id already in the local HF cache."""
    source = str(source)
    torch_dtype = resolve_dtype(dtype)
    local = Path(source).expanduser()
    if local.exists():
        if not (local / "config.json").is_file():
            raise WeightsError(f"{local}: not a model directory (no config.json)")
        refuse_pickles(local)
        where = str(local)
    elif _looks_like_path(source):
        raise WeightsError(f"{local}: language model directory not found")
    else:
        where = source
    try:
        config = Qwen2Config.from_pretrained(where, local_files_only=True)
    except OSError:
        cache = os.environ.get("HF_HUB_CACHE") or os.environ.get("HF_HOME") or "~/.cache/huggingface"
        raise WeightsError(
            f"{source}: language model not found as a local directory nor in the local Hugging Face cache "
            f"({cache}). On a machine with internet run `hf download {source}` (or "
            f"`huggingface-cli download {source} --local-dir DIR`), copy it here and pass the directory."
        ) from None
    if config.model_type != "qwen2":
        raise WeightsError(f"{source}: expected a Qwen2-family model, config.json says model_type={config.model_type!r}")
    try:
        model = Qwen2ForCausalLM.from_pretrained(
            where, config=config, dtype=torch_dtype, local_files_only=True, use_safetensors=True,
        )
    except OSError as exc:
        raise WeightsError(f"{source}: cannot load safetensors weights ({' '.join(str(exc).split())[:300]})") from None
    return model.eval()


def is_peft(lm: object) -> bool:
    """Whether `lm` is wrapped by peft (without importing peft: a model cannot be a PeftModel
    unless peft was imported)."""
    peft = sys.modules.get("peft")
    return peft is not None and isinstance(lm, peft.PeftModel)


def apply_lora(lm: PreTrainedModel, settings: LoraSettings | None = None) -> PeftModel:
    """Wrap `lm` with fresh LoRA layers; the base weights are frozen by peft."""
    from peft import get_peft_model

    with quiet_transformers():  # peft asks `is_gradient_checkpointing`: transformers' FutureWarning
        return get_peft_model(lm, (settings or LoraSettings()).to_peft())


def load_lora(lm: PreTrainedModel, directory: str | Path, trainable: bool = False) -> PeftModel:
    """Attach a saved LoRA adapter (``adapter_model.safetensors``; pickles refused)."""
    directory = Path(directory)
    if not (directory / "adapter_config.json").is_file():
        raise WeightsError(f"{directory}: LoRA adapter not found (no adapter_config.json)")
    refuse_pickles(directory)
    from peft import PeftModel

    try:
        return PeftModel.from_pretrained(lm, str(directory), is_trainable=trainable, use_safetensors=True)
    except (OSError, ValueError, RuntimeError) as exc:
        raise WeightsError(f"{directory}: cannot load LoRA adapter ({' '.join(str(exc).split())[:300]})") from None


def merge_lora(lm: PreTrainedModel | PeftModel) -> PreTrainedModel:
    """Fold LoRA into the base weights for inference (no-op for a model without LoRA)."""
    return lm.merge_and_unload() if is_peft(lm) else lm


#: Settings of a saved peft LoRA adapter that `merge_lora_files` folds as peft does: each must
#: hold its default (or be absent), else the adapter goes through peft.
_PLAIN_LORA = {"peft_type": "LORA", "use_dora": False, "bias": "none", "lora_bias": False, "fan_in_fan_out": False,
               "modules_to_save": None, "rank_pattern": {}, "alpha_pattern": {}, "layers_to_transform": None,
               "layer_replication": None, "trainable_token_indices": None, "target_parameters": None,
               "use_qalora": False, "use_bdlora": None, "alora_invocation_tokens": None}
_LORA_KEY_PREFIX = "base_model.model."


def merge_lora_files(lm: PreTrainedModel, directory: str | Path) -> PreTrainedModel | None:
    """Fold the LoRA adapter saved in `directory` into `lm`'s Linear weights, as peft's
    `merge_and_unload` does (W += scaling * B @ A, scaling = alpha / r, or alpha / sqrt(r) with
    rsLoRA), reading ``adapter_model.safetensors`` directly: serving needs no peft import.

    Returns `lm` (changed in place), or None when the adapter uses a peft feature this fold does
    not implement (DoRA, biases, per-layer ranks, ...): the caller then loads it with peft.
    """
    from safetensors.torch import load_file

    directory = Path(directory)
    config_path = directory / "adapter_config.json"
    if not config_path.is_file():
        raise WeightsError(f"{directory}: LoRA adapter not found (no adapter_config.json)")
    refuse_pickles(directory)
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise WeightsError(f"{config_path}: not valid JSON ({exc})", path=config_path) from None
    if any(config.get(key, default) != default and config.get(key) not in (None, False, {}, [])
           for key, default in _PLAIN_LORA.items()):
        return None
    weights_path = directory / "adapter_model.safetensors"
    if not weights_path.is_file():
        raise WeightsError(f"{weights_path}: not found; the LoRA adapter has no safetensors weights", path=weights_path)
    r, alpha = int(config["r"]), float(config["lora_alpha"])
    scaling = alpha / math.sqrt(r) if config.get("use_rslora") else alpha / r
    tensors = load_file(str(weights_path))
    pairs: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in tensors.items():
        module, _, part = key.removeprefix(_LORA_KEY_PREFIX).rpartition(".lora_")
        if not key.startswith(_LORA_KEY_PREFIX) or part not in ("A.weight", "B.weight"):
            return None  # something else is saved with the adapter (embeddings, biases): peft knows
        pairs.setdefault(module, {})[part[0]] = tensor
    with torch.no_grad():
        for module_name, pair in sorted(pairs.items()):
            try:
                layer = lm.get_submodule(module_name)
            except AttributeError:
                raise WeightsError(f"{weights_path}: the adapter names {module_name!r}, which the language model "
                                   "does not have", path=weights_path, field="lora", value=module_name) from None
            if set(pair) != {"A", "B"} or not isinstance(layer, torch.nn.Linear):
                return None
            a, b = pair["A"], pair["B"]
            if a.shape != (r, layer.in_features) or b.shape != (layer.out_features, r):
                raise WeightsError(f"{weights_path}: {module_name} LoRA shapes {tuple(a.shape)}, {tuple(b.shape)} do "
                                   f"not fit a {layer.in_features}->{layer.out_features} layer with r={r}",
                                   path=weights_path, field="lora", value=module_name)
            # In float32 whatever the weights' dtype, as peft does for half precision on the CPU.
            delta = (b.float() @ a.float()) * scaling
            layer.weight.add_(delta.to(layer.weight.device, layer.weight.dtype))
    return lm


def lora_settings_of(lm: PeftModel) -> LoraSettings:
    """The settings of the active LoRA adapter of `lm`, for the model card."""
    cfg = lm.peft_config[lm.active_adapter]
    return LoraSettings(r=cfg.r, alpha=cfg.lora_alpha, dropout=cfg.lora_dropout,
                        target_modules=tuple(sorted(cfg.target_modules)))


def describe_lm(lm: PreTrainedModel) -> dict:
    """Dimensions worth writing to a model card."""
    cfg = lm.config
    return {
        "model_type": cfg.model_type, "hidden_size": cfg.hidden_size, "num_hidden_layers": cfg.num_hidden_layers,
        "vocab_size": cfg.vocab_size, "dtype": str(next(lm.parameters()).dtype).removeprefix("torch."),
    }
