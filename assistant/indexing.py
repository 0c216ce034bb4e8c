"""The encoder that wrote a store, for front ends that index new imagery into it.

Front ends (the app) may not import the model package; they ask here for the encoder whose
vectors are comparable with the stored ones, and hand it to `indexer.pipeline.index`.
"""

from __future__ import annotations

from pathlib import Path

from indexer.store import Store
from xvision_model.encoders import Encoder, build_encoder


def encoder_for(store_dir: str | Path) -> Encoder:
    """The registry's encoder for the store's manifest (EncoderMismatchError when it would write
    incomparable vectors, e.g. other CROMA weights than the store's; WeightsError when they are
    missing here)."""
    store = Store.open(store_dir)
    encoder = build_encoder(store.encoder_id)
    store.check_encoder(encoder.manifest())
    return encoder
