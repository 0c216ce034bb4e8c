"""Fixtures of the app tests: a store of the repository's own Flanders demo data (both seasons).

Built with the real indexer from `data/worldcereal-flanders` (the demo data a clone carries), on
a subset of dates so that it takes seconds: clear and clouded dates, and the October pair a year
apart that the past-season comparison needs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from uidata import DATES, FLANDERS, HESBAYE


@pytest.fixture(scope="session")
def flanders_store(tmp_path_factory) -> Path:
    """A store of 19 LPIS parcels x 9 dates; read-only by convention (copy it to write)."""
    from indexer.pipeline import IndexConfig, index
    from xvision_model.encoders import DEFAULT_ENCODER, build_encoder

    store = tmp_path_factory.mktemp("ui") / "flanders-store"
    files = tuple(str(FLANDERS / f"S2_L2A_Flanders31UES_{d}.tif") for d in DATES)
    index(IndexConfig(store=store, inputs=files, parcels=FLANDERS / "parcels_Flanders31UES.gpkg", progress=False),
          build_encoder(DEFAULT_ENCODER))
    return store


@pytest.fixture(scope="session")
def flanders_archive(tmp_path_factory) -> Path:
    """The whole Flanders sample the repository carries: 19 parcels x 72 dates (2018-08..2019-11),
    with clear, partly and fully clouded, suspect and snowy dates and three parcels too small to be
    usable on any date. About a minute to build; read-only by convention."""
    from indexer.pipeline import IndexConfig, index
    from xvision_model.encoders import DEFAULT_ENCODER, build_encoder

    store = tmp_path_factory.mktemp("ui") / "flanders-archive"
    files = tuple(str(p) for p in sorted(FLANDERS.glob("S2_L2A_Flanders31UES_*.tif")))
    index(IndexConfig(store=store, inputs=files, parcels=FLANDERS / "parcels_Flanders31UES.gpkg", progress=False),
          build_encoder(DEFAULT_ENCODER))
    return store


#: The hazy acquisition `hazy_store` writes, between two clear ones five and ten days away.
HAZY_DATE = "2019-10-18"


@pytest.fixture(scope="session")
def hazy_store(tmp_path_factory) -> Path:
    """A suspect acquisition: 2019-10-13, 2019-10-18 and 2019-10-28 over Flanders, all clear by the
    scene classification, with 2019-10-18's near-infrared bands (B08, B8A) scaled by 0.4, as a
    haze the cloud mask missed would lower them. Every parcel's NDVI drops on that date and comes
    back: the suspect-scene rule's case. (The real archive has no such date under the current
    quality rule: its hazy dates are masked as cloud or snow.)"""
    import rasterio

    from indexer.pipeline import IndexConfig, index
    from xvision_model.encoders import DEFAULT_ENCODER, build_encoder

    folder = tmp_path_factory.mktemp("hazy")
    source = FLANDERS / f"S2_L2A_Flanders31UES_{HAZY_DATE}.tif"
    hazy = folder / source.name
    with rasterio.open(source) as src:
        profile, bands, tags = src.profile, src.read(), src.tags()
        names = src.descriptions
    for i, name in enumerate(names):
        if name in ("B08", "B8A"):
            bands[i] = (bands[i] * 0.4).astype(bands.dtype)
    with rasterio.open(hazy, "w", **profile) as dst:
        dst.write(bands)
        dst.descriptions = names
        dst.update_tags(**tags)
    files = (str(FLANDERS / "S2_L2A_Flanders31UES_2019-10-13.tif"), str(hazy),
             str(FLANDERS / "S2_L2A_Flanders31UES_2019-10-28.tif"))
    store = folder / "store"
    index(IndexConfig(store=store, inputs=files, parcels=FLANDERS / "parcels_Flanders31UES.gpkg", progress=False),
          build_encoder(DEFAULT_ENCODER))
    return store


@pytest.fixture(scope="session")
def two_area_store(flanders_store, tmp_path_factory) -> Path:
    """The Flanders store plus two Hesbaye months cut into 10 x 10 pixel cells, 90 km away."""
    import shutil

    from indexer.pipeline import IndexConfig, index
    from xvision_model.encoders import DEFAULT_ENCODER, build_encoder

    store = tmp_path_factory.mktemp("ui") / "two-areas"
    shutil.copytree(flanders_store, store)
    files = tuple(str(HESBAYE / f"S2_L2A_hesbaye_{d}.tif") for d in ("2021-05-01", "2021-06-01"))
    index(IndexConfig(store=store, inputs=files, grid=10, progress=False), build_encoder(DEFAULT_ENCODER))
    return store


@pytest.fixture
def app_env(flanders_store, tmp_path, monkeypatch) -> Path:
    """Point the app at the test store (AppTest cannot pass script arguments); uploads go to tmp."""
    monkeypatch.setenv("XVISION_UI_STORE", str(flanders_store))
    monkeypatch.setenv("XVISION_UI_DATA_DIR", str(tmp_path / "uploads"))
    monkeypatch.delenv("XVISION_UI_MODEL", raising=False)
    return flanders_store
