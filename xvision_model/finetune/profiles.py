"""Training profiles: what `xvision train --profile NAME` builds and how it trains it.

Two profiles, one code path. `tiny` builds everything in-process (a BPE tokenizer trained on the
store's analyses, a small Qwen2 trained first as a text-only LM, then frozen under LoRA); `full`
loads Qwen2-1.5B from local files and trains only the vision adapter and LoRA. A profile is a
frozen dataclass; `replace` derives variants (tests use short ones).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, replace

from indexer.core.errors import InputError, require_positive_int
from xvision_model.adapter import ADAPTER_MODES
from xvision_model.lm import LoraSettings

#: Environment variable naming the full profile's base LM (a local directory or a cached hub id).
BASE_MODEL_ENV = "XVISION_QWEN2_PATH"
FULL_BASE_MODEL = "Qwen/Qwen2-1.5B"


@dataclass(frozen=True)
class AugmentSettings:
    """Spectral augmentation of re-read training chips (`finetune.augment`): how many perturbed
    copies of each training chip, and how strongly each is perturbed."""

    copies: int = 3
    brightness: tuple[float, float] = (0.5, 1.8)  # k, log-uniform
    band_gain_sigma: float = 0.3  # log g_b ~ N(0, sigma)
    haze: tuple[float, float] = (-0.01, 0.04)  # o, uniform (reflectance)
    mix_max: float = 0.7  # a ~ U(0, mix_max); s_b ~ U(0, 0.8)
    batch_size: int = 64  # chips per encoder call

    def __post_init__(self) -> None:
        if self.copies < 0:
            raise InputError(f"augmentation copies must be >= 0, got {self.copies}")
        if not 0 <= self.mix_max < 1:
            raise InputError(f"augmentation mix_max must be in [0, 1), got {self.mix_max}")


@dataclass(frozen=True)
class StageSettings:
    """One training stage: AdamW, linear warmup then cosine decay to `min_lr_ratio * lr`.

    `batch_size` is per micro-batch; the optimizer steps every `grad_accum` micro-batches.
    `feature_noise` (Gaussian, as a fraction of each dimension's training std when the adapter
    standardizes its input, of the embeddings' RMS otherwise) and
    `feature_dropout` perturb the adapter input during training only: they keep the adapter from
    keying on the exact embeddings of the few places it was trained on. `aux_weight` > 0 adds,
    in the vision stage, a training-only linear head that regresses the record's index
    statistics (standardized) from the mean visual token: the visual tokens must then carry the
    quantities the analysis states, instead of whatever identifies a training record.
    `rephrase` is the share of training analyses rewritten, each epoch, with a fresh phrasing
    seed by `indexer.analysis.write_analysis` from the record's own statistics (the stored text
    is one such phrasing): same classes and values, other words and sentence order.
    `decimal_sigma` > 0 trains each two-digit decimal token after a "." against a Gaussian over
    the decimal tokens (sigma in hundredths) instead of one-hot (`finetune.numbers`).
    `fact_weight` multiplies the loss of the target tokens that state a fact (a class key phrase
    or a number, `indexer.analysis.fact_spans`): with fresh phrasings every epoch most tokens are
    wording the frozen LM already knows, and the few the image decides are drowned among them.
    The training loss in the log is the weighted one; the validation loss is never weighted.
    """

    epochs: int
    lr: float
    batch_size: int = 32
    grad_accum: int = 1
    warmup_fraction: float = 0.05
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    feature_noise: float = 0.0
    feature_dropout: float = 0.0
    aux_weight: float = 0.0
    rephrase: float = 0.0
    decimal_sigma: float = 0.0
    fact_weight: float = 1.0

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "grad_accum"):
            require_positive_int(getattr(self, name), name)
        if not self.lr > 0:
            raise InputError(f"learning rate must be positive, got {self.lr!r}")
        for name in ("warmup_fraction", "label_smoothing", "feature_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise InputError(f"{name} must be in [0, 1), got {getattr(self, name)!r}")
        if not 0.0 <= self.rephrase <= 1.0:
            raise InputError(f"rephrase must be in [0, 1], got {self.rephrase!r}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise InputError(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio!r}")
        for name in ("weight_decay", "feature_noise", "aux_weight", "decimal_sigma"):
            if getattr(self, name) < 0:
                raise InputError(f"{name} must not be negative, got {getattr(self, name)!r}")
        if not self.fact_weight > 0:
            raise InputError(f"fact_weight must be positive, got {self.fact_weight!r}")


@dataclass(frozen=True)
class TinyLMSettings:
    """The tiny profile's Qwen2 architecture and BPE vocabulary size."""

    vocab_size: int = 1000
    hidden: int = 256
    layers: int = 4
    heads: int = 4
    kv_heads: int = 2
    intermediate: int = 688
    max_positions: int = 512


