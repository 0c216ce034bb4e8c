"""XVisionModel: vision adapter + Qwen2 (+ LoRA), trained and served through the same `splice`.

    encoder features --VisionAdapter--> visual tokens --splice--> [visual | prompt | target] --> LM

`forward` returns the LM output with the loss on target tokens only; `generate` splices
``[visual | prompt]`` the same way (left-padded) and lets ``transformers`` decode with its KV cache.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from torch import nn
from transformers import GenerationConfig, PreTrainedModel, PreTrainedTokenizerBase
from transformers.generation.streamers import BaseStreamer

from indexer.core.errors import InputError
from xvision_model.adapter import VisionAdapter
from xvision_model.lm import is_peft, merge_lora
from xvision_model.prompts import PROMPTS  # noqa: F401  (re-exported: the writer's prompts)
from xvision_model.serving import cut_at_eos
from xvision_model.splice import SpliceBatch, splice

TokenRows = Sequence[Sequence[int]] | torch.Tensor


class XVisionModel(nn.Module):
    """The generator. `lm` is a Qwen2 causal LM, optionally wrapped by peft LoRA."""

    def __init__(self, adapter: VisionAdapter, lm: PreTrainedModel,
                 tokenizer: PreTrainedTokenizerBase | None = None) -> None:
        super().__init__()
        if adapter.config.lm_hidden != lm.config.hidden_size:
            raise InputError(
                f"adapter emits {adapter.config.lm_hidden}-d tokens but the LM is {lm.config.hidden_size}-d"
            )
        self.adapter = adapter
        self.lm = lm
        self.tokenizer = tokenizer

    # -- token ids --------------------------------------------------------------------------
    def _special_id(self, name: str) -> int | None:
        value = getattr(self.tokenizer, name, None) if self.tokenizer is not None else None
        if value is None:
            value = getattr(self.lm.config, name, None)
        if isinstance(value, (list, tuple)):
            value = value[0] if value else None
        return value

    @property
    def eos_token_id(self) -> int | None:
        return self._special_id("eos_token_id")

    @property
    def pad_token_id(self) -> int:
        # Padding is masked out, so any id works; EOS is the usual stand-in when there is no pad.
        pad = self._special_id("pad_token_id")
        return pad if pad is not None else (self.eos_token_id or 0)

    @property
    def is_lora(self) -> bool:
        return is_peft(self.lm)

    # -- the shared path ----------------------------------------------------------------------
    def splice(self, visual_features: torch.Tensor | None, prompt_ids: TokenRows,
               target_ids: TokenRows | None = None, **masks: torch.Tensor) -> SpliceBatch:
        """Adapter, then `splice` (the only place visual and text tokens are combined).

        `visual_features` None splices zero visual tokens: the text-only LM of the tiny profile's
        first training stage, through the same positions and padding.
        """
        embed = self.lm.get_input_embeddings()
        if visual_features is None:
            visual = torch.zeros(len(prompt_ids), 0, embed.embedding_dim, device=embed.weight.device,
                                 dtype=embed.weight.dtype)
        else:
            visual = self.adapter(visual_features.to(next(self.adapter.parameters()).device))
        return splice(visual, prompt_ids, embed, target_ids=target_ids, eos_id=self.eos_token_id,
                      pad_id=self.pad_token_id, **masks)

    def run(self, batch: SpliceBatch, **kwargs):
        """The LM on a spliced batch (`kwargs` go to the LM, e.g. ``labels``)."""
        return self.lm(inputs_embeds=batch.inputs_embeds, attention_mask=batch.attention_mask,
                       position_ids=batch.position_ids, use_cache=False, **kwargs)

    def forward(self, visual_features: torch.Tensor | None, prompt_ids: TokenRows,
                target_ids: TokenRows | None = None, **masks: torch.Tensor):
        """LM output for ``[visual | prompt | target + EOS]``; `.loss` covers target tokens only."""
        batch = self.splice(visual_features, prompt_ids, target_ids, **masks)
        return self.run(batch, labels=batch.labels)

    @torch.no_grad()
    def generate(
        self,
        visual_features: torch.Tensor,
        prompt_ids: TokenRows,
        max_new_tokens: int = 128,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_p: float = 1.0,
        eos_token_id: int | None = None,
        streamer: BaseStreamer | None = None,
        **masks: torch.Tensor,
    ) -> list[list[int]]:
        """New token ids per row (prompt excluded), cut before the first EOS.

        `eos_token_id` defaults to the tokenizer's EOS (-1: never stop before `max_new_tokens`).
        Greedy by default; `do_sample=True` uses `temperature` and `top_p` (seed with
        `torch.manual_seed` for reproducible samples). `streamer` (e.g. `TextIteratorStreamer`
        with ``skip_prompt=True``) receives tokens as they come, for batch size 1 only.
        """
        if max_new_tokens < 1:
            raise InputError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        batch = self.splice(torch.as_tensor(visual_features), prompt_ids, **masks)
        if streamer is not None and batch.inputs_embeds.shape[0] != 1:
            raise InputError("token streaming needs batch size 1")
        eos = self.eos_token_id if eos_token_id is None else eos_token_id
        # A fresh config: the base checkpoint's generation_config.json (Qwen ships top_k,
        # repetition_penalty, ...) must not silently turn "greedy" into something else.
        config = GenerationConfig(
            max_new_tokens=max_new_tokens, do_sample=do_sample, eos_token_id=eos,
            pad_token_id=self.pad_token_id, use_cache=True,
            **({"temperature": temperature, "top_p": top_p, "top_k": 0} if do_sample else {}),
        )
        # With only inputs_embeds, transformers returns just the generated tokens; positions
        # come from the attention mask exactly as `splice` computes them for training.
        out = self.lm.generate(
            inputs_embeds=batch.inputs_embeds, attention_mask=batch.attention_mask,
            generation_config=config, streamer=streamer,
        )
        return cut_at_eos(out.tolist(), eos)

    @torch.no_grad()
    def continuation_logprobs(self, visual_features: torch.Tensor, heads: Sequence[Sequence[int]],
                              tails: Sequence[Sequence[int]], owner: Sequence[int]) -> list[float]:
        """Each tail's log-likelihood (summed over its tokens) after ``[visual | head]`` of its
        owner row: tail k continues row ``owner[k]`` (visual features and head ids).

        Each row's ``[visual | head]`` runs through the LM once (left-padded, as generation
        splices it); its key/value cache is shared by the tails it owns, and only their few tokens
        run after it, right-padded (a padded position is masked and comes after every real one,
        so it changes none of them).
        """
        lm = self.lm
        device = lm.device
        batch = self.splice(torch.as_tensor(visual_features), [list(h) for h in heads])
        first = lm(inputs_embeds=batch.inputs_embeds, attention_mask=batch.attention_mask,
                   position_ids=batch.position_ids, use_cache=True, logits_to_keep=1)
        # The last position predicts each continuation's first token.
        first_logp = first.logits[:, -1].float().log_softmax(-1)
        width = max(len(t) for t in tails)
        rest = [0.0] * len(tails)
        if width > 1:
            index = torch.tensor(list(owner), device=device)
            cache = first.cache
            cache.batch_select_indices(index)
            ids = torch.tensor([list(t) + [self.pad_token_id] * (width - len(t)) for t in tails], device=device)
            mask = torch.tensor([[1] * len(t) + [0] * (width - len(t)) for t in tails], device=device)
            mask = torch.cat([batch.attention_mask[index], mask.to(batch.attention_mask.dtype)], 1)
            positions = batch.position_ids[index, -1:] + 1 + torch.arange(width, device=device)
            logits = lm(inputs_embeds=lm.get_input_embeddings()(ids), attention_mask=mask, position_ids=positions,
                        cache=cache, use_cache=False).logits
            # Position k of the continuation predicts its token k + 1.
            logp = logits[:, :width - 1].float().log_softmax(-1)
            taken = logp.gather(2, ids[:, 1:, None])[..., 0] * mask[:, -width + 1:]
            rest = taken.sum(1).tolist()
        return [first_logp[i, tail[0]].item() + r for i, tail, r in zip(owner, tails, rest)]

    def generate_text(self, visual_features: torch.Tensor, prompts: Sequence[str], **kwargs) -> list[str]:
        """`generate` on text prompts, decoded with the model's tokenizer."""
        if self.tokenizer is None:
            raise InputError("this model has no tokenizer; pass token ids to generate()")
        ids = [self.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        return self.tokenizer.batch_decode(self.generate(visual_features, ids, **kwargs), skip_special_tokens=True)

    def merge_lora(self) -> XVisionModel:
        """Fold LoRA into the base weights (faster inference); returns self."""
        self.lm = merge_lora(self.lm)
        return self

    def quantize_int8(self) -> XVisionModel:
        """Dynamic int8 quantisation of every Linear of the merged LM (int8 weights, float32
        activations, fbgemm); the adapter stays float. The fastest CPU path measured for the full
        profile (benchmarks/generation.py, Qwen2-1.5B shape: 5.1 tokens/s against 1.8-2.2 in
        bfloat16 on a CPU without native bf16): decoding reads every weight once per token, and
        int8 weights are a quarter of float32's bytes. Returns self."""
        if is_peft(self.lm):
            raise InputError("merge LoRA (merge_lora) before quantising the LM")
        self.lm = self.lm.float()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notice
            torch.ao.quantization.quantize_dynamic(self.lm, {nn.Linear}, dtype=torch.qint8, inplace=True)
        return self
