"""What every encoder takes, returns and records about itself.

Input: a batch of chips, float32 reflectance [B, 12, 120, 120] in `CROMA_BANDS` order, plus a
boolean mask [B, 120, 120] of the pixels that are inside the parcel and observed. Output: a
global embedding (`gap`, the vector stored in FAISS) and patch tokens (for the vision adapter's
`patch` mode). Normalization is part of the encoder and fixed: it is written to the store's
manifest so that every date of every parcel is embedded on the same scale.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

#: CROMA's 12 optical bands, in its input order (B10 cirrus dropped).
CROMA_BANDS: tuple[str, ...] = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12",
)

# Sentinel-2 L2A band statistics of BigEarthNet-S2 (DN = reflectance x 10000), as published with
# the BigEarthNet models (TU Berlin, bigearthnet-models-tf BigEarthNet.py) and used by torchgeo's
# SeasonalContrastS2DataModule. CROMA's official fine-tuning code scales each band to [0, 1] with
# mean +/- 2 std of such fixed statistics. Stored here as reflectance.
_BEN_MEAN_DN = (340.76769064, 429.9430203, 614.21682446, 590.23569706, 950.68368468, 1792.46290469,
                2075.46795189, 2218.94553375, 2266.46036911, 2246.0605464, 1594.42694882, 1009.32729131)
_BEN_STD_DN = (554.81258967, 572.41639287, 582.87945694, 675.88746967, 729.89827633, 1096.01480586,
               1273.45393088, 1365.45589904, 1356.13789355, 1302.3292881, 1079.19066363, 818.86747235)
BIGEARTHNET_MEAN = tuple(round(v / 10000, 8) for v in _BEN_MEAN_DN)
BIGEARTHNET_STD = tuple(round(v / 10000, 8) for v in _BEN_STD_DN)


@dataclass(frozen=True)
class Normalization:
    """Per-band `(x - (mean - 2 std)) / (4 std)`, clipped to [0, 1] (CROMA's scheme)."""

    mean: tuple[float, ...] = BIGEARTHNET_MEAN
    std: tuple[float, ...] = BIGEARTHNET_STD
    source: str = "BigEarthNet-S2 L2A band statistics, mean +/- 2 std -> [0, 1]"

    def apply(self, chips: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.mean, dtype=chips.dtype, device=chips.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=chips.dtype, device=chips.device).view(1, -1, 1, 1)
        return ((chips - (mean - 2 * std)) / (4 * std)).clamp(0.0, 1.0)


@dataclass(frozen=True)
class EncoderSpec:
    """Everything that makes embeddings comparable; written to the store manifest."""

    id: str
    dim: int
    patch_dim: int
    num_patches: int = 225
    input_size: int = 120
    bands: tuple[str, ...] = CROMA_BANDS
    normalization: Normalization = field(default_factory=Normalization)
    #: How chips are completed when the product lacks some of `bands` (the indexer applies it).
    missing_bands: str = "nearest-wavelength: copy the available band closest in wavelength"
    description: str = ""

    def to_manifest(self) -> dict:
        data = asdict(self)
        data["bands"] = list(self.bands)
        data["normalization"] = {k: list(v) if isinstance(v, tuple) else v for k, v in data["normalization"].items()}
        return data


@dataclass
class EncoderOutput:
    """`gap`: [B, dim] global embedding; `patches`: [B, num_patches, patch_dim] tokens."""

    gap: torch.Tensor
    patches: torch.Tensor


class Encoder(nn.Module):
    """Base class: subclasses implement `embed` on normalized chips."""

    spec: EncoderSpec
    weights_sha256: str | None = None
    precision: str = "float32"

    def forward(self, chips: torch.Tensor, valid: torch.Tensor) -> EncoderOutput:
        self.check_input(chips)
        return self.embed(self.spec.normalization.apply(chips), valid)

    def check_input(self, chips: torch.Tensor) -> None:
        """Raise ValueError naming the encoder when `chips` is not [B, bands, size, size]."""
        expected = (len(self.spec.bands), self.spec.input_size, self.spec.input_size)
        if tuple(chips.shape[1:]) != expected:
            raise ValueError(f"{self.spec.id}: chips must be [B, {expected}], got {tuple(chips.shape)}")

    def embed(self, normalized: torch.Tensor, valid: torch.Tensor) -> EncoderOutput:
        raise NotImplementedError

    def manifest(self) -> dict:
        """The manifest entry: spec plus the hash of the weights that produced the vectors."""
        return {**self.spec.to_manifest(), "weights_sha256": self.weights_sha256, "precision": self.precision}