@dataclass(frozen=True)
class Profile:
    """Everything `train` needs besides the store.

    `tiny_lm` set: the base LM is built and trained here (`text_stage` first, all parameters).
    `tiny_lm` None: the base LM is loaded from `base_model` (overridden by the `base_model`
    argument of `train`, then by $XVISION_QWEN2_PATH) and only the adapter and LoRA train.
    `encoder` is the encoder the profile is meant for; another store encoder only warns.
    """

    name: str
    vision_stage: StageSettings
    text_stage: StageSettings | None = None
    tiny_lm: TinyLMSettings | None = None
    base_model: str | None = None
    encoder: str | None = None
    adapter_mode: str = "gap"
    num_tokens: int = 8
    adapter_hidden_mult: float = 1.0
    adapter_depth: int = 2
    #: Standardize the adapter's input by the training features' per-dimension mean and std.
    adapter_standardize: bool = True
    lora: LoraSettings = field(default_factory=LoraSettings)
    lm_dtype: str = "auto"
    val_fraction: float = 0.2
    #: Generation budget: this factor times the longest training target, in tokens.
    max_new_tokens_factor: float = 1.3
    #: Synthetic zero-vector "unusable" pairs added when the store has no unusable record
    #: (`dataset.with_unobserved`).
    unobserved_share: float = 0.03
    #: Spectral augmentation of re-read chips (used when `train` is given the imagery).
    augment: AugmentSettings | None = None

    def __post_init__(self) -> None:
        if self.adapter_mode not in ADAPTER_MODES:
            raise InputError(f"adapter mode must be one of {ADAPTER_MODES}, got {self.adapter_mode!r}")
        if (self.tiny_lm is None) == (self.base_model is None):
            raise InputError(f"profile {self.name!r}: give exactly one of tiny_lm and base_model")
        if self.text_stage is not None and self.tiny_lm is None:
            raise InputError(f"profile {self.name!r}: a text-only stage needs a base LM built here (tiny_lm)")
        if not 0.0 < self.val_fraction < 1.0:
            raise InputError(f"val_fraction must be in (0, 1), got {self.val_fraction!r}")

    @property
    def builds_base(self) -> bool:
        return self.tiny_lm is not None

    @property
    def stages(self) -> tuple[StageSettings, ...]:
        """The stages that run, in order (the text stage only when there is one)."""
        return tuple(s for s in (self.text_stage, self.vision_stage) if s is not None)

    def with_overrides(self, epochs: int | None = None, lr: float | None = None,
                       batch_size: int | None = None) -> Profile:
        """This profile with the vision (last) stage's epochs, learning rate or batch size replaced."""
        changes = {k: v for k, v in (("epochs", epochs), ("lr", lr), ("batch_size", batch_size)) if v is not None}
        return replace(self, vision_stage=replace(self.vision_stage, **changes)) if changes else self

    def resolve_base_model(self, base_model: str | None = None) -> str | None:
        """The base LM source: the argument, then $XVISION_QWEN2_PATH, then the profile's."""
        if self.builds_base:
            return None
        return base_model or os.environ.get(BASE_MODEL_ENV) or self.base_model

    def to_dict(self) -> dict:
        data = asdict(self)
        data["lora"]["target_modules"] = list(self.lora.target_modules)
        return data


