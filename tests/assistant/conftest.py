"""Fixtures of the assistant tests: a small indexed farm store (eval/farm.py rasters) and plans.

Chain tests inject hand-written `QueryPlan`s (the parser has its own tests); the CLI and API tests
run the real parser.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from assistant.store_access import StoreView
from eval import farm
from indexer.pipeline import IndexConfig, index
from xvision_model.encoders import DEFAULT_ENCODER, build_encoder


@pytest.fixture(scope="session")
def farm_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("farm")
    farm.write_farm(out)
    return out


@pytest.fixture(scope="session")
def farm_store(farm_dir, tmp_path_factory) -> Path:
    """The generated farm (3 seasons x 9 dates x 6 parcels) indexed with the default encoder."""
    store = tmp_path_factory.mktemp("farm-store") / "store"
    index(IndexConfig(store=store, inputs=(str(farm_dir),), parcels=farm_dir / "parcels.geojson", progress=False),
          build_encoder(DEFAULT_ENCODER))
    return store


@pytest.fixture()
def view(farm_store) -> StoreView:
    return StoreView.open(farm_store)
