"""Sentinel-2 chip encoders, looked up by name in `registry`."""

from xvision_model.encoders.base import CROMA_BANDS, Encoder, EncoderOutput, EncoderSpec
from xvision_model.encoders.registry import DEFAULT_ENCODER, ENCODERS, build_encoder

__all__ = [
    "CROMA_BANDS",
    "DEFAULT_ENCODER",
    "ENCODERS",
    "Encoder",
    "EncoderOutput",
    "EncoderSpec",
    "build_encoder",
]