TINY = Profile(
    name="tiny",
    tiny_lm=TinyLMSettings(),
    # Measured on Hesbaye (--grid 10, 830 training records x 4 with augmentation, 2 CPU cores,
    # length-bucketed batches, standardized adapter input, ordinal decimal targets, facts weighted
    # 3x in the vision stage), held-out / unseen BigEarthNet + generated, seeds 0, 1, 2:
    # 0.967 / 0.930, 0.953 / 0.937, 0.945 / 0.923 (facts not weighted: 0.945 / 0.931,
    # 0.945 / 0.939, 0.959 / 0.901; weighted 5x: 0.959 / 0.941, 0.947 / 0.912, 0.925 / 0.912;
    # one-hot decimals: 0.939 / 0.943 / 0.945 held-out, 0.927 / 0.930 / 0.936 unseen; sigma 2:
    # 0.951 / 0.941 / 0.935 held-out, 0.942 / 0.896 / 0.914 unseen). Vision learning rate 3e-3:
    # 0.931 (seed 0). Variants that lost: LoRA on attention only with 5
    # vision epochs 0.906; digit-by-digit number tokens 0.920; aux weight 2.0 0.941 / 0.908;
    # stage 1 conditioned on the record's numbers (a header in the visual slot, distilled into
    # the adapter) 0.941 (seed 1 each). Earlier, shorter schedules lost too: 2 copies 0.947;
    # 3 vision epochs 0.935; 1 text epoch 0.912. Batch 16 learns the language far faster per
    # second than 32; rephrasing keeps the LM from learning one phrasing. Two epochs over the
    # augmented texts also show it class combinations the region never has (snow: low vigor with
    # high moisture).
    # Decimals trained against a Gaussian over their neighbours (sigma 0.01) in both stages: the
    # decimal tokens become an ordered scale in stage 1 that stage 2 reads out.
    text_stage=StageSettings(epochs=2, lr=3e-3, batch_size=16, weight_decay=0.01, rephrase=1.0, decimal_sigma=1.0),
    # Fresh phrasings every epoch (without them the adapter memorises each training record's
    # wording) and the auxiliary statistics head; feature noise lowered every score: off. The
    # tokens that state a class or a number weigh 3x: the image decides them, not the phrasing.
    vision_stage=StageSettings(epochs=4, lr=2e-3, batch_size=8, weight_decay=0.01, rephrase=1.0, aux_weight=0.5,
                               decimal_sigma=1.0, fact_weight=3.0),
    encoder="spectral-v2",
    adapter_mode="gap",
    num_tokens=8,
    lora=LoraSettings(r=16, alpha=32, dropout=0.0),
    augment=AugmentSettings(copies=3),
)

FULL = Profile(
    name="full",
    base_model=FULL_BASE_MODEL,
    vision_stage=StageSettings(
        epochs=3, lr=2e-4, batch_size=8, grad_accum=4, warmup_fraction=0.03, weight_decay=0.0,
        feature_noise=0.15,
    ),
    encoder="croma-large",
    adapter_mode="gap",
    num_tokens=64,
    lora=LoraSettings(r=32, alpha=64, dropout=0.05),
)

PROFILES: dict[str, Profile] = {p.name: p for p in (TINY, FULL)}


def get_profile(name: str | Profile) -> Profile:
    """A profile by name (`tiny`, `full`), or `name` itself when it already is a Profile."""
    if isinstance(name, Profile):
        return name
    if name not in PROFILES:
        raise InputError(f"unknown training profile {name!r}; choose one of: {', '.join(PROFILES)}")
    return PROFILES[name]
