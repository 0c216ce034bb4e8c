"""encoder_for: the encoder a front end hands to the pipeline to add imagery to a store."""

from __future__ import annotations

import json

import pytest

from assistant import encoder_for
from indexer.core.errors import EncoderMismatchError
from indexer.store import seal_manifest


def test_encoder_for_is_the_store_encoder(farm_store):
    manifest = json.loads((farm_store / "manifest.json").read_text())
    encoder = encoder_for(farm_store)
    assert encoder.spec.id == manifest["encoder"]["id"]
    assert encoder.manifest() == manifest["encoder"]


def test_encoder_for_refuses_a_store_it_cannot_match(farm_store, tmp_path):
    import shutil

    copy = tmp_path / "store"
    shutil.copytree(farm_store, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["encoder"]["normalization"] = {"mean": [0.0]}
    # Sealed like a writer's manifest: the checksum is not what this test is about.
    (copy / "manifest.json").write_text(json.dumps(seal_manifest(manifest)))
    with pytest.raises(EncoderMismatchError) as err:
        encoder_for(copy)
    assert err.value.field == "encoder"
