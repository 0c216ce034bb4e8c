"""The language model: a Qwen2-family causal LM from local files, LoRA through peft.

Nothing is downloaded: a hub id is only accepted when it is already in the local Hugging Face
cache (``local_files_only=True``). Weights are read from safetensors only; a directory that holds
nothing but ``pytorch_model.bin`` (a pickle) is refused.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import PreTrainedModel, Qwen2Config, Qwen2ForCausalLM

from indexer.core.errors import InputError, WeightsError

#: The seed's LoRA targets: every attention and MLP projection of a Qwen2 block.
QWEN2_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


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


def apply_lora(lm: PreTrainedModel, settings: LoraSettings | None = None) -> PeftModel:
    """Wrap `lm` with fresh LoRA layers; the base weights are frozen by peft."""
    return get_peft_model(lm, (settings or LoraSettings()).to_peft())


def load_lora(lm: PreTrainedModel, directory: str | Path, trainable: bool = False) -> PeftModel:
    """Attach a saved LoRA adapter (``adapter_model.safetensors``; pickles refused)."""
    directory = Path(directory)
    if not (directory / "adapter_config.json").is_file():
        raise WeightsError(f"{directory}: LoRA adapter not found (no adapter_config.json)")
    refuse_pickles(directory)
    try:
        return PeftModel.from_pretrained(lm, str(directory), is_trainable=trainable, use_safetensors=True)
    except (OSError, ValueError, RuntimeError) as exc:
        raise WeightsError(f"{directory}: cannot load LoRA adapter ({' '.join(str(exc).split())[:300]})") from None


def merge_lora(lm: PreTrainedModel | PeftModel) -> PreTrainedModel:
    """Fold LoRA into the base weights for inference (no-op for a model without LoRA)."""
    return lm.merge_and_unload() if isinstance(lm, PeftModel) else lm


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
