"""Encoders by name. The indexer, the store and the model all resolve encoders here."""

from __future__ import annotations

from collections.abc import Callable

from indexer.core.errors import InputError
from xvision_model.encoders.base import Encoder

DEFAULT_ENCODER = "spectral-v2"


def _spectral(**_: object) -> Encoder:
    from xvision_model.encoders.spectral import SpectralEncoder

    return SpectralEncoder()


def _spectral_v2(**_: object) -> Encoder:
    from xvision_model.encoders.spectral import SpectralIndexEncoder

    return SpectralIndexEncoder()


def _croma(variant: str) -> Callable[..., Encoder]:
    def build(**options: object) -> Encoder:
        from xvision_model.encoders.croma import CromaEncoder

        return CromaEncoder(variant, **options)

    return build


#: name -> builder. The spectral encoders need no weights; CROMA needs a local weights file.
ENCODERS: dict[str, Callable[..., Encoder]] = {
    "spectral-v2": _spectral_v2,
    "spectral-v1": _spectral,
    "croma-large": _croma("croma-large"),
    "croma-base": _croma("croma-base"),
}


def anchor_index(name: str) -> int | None:
    """The component of encoder `name`'s embedding that is a constant before its L2 normalization
    (the adapter divides by it to undo the normalization), or None when it has none."""
    if name == "spectral-v2":
        from xvision_model.encoders.spectral import ANCHOR_INDEX

        return ANCHOR_INDEX
    return None


def build_encoder(name: str = DEFAULT_ENCODER, **options: object) -> Encoder:
    """Instantiate encoder `name` (options: `weights`, `precision` for CROMA)."""
    if name not in ENCODERS:
        raise InputError(f"unknown encoder {name!r}; choose one of: {', '.join(ENCODERS)}")
    return ENCODERS[name](**options)
