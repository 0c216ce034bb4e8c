"""Tokenizers: a small byte-level BPE trained in-process (tiny profile, tests) or a saved one.

Byte-level, so any French analysis text (accents, units, digits) encodes without an unknown token.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from indexer.core.errors import WeightsError

PAD, BOS, EOS = "<pad>", "<s>", "</s>"


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on `texts`; ids 0, 1, 2 are <pad>, <s>, </s>."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[PAD, BOS, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, bos_token=BOS, eos_token=EOS)


def load_tokenizer(directory: str | Path) -> PreTrainedTokenizerBase:
    """A tokenizer saved with `save_pretrained` (``tokenizer.json``); never downloads."""
    directory = Path(directory)
    if not (directory / "tokenizer.json").is_file():
        raise WeightsError(f"{directory}: tokenizer not found (no tokenizer.json)")
    try:
        return AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise WeightsError(f"{directory}: cannot load tokenizer ({' '.join(str(exc).split())[:300]})") from None
