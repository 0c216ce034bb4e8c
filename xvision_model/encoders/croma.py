"""CROMA (Fuller et al., NeurIPS 2023) optical encoders through torchgeo, from local weights only.

Weights are looked up, in order, at `$XVISION_CROMA_WEIGHTS` (large) /
`$XVISION_CROMA_BASE_WEIGHTS` (base), then in torchgeo's download cache
(`torch.hub.get_dir()/checkpoints/`, the file name torchgeo's weights URL ends with, or the
official `CROMA_large.pt` / `CROMA_base.pt`). Nothing is downloaded. A checkpoint is a dict of
sub-state-dicts (`s1_encoder`, `s1_GAP_FFN`, `s2_encoder`, `s2_GAP_FFN`, `joint_encoder`); the
optical path loads `s2_encoder` and `s2_GAP_FFN` strictly, with `weights_only=True`.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from indexer.core.errors import WeightsError
from xvision_model.encoders.base import Encoder, EncoderOutput, EncoderSpec

OPTICAL_KEYS = ("s2_encoder", "s2_GAP_FFN")


@dataclass(frozen=True)
class CromaVariant:
    """A CROMA size: its torchgeo builder, width and where its weights may lie."""

    id: str
    builder: str  # torchgeo.models function name
    dim: int
    env_var: str
    cache_names: tuple[str, ...]
    official_url: str


VARIANTS = {
    "croma-large": CromaVariant(
        "croma-large", "croma_large", 1024, "XVISION_CROMA_WEIGHTS",
        ("CROMA_large-921e69ad.pt", "CROMA_large.pt"),
        "https://huggingface.co/torchgeo/croma/resolve/main/CROMA_large-921e69ad.pt",
    ),
    "croma-base": CromaVariant(
        "croma-base", "croma_base", 768, "XVISION_CROMA_BASE_WEIGHTS",
        ("CROMA_base-0238d814.pt", "CROMA_base.pt"),
        "https://huggingface.co/torchgeo/croma/resolve/main/CROMA_base-0238d814.pt",
    ),
}


def candidate_paths(variant: CromaVariant) -> list[Path]:
    """Every place the weights are looked for, in order."""
    paths = []
    if os.environ.get(variant.env_var):
        paths.append(Path(os.environ[variant.env_var]).expanduser())
    cache = Path(torch.hub.get_dir()) / "checkpoints"
    paths.extend(cache / name for name in variant.cache_names)
    return paths


def find_weights(variant: CromaVariant) -> Path:
    """The first existing weights file, or a WeightsError saying where we looked and what to do."""
    paths = candidate_paths(variant)
    for path in paths:
        if path.is_file():
            return path
    looked = ", ".join(str(p) for p in paths)
    raise WeightsError(
        f"{variant.id}: no weights file found (looked at: {looked}). Download {variant.official_url} "
        f"on a machine with internet, copy it here and set {variant.env_var}=/path/to/{variant.cache_names[0]}, "
        f"or use the offline default, the spectral-v2 encoder.", field="weights", path=paths[0] if paths else None,
        hint=f"set {variant.env_var} or use the spectral-v2 encoder",
    )


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def load_optical_state(model: torch.nn.Module, path: Path) -> None:
    """Load `s2_encoder` and `s2_GAP_FFN` strictly; errors name the file and the first bad keys."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt zip, pickle with code objects refused by weights_only, ...
        raise WeightsError(f"{path}: not a loadable tensor checkpoint ({' '.join(str(exc).split())[:200]})") from None
    if not isinstance(checkpoint, dict) or not all(k in checkpoint for k in OPTICAL_KEYS):
        found = list(checkpoint)[:8] if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise WeightsError(f"{path}: expected top-level keys {list(OPTICAL_KEYS)} (CROMA layout), found {found}")
    for key in OPTICAL_KEYS:
        module = getattr(model, key)
        expected = set(module.state_dict())
        given = set(checkpoint[key])
        missing, unexpected = sorted(expected - given), sorted(given - expected)
        if missing or unexpected:
            raise WeightsError(
                f"{path}: '{key}' does not match {type(model).__name__} "
                f"(missing: {missing[:5]}, unexpected: {unexpected[:5]})"
            )
        try:
            module.load_state_dict(checkpoint[key], strict=True)
        except RuntimeError as exc:
            raise WeightsError(f"{path}: '{key}' has tensors of the wrong shape ({' '.join(str(exc).split())[:300]})") from None


def bf16_is_fast(device: str = "cpu") -> bool:
    """Whether bfloat16 matmuls run natively (CUDA with bf16, or a CPU with AVX512-BF16/AMX).

    Without native support PyTorch emulates bf16 and CROMA-Large runs about 5x *slower* than in
    float32 (measured on the 2-core AMD EPYC development machine: 0.04 vs 0.2 chips/s).
    """
    if device.startswith("cuda"):
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


class CromaEncoder(Encoder):
    """CROMA optical encoder: `optical_GAP` as `gap`, `optical_encodings` (225 tokens) as `patches`."""

    def __init__(self, variant: str = "croma-large", weights: str | Path | None = None,
                 precision: str = "auto", random_init: bool = False) -> None:
        super().__init__()
        import torchgeo.models

        spec = VARIANTS[variant]
        self.spec = EncoderSpec(
            id=spec.id, dim=spec.dim, patch_dim=spec.dim,
            description=f"CROMA {spec.id.split('-')[1]} optical encoder (torchgeo {spec.builder})",
        )
        if precision not in ("auto", "float32", "bfloat16"):
            raise ValueError(f"precision must be auto, float32 or bfloat16, got {precision!r}")
        if precision == "auto":
            precision = "bfloat16" if bf16_is_fast() else "float32"
        self.precision = precision
        path = None
        if not random_init:
            # Find the weights before building 300 M parameters, so a missing file fails fast.
            path = Path(weights) if weights else find_weights(spec)
            if not path.is_file():
                raise WeightsError(f"{path}: weights file not found")
        self.model = getattr(torchgeo.models, spec.builder)(modalities=["optical"])
        if path is None:
            # Throughput benchmarks only: never used to build a store (the id says so).
            self.spec = EncoderSpec(**{**self.spec.__dict__, "id": f"{spec.id}-random-init"})
            self.weights_sha256 = None
        else:
            load_optical_state(self.model, path)
            self.weights_sha256 = sha256_file(path)
        self.model.eval()

    @torch.inference_mode()
    def embed(self, normalized: torch.Tensor, valid: torch.Tensor) -> EncoderOutput:
        with torch.autocast("cpu" if normalized.device.type == "cpu" else "cuda",
                            dtype=torch.bfloat16, enabled=self.precision == "bfloat16"):
            out = self.model(x_optical=normalized)
        return EncoderOutput(gap=out["optical_GAP"].float(), patches=out["optical_encodings"].float())
