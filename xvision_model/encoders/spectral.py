"""The offline default encoders: fixed, weight-free spectral signatures of the parcel.

`spectral-v2` is the default; `spectral-v1` stays registered so stores built with it still open.

Why this and not a randomly initialised network: random weights make "similar parcels" mean
nothing, while the parcel's reflectance spectrum is exactly what agronomists compare (canopy
greenness, red-edge position, SWIR water absorption, soil brightness). Every feature is computed
on the fixed-normalized bands, so vectors from different dates, tiles and stores compare.

`gap` (64-d, L2-normalized so FAISS inner product is cosine similarity):
  * per band (12): masked mean, std, 10th and 90th percentile of the normalized reflectance,
    centred on the reference mean (0.5 after normalization) -> 48 features;
  * 16 normalized differences between band means (the shape of the spectrum: greenness, red
    edge, moisture, soil lines) -> 16 features.
`spectral-v2` (64-d) keeps v1's patch tokens and builds `gap` from what agronomists read off a
parcel, so that the vector itself carries the condition the analysis states:
  * the six spectral indices of the indexer (NDVI, NDWI, NDMI, SAVI, EVI, NDRE, through the
    same spyndex code path, on the chip's valid pixels in reflectance): mean, 10th and 90th
    percentile (18) and spread (6);
  * per band mean and std of the normalized reflectance (24) and 15 normalized differences;
  * one constant anchor component. v1's L2 normalization threw away the vector's length, so a
    dark and a bright parcel with the same spectral shape looked alike; with a constant
    component the normalization is invertible (f = g[:-1] / g[-1]), and cosine similarity still
    ranks by closeness of the features.
An observation with no valid pixel embeds to the zero vector (similarity 0 to everything).

`patches` (225 x 16): for each 8 x 8 pixel patch of the 120 x 120 chip, the 12 centred band
means, the patch's valid fraction and three normalized differences (NIR/red, NIR/SWIR1,
green/NIR).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from xvision_model.encoders.base import CROMA_BANDS, Encoder, EncoderOutput, EncoderSpec

#: Band pairs (a, b) whose normalized difference (a - b) / (a + b) of band means is a feature.
SPECTRAL_PAIRS: tuple[tuple[str, str], ...] = (
    ("B08", "B04"), ("B08", "B03"), ("B08", "B11"), ("B08", "B12"),
    ("B08", "B05"), ("B07", "B05"), ("B06", "B05"), ("B8A", "B05"),
    ("B03", "B04"), ("B02", "B04"), ("B11", "B12"), ("B05", "B04"),
    ("B8A", "B11"), ("B03", "B11"), ("B02", "B03"), ("B09", "B8A"),
)
PATCH_PAIRS: tuple[tuple[str, str], ...] = (("B08", "B04"), ("B08", "B11"), ("B03", "B08"))
PATCH = 8
EPS = 1e-6

SPEC = EncoderSpec(
    id="spectral-v1",
    dim=64,
    patch_dim=16,
    description="Weight-free spectral signature (band statistics and normalized differences); offline default.",
)


def _pair_index(pairs: tuple[tuple[str, str], ...]) -> tuple[list[int], list[int]]:
    return [CROMA_BANDS.index(a) for a, _ in pairs], [CROMA_BANDS.index(b) for _, b in pairs]


def _normalized_difference(means: torch.Tensor, pairs: tuple[tuple[str, str], ...]) -> torch.Tensor:
    # On normalized bands the difference keeps the spectral shape on a common scale; the +1
    # keeps the denominator away from zero for dark bands.
    a_idx, b_idx = _pair_index(pairs)
    a, b = means[..., a_idx], means[..., b_idx]
    return (a - b) / (a + b + 1.0)


def _masked_moments(normalized: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """mask [B,1,H,W] and per-band mean and variance [B,C] over the valid pixels."""
    mask = valid.to(normalized.dtype).unsqueeze(1)
    count = mask.sum(dim=(2, 3)).clamp_min(1.0)  # [B,1]
    mean = (normalized * mask).sum(dim=(2, 3)) / count
    var = ((normalized - mean[..., None, None]) ** 2 * mask).sum(dim=(2, 3)) / count
    return mask, mean, var


def _unit_or_zero(features: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """L2-normalized features; the zero vector for a chip without any valid pixel."""
    has_data = valid.flatten(1).any(dim=1, keepdim=True)
    return torch.where(has_data, F.normalize(features, dim=-1), torch.zeros_like(features))


SPEC_V2 = EncoderSpec(
    id="spectral-v2",
    dim=64,
    patch_dim=16,
    description=(
        "Weight-free spectral signature: index statistics (NDVI, NDWI, NDMI, SAVI, EVI, NDRE), band "
        "statistics and normalized differences, with a constant anchor; offline default."
    ),
)
#: Scale of the index spread features (index std rarely exceeds 0.3).
INDEX_STD_SCALE = 2.0
#: Indices are bounded to this range before use (EVI explodes over dark or saturated pixels).
INDEX_CLIP = 1.5
ANCHOR = 1.0
#: Where the anchor sits in the `spectral-v2` embedding (its last component): the adapter divides by it.
ANCHOR_INDEX = SPEC_V2.dim - 1


class SpectralEncoder(Encoder):
    """Deterministic spectral-signature encoder (no parameters)."""

    def __init__(self) -> None:
        super().__init__()
        self.spec = SPEC

    def embed(self, normalized: torch.Tensor, valid: torch.Tensor) -> EncoderOutput:
        b, c, h, w = normalized.shape
        mask, mean, var = _masked_moments(normalized, valid)
        flat = normalized.masked_fill(mask == 0, float("nan")).reshape(b, c, h * w)
        q = torch.nanquantile(flat, torch.tensor([0.1, 0.9], dtype=flat.dtype), dim=-1)  # [2,B,C]
        q = torch.nan_to_num(q, nan=0.5)
        features = torch.cat(
            [
                2 * (mean - 0.5),
                4 * var.sqrt(),
                2 * (q[0] - 0.5),
                2 * (q[1] - 0.5),
                _normalized_difference(mean, SPECTRAL_PAIRS),
            ],
            dim=-1,
        )
        return EncoderOutput(gap=_unit_or_zero(features, valid), patches=self._patches(normalized, mask))

    def _patches(self, normalized: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        summed = F.avg_pool2d(normalized * mask, PATCH) * PATCH * PATCH
        counts = F.avg_pool2d(mask, PATCH) * PATCH * PATCH
        means = summed / counts.clamp_min(1.0)  # [B,C,15,15]
        means = means.flatten(2).transpose(1, 2)  # [B,225,C]
        frac = (counts / (PATCH * PATCH)).flatten(2).transpose(1, 2)  # [B,225,1]
        nd = _normalized_difference(means, PATCH_PAIRS)
        return torch.cat([2 * (means - 0.5), frac, nd], dim=-1)


class SpectralIndexEncoder(SpectralEncoder):
    """`spectral-v2`: index statistics + band statistics + anchor (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.spec = SPEC_V2

    def forward(self, chips: torch.Tensor, valid: torch.Tensor) -> EncoderOutput:
        self.check_input(chips)
        # The indices are computed on reflectance: the [0, 1] normalization clips bright bands
        # (blue saturates at 0.16), which would bias NDVI/SAVI over bare soil and snow.
        index_features = self._indices(chips, valid)
        normalized = self.spec.normalization.apply(chips)
        mask, mean, var = _masked_moments(normalized, valid)
        features = torch.cat(
            [
                index_features.to(normalized.dtype),
                2 * (mean - 0.5),
                4 * var.sqrt(),
                _normalized_difference(mean, SPECTRAL_PAIRS[:15]),
                torch.full_like(mean[:, :1], ANCHOR),
            ],
            dim=-1,
        )
        return EncoderOutput(gap=_unit_or_zero(features, valid), patches=self._patches(normalized, mask))

    def embed(self, normalized: torch.Tensor, valid: torch.Tensor) -> EncoderOutput:
        raise NotImplementedError("spectral-v2 needs reflectance for its indices: call the encoder itself")

    @staticmethod
    def _indices(chips: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """[B, 24]: mean, p10, p90 and scaled std of each index over the valid pixels."""
        from indexer.core.indices import INDICES, chip_statistics

        rows = []
        for stats in chip_statistics(chips.detach().float().cpu().numpy(), valid.cpu().numpy(), CROMA_BANDS):
            central = [stats[f"{ix.name}_{s}"] for s in ("mean", "p10", "p90") for ix in INDICES]
            spread = [INDEX_STD_SCALE * stats[f"{ix.name}_std"] for ix in INDICES]
            rows.append(central + spread)
        values = torch.tensor(rows, dtype=torch.float32).reshape(len(chips), 4 * len(INDICES))
        return torch.nan_to_num(values, nan=0.0).clamp(-INDEX_CLIP, INDEX_CLIP)
