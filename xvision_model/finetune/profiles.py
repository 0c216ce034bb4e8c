"""Training profiles: what the generator's training builds and how it trains it.

Two profiles, one code path. `tiny` builds everything in-process (a BPE tokenizer trained on the
store's analyses, a small Qwen2 trained first as a text-only LM, then frozen under LoRA); `full`
loads Qwen2-1.5B from local files and trains only the vision adapter and LoRA. A profile is a
frozen dataclass; `replace` derives variants (tests use short ones). What each setting was
measured to do is in docs/experiments.md.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, replace

from indexer.core.errors import InputError, require_positive_int
from xvision_model.adapter import BIN_FITS
from xvision_model.lm import LoraSettings, TinyLMSettings

#: Environment variable naming the full profile's base LM (a local directory or a cached hub id).
BASE_MODEL_ENV = "XVISION_QWEN2_PATH"
FULL_BASE_MODEL = "Qwen/Qwen2-1.5B"


def _check(ok: bool, name: str, value: object, rule: str) -> None:
    if not ok:
        raise InputError(f"{name} must be {rule}, got {value!r}", field=name, value=value)


@dataclass(frozen=True)
class AugmentSettings:
    """Spectral augmentation of re-read training chips (`finetune.augment`): how many perturbed
    copies of each training chip, and how strongly each is perturbed.

    `max_examples` bounds the training set (stored chips plus copies) so that training time does
    not grow with the store: a store with more records than ``max_examples / (1 + copies)`` gets
    fewer copies per chip (`copies_for`), at least one.
    """

    copies: int = 3
    max_examples: int = 4400
    brightness: tuple[float, float] = (0.5, 1.8)  # k, log-uniform
    band_gain_sigma: float = 0.3  # log g_b ~ N(0, sigma)
    haze: tuple[float, float] = (-0.01, 0.04)  # o at 560 nm, uniform (reflectance)
    # The haze's wavelength dependence, o_b = o * (lambda_b / 560 nm) ** -alpha with alpha uniform
    # here: 0 is flat, about 1 aerosol, 4 Rayleigh scattering. Top-of-atmosphere (L1C) imagery is
    # bottom-of-atmosphere reflectance plus such a path term (most in the blue bands, least in the
    # SWIR), so training on it makes the generator hold up on L1C input by design.
    haze_exponent: tuple[float, float] = (0.0, 4.0)
    mix_max: float = 0.7  # a ~ U(0, mix_max); s_b ~ U(0, 0.8)

    def __post_init__(self) -> None:
        _check(self.copies >= 0, "augmentation copies", self.copies, ">= 0")
        _check(0 <= self.mix_max < 1, "augmentation mix_max", self.mix_max, "in [0, 1)")
        _check(0 <= self.haze_exponent[0] <= self.haze_exponent[1], "augmentation haze_exponent",
               self.haze_exponent, "an ascending pair >= 0")
        require_positive_int(self.max_examples, "augmentation max_examples")

    def copies_for(self, n_chips: int) -> int:
        """Perturbed copies of each of `n_chips` training chips: `copies`, fewer when that would
        pass `max_examples` (never fewer than one while `copies` > 0)."""
        if self.copies == 0 or n_chips == 0:
            return 0
        return max(1, min(self.copies, self.max_examples // n_chips - 1))


@dataclass(frozen=True)
class StageSettings:
    """One training stage: AdamW, linear warmup then cosine decay (`finetune.batches`).

    `batch_size` is per micro-batch; the optimizer steps every `grad_accum` micro-batches.
    `feature_noise` (Gaussian, as a fraction of each dimension's training std) perturbs the
    adapter input during training only, so the adapter does not key on the exact embeddings of
    the few places it was trained on. `aux_weight` > 0 adds, in the vision stage, a
    training-only linear head that regresses the record's index statistics (standardized) from
    the mean visual token: the visual tokens must then carry the quantities the analysis states.
    `rephrase` is the share of training analyses rewritten, each epoch, in a fresh phrasing by
    `indexer.analysis.write_analysis` from the record's own statistics: same classes and values,
    other words and sentence order. `decimal_sigma` > 0 trains each two-digit decimal token
    after a "." against a Gaussian over the decimal tokens (sigma in hundredths) instead of
    one-hot (`finetune.numbers`). `fact_weight` multiplies the loss of the target tokens that
    state a fact (a class key phrase or a number, `indexer.analysis.fact_spans`). The training
    loss in the log is the weighted one; the validation loss is never weighted. The validation
    loss is computed after every `validate_every`-th epoch and always after the stage's last
    (`validates_after`); it steers nothing, it is reported.
    """

    epochs: int
    lr: float
    batch_size: int = 32
    grad_accum: int = 1
    warmup_fraction: float = 0.05
    weight_decay: float = 0.0
    feature_noise: float = 0.0
    aux_weight: float = 0.0
    rephrase: float = 0.0
    decimal_sigma: float = 0.0
    fact_weight: float = 1.0
    validate_every: int = 1

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "grad_accum", "validate_every"):
            require_positive_int(getattr(self, name), name)
        _check(self.lr > 0, "learning rate", self.lr, "positive")
        _check(0.0 <= self.warmup_fraction < 1.0, "warmup_fraction", self.warmup_fraction, "in [0, 1)")
        _check(0.0 <= self.rephrase <= 1.0, "rephrase", self.rephrase, "in [0, 1]")
        for name in ("weight_decay", "feature_noise", "aux_weight", "decimal_sigma"):
            _check(getattr(self, name) >= 0, name, getattr(self, name), "non-negative")
        _check(self.fact_weight > 0, "fact_weight", self.fact_weight, "positive")

    def validates_after(self, epoch: int) -> bool:
        """Whether the validation loss is computed after epoch number `epoch` (1-based)."""
        return epoch % self.validate_every == 0 or epoch >= self.epochs


@dataclass(frozen=True)
class Profile:
    """Everything training needs besides the store.

    `tiny_lm` set: the base LM is built and trained here (`text_stage` first, all parameters).
    `tiny_lm` None: the base LM is loaded from `base_model` (overridden by the `base_model`
    argument of `train`, then by $XVISION_QWEN2_PATH) and only the adapter and LoRA train.
    `encoder` is the encoder the profile is meant for; another store encoder only warns.
    `num_tokens` is the number of visual tokens the adapter emits; `numeric_bins` the adapter's
    piecewise-linear encoding of its input (`xvision_model.adapter`; 0: none), its edges placed by
    `numeric_bin_fit` ("quantile", or "target": steps at the thresholds where the training
    records' classes change).
    """

    name: str
    vision_stage: StageSettings
    text_stage: StageSettings | None = None
    tiny_lm: TinyLMSettings | None = None
    base_model: str | None = None
    encoder: str | None = None
    num_tokens: int = 8
    numeric_bins: int = 0
    numeric_bin_fit: str = "quantile"
    lora: LoraSettings = field(default_factory=LoraSettings)
    #: Spectral augmentation of chips re-read from the store's sources (None: none).
    augment: AugmentSettings | None = None
    #: Train on analyses that write `indexer.analysis.NUMBER_SLOT` where a number goes: the model
    #: chooses the words (the classes), the writer fills every number from the record. Decoding
    #: numbers put wrong values in 59 % of the decoded texts on L1C imagery the model never saw,
    #: and a class read after a number the model wrote itself follows that number.
    number_slots: bool = True

    def __post_init__(self) -> None:
        if (self.tiny_lm is None) == (self.base_model is None):
            raise InputError(f"profile {self.name!r}: give exactly one of tiny_lm and base_model", field="profile",
                             value=self.name)
        if self.text_stage is not None and self.tiny_lm is None:
            raise InputError(f"profile {self.name!r}: a text-only stage needs a base LM built here (tiny_lm)",
                             field="profile", value=self.name)
        require_positive_int(self.num_tokens, "num_tokens")
        if self.numeric_bin_fit not in BIN_FITS:
            raise InputError(f"profile {self.name!r}: numeric_bin_fit must be one of {', '.join(BIN_FITS)}, "
                             f"got {self.numeric_bin_fit!r}", field="numeric_bin_fit", value=self.numeric_bin_fit)

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
    # Two epochs over fresh phrasings of every analysis; decimals on an ordinal scale that stage 2
    # reads out (docs/experiments.md).
    # Validation at each stage's end (and halfway through the vision stage) only: a pass over the
    # held-out records took 4-5 s, 48 s of the README's training command when run after every epoch.
    text_stage=StageSettings(epochs=2, lr=3e-3, batch_size=16, weight_decay=0.01, rephrase=1.0, decimal_sigma=1.0,
                             validate_every=2),
    # Fresh phrasings (else the adapter memorises each record's wording), the statistics head, and
    # 3x weight on the tokens the image decides (docs/experiments.md: feature noise only lost).
    vision_stage=StageSettings(epochs=8, lr=2e-3, batch_size=8, weight_decay=0.01, rephrase=1.0, aux_weight=0.5,
                               decimal_sigma=1.0, fact_weight=3.0, validate_every=4),
    encoder="spectral-v2",
    # 64 features x 16 bins: the class breaks on index means become steps a linear layer can place,
    # at the thresholds where the training records' classes change (docs/experiments.md: all three
    # right on hb's held-out cells 0.871 -> 0.945 English, 0.834 -> 0.963 French, seed 0).
    numeric_bins=16,
    numeric_bin_fit="target",
    lora=LoraSettings(r=16, alpha=32, dropout=0.0),
    augment=AugmentSettings(),
)

FULL = Profile(
    name="full",
    base_model=FULL_BASE_MODEL,
    vision_stage=StageSettings(epochs=3, lr=2e-4, batch_size=8, grad_accum=4, warmup_fraction=0.03, feature_noise=0.15),
    encoder="croma-large",
    num_tokens=64,
    lora=LoraSettings(),  # the seed's: r 32, alpha 64, dropout 0.05 on every projection
)

PROFILES: dict[str, Profile] = {p.name: p for p in (TINY, FULL)}


def get_profile(name: str | Profile) -> Profile:
    """A profile by name (`tiny`, `full`), or `name` itself when it already is a Profile."""
    if isinstance(name, Profile):
        return name
    if name not in PROFILES:
        raise InputError(f"unknown training profile {name!r}; choose one of: {', '.join(PROFILES)}",
                         field="profile", value=name)
    return PROFILES[name]
