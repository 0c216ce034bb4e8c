"""Building the model a training run trains: tokenizer, base LM, adapter, LoRA, auxiliary head."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase, Qwen2ForCausalLM

from indexer.core.errors import WeightsError
from xvision_model.adapter import AdapterConfig, VisionAdapter
from xvision_model.encoders.registry import anchor_index
from xvision_model.finetune.profiles import Profile
from xvision_model.finetune.seeds import derive_seed
from xvision_model.lm import apply_lora, load_base_lm, tiny_qwen2_config
from xvision_model.model import XVisionModel
from xvision_model.tokenizer import load_tokenizer, train_tokenizer

TOKENIZER_DIR, BASE_DIR = "tokenizer", "base"


def device() -> tuple[torch.device, bool]:
    """The training device and whether it runs bfloat16 autocast (CUDA with bf16 support)."""
    if torch.cuda.is_available():
        return torch.device("cuda"), torch.cuda.is_bf16_supported()
    return torch.device("cpu"), False


def base_lm(profile: Profile, source: str | None, texts: list[str], checkpoint: Path, *, resume: bool,
            text_stage_done: bool, seed: int) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The base LM and its tokenizer.

    tiny: a BPE trained on `texts` (or the checkpoint's, when resuming) and a fresh Qwen2 of the
    profile's architecture (or the checkpoint's stage-1 LM once the text stage is done). full: the
    pretrained Qwen2 and its tokenizer from `source` (local files only).
    """
    if not profile.builds_base:
        lm = load_base_lm(source)
        try:
            tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise WeightsError(f"{source}: cannot load the base model's tokenizer ({' '.join(str(exc).split())[:200]})",
                               path=source) from None
        return lm, tokenizer
    arch = profile.tiny_lm
    if resume and (checkpoint / TOKENIZER_DIR / "tokenizer.json").is_file():
        tokenizer = load_tokenizer(checkpoint / TOKENIZER_DIR)
    else:
        tokenizer = train_tokenizer(texts, vocab_size=arch.vocab_size)
        tokenizer.save_pretrained(str(checkpoint / TOKENIZER_DIR))
    if text_stage_done:
        return load_base_lm(checkpoint / BASE_DIR, dtype="float32"), tokenizer
    torch.manual_seed(derive_seed(seed, "lm-init"))
    lm = Qwen2ForCausalLM(tiny_qwen2_config(len(tokenizer), arch, pad_token_id=tokenizer.pad_token_id,
                                            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id))
    return lm, tokenizer


def text_model(lm: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, in_dim: int) -> XVisionModel:
    """The LM alone (stage 1 splices zero visual tokens; the adapter is only a placeholder)."""
    return XVisionModel(VisionAdapter(AdapterConfig(in_dim=in_dim, lm_hidden=lm.config.hidden_size)), lm, tokenizer)


def vision_model(lm: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, profile: Profile, features: torch.Tensor,
                 seed: int, device: torch.device, encoder_id: str | None = None,
                 targets: np.ndarray | None = None) -> XVisionModel:
    """Adapter (its input scale from the training `features`) + fresh LoRA on `lm`.

    `targets` (`dataset.class_targets` of the training pairs, row for row with `features`) place
    the bins of a profile whose `numeric_bin_fit` is "target".

    The adapter always standardizes its input: the embedding dimensions differ in spread by
    orders of magnitude (see `xvision_model.adapter`). For an encoder with an anchor component
    (`encoder_id` "spectral-v2") it first undoes the embedding's L2 normalization.
    """
    torch.manual_seed(derive_seed(seed, "adapter-init"))
    anchor = anchor_index(encoder_id) if encoder_id is not None else None
    adapter = VisionAdapter(AdapterConfig(in_dim=features.shape[-1], lm_hidden=lm.config.hidden_size,
                                          num_tokens=profile.num_tokens, standardize=True, anchor=anchor,
                                          numeric_bins=profile.numeric_bins,
                                          bin_fit=profile.numeric_bin_fit if profile.numeric_bins else "quantile"))
    adapter.set_input_scale(features, targets)
    return XVisionModel(adapter, apply_lora(lm, profile.lora), tokenizer).to(device)


def aux_head(hidden: int, n_stats: int, seed: int, device: torch.device) -> nn.Linear:
    """The training-only head that regresses the record's statistics from the mean visual token."""
    torch.manual_seed(derive_seed(seed, "aux-init"))
    return nn.Linear(hidden, n_stats).to(device)
