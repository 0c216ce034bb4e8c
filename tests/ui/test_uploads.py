"""Uploads: names are sanitised, files land only in the app's data folder, and indexing them is all
or nothing (a bad file leaves the store byte for byte as it was)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import ui.chat_backend
from indexer.core.errors import InputError
from indexer.store import Store
from ui import uploads
from uidata import FLANDERS

APP = str(Path(__file__).resolve().parents[2] / "ui" / "app.py")
NEW_DATE = "2019-04-01"  # an acquisition the test store does not hold


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir() if p.is_file()}


@pytest.mark.parametrize("name, expected", [
    ("S2_L2A_2023-06-12.tif", "S2_L2A_2023-06-12.tif"),
    ("../../etc/S2 2023-06-12.tif", "S2_2023-06-12.tif"),
    ("C:\\Users\\me\\scene.TIF", "scene.TIF"),
    ("..hidden.tif", "hidden.tif"),
])
def test_names_keep_only_a_safe_base_name(name, expected):
    assert uploads.safe_name(name, uploads.RASTER_TYPES) == expected


@pytest.mark.parametrize("name", ["notes.txt", "../", "....", "tif"])
def test_other_names_are_refused(name):
    with pytest.raises(InputError):
        uploads.safe_name(name, uploads.RASTER_TYPES)


def test_uploads_are_written_inside_the_data_folder_and_size_limited(tmp_path):
    paths, parcels = uploads.save(tmp_path, [uploads.Upload("../../evil_2020-01-01.tif", b"x")],
                                  uploads.Upload("/etc/fields.gpkg", b"y"), max_bytes=10)
    for path in [*paths, parcels]:
        assert path.resolve().is_relative_to((tmp_path / "uploads").resolve())
    with pytest.raises(InputError, match="limit"):
        uploads.save(tmp_path, [uploads.Upload("big_2020-01-01.tif", b"x" * 11)], None, max_bytes=10)


def test_a_bad_raster_is_reported_by_name_before_anything_is_indexed(tmp_path):
    paths, parcels = uploads.save(tmp_path, [uploads.Upload("S2_2020-01-01.tif", b"not a tiff")], None, 1000)
    with pytest.raises(InputError, match="S2_2020-01-01.tif"):
        uploads.check(paths, parcels)


@pytest.fixture
def writable_store(flanders_store, tmp_path, monkeypatch) -> Path:
    from xvision_model.encoders import DEFAULT_ENCODER, build_encoder

    store = tmp_path / "store"
    shutil.copytree(flanders_store, store)
    monkeypatch.setenv("XVISION_UI_STORE", str(store))
    monkeypatch.setenv("XVISION_UI_DATA_DIR", str(tmp_path / "app-data"))
    # The store's own encoder, from the model registry (the app gets it through the assistant).
    monkeypatch.setattr(ui.chat_backend, "encoder", lambda cfg: build_encoder(DEFAULT_ENCODER))
    return store


def _add_data_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("views/add_data.py").run()
    assert not at.exception
    return at


def test_good_upload_is_indexed_with_progress_and_its_records_point_at_the_saved_raster(writable_store, tmp_path):
    before = len(Store.open(writable_store))
    at = _add_data_page()
    raster = FLANDERS / f"S2_L2A_Flanders31UES_{NEW_DATE}.tif"
    at.file_uploader[0].set_value((raster.name, raster.read_bytes(), "image/tiff"))
    at.file_uploader[1].set_value(("parcels_Flanders31UES.gpkg", (FLANDERS / "parcels_Flanders31UES.gpkg").read_bytes(),
                                   "application/geopackage+sqlite3"))
    at.button[0].click().run()
    assert not at.exception
    assert not at.error, at.error[0].value if at.error else ""
    assert "records added: 19" in at.success[0].value
    store = Store.open(writable_store)
    assert len(store) == before + 19
    new = store.records()
    new = new[new["date"] == NEW_DATE]
    assert len(new) == 19
    assert all(Path(s).resolve().is_relative_to((tmp_path / "app-data" / "uploads").resolve()) for s in new["source"])


def test_a_bad_file_among_good_ones_changes_nothing(writable_store, tmp_path):
    before = _digest(writable_store)
    at = _add_data_page()
    raster = FLANDERS / f"S2_L2A_Flanders31UES_{NEW_DATE}.tif"
    at.file_uploader[0].set_value([(raster.name, raster.read_bytes(), "image/tiff"),
                                   ("S2_L2A_2019-04-02.tif", raster.read_bytes()[:5000], "image/tiff")])
    at.file_uploader[1].set_value(("parcels.gpkg", (FLANDERS / "parcels_Flanders31UES.gpkg").read_bytes(),
                                   "application/geopackage+sqlite3"))
    at.button[0].click().run()
    assert not at.exception
    assert "store is unchanged" in at.error[0].value and "S2_L2A_2019-04-02.tif" in at.error[0].value
    assert _digest(writable_store) == before
    assert not list((tmp_path / "app-data" / "uploads").glob("*/*"))


# --- issue 18: hostile uploads -------------------------------------------------------------------

import sys  # noqa: E402

import hostile_files as H  # noqa: E402
from indexer.core.limits import Limits  # noqa: E402


def _page_text(at: AppTest) -> str:
    return " ".join(str(e.value) for kind in ("error", "success", "markdown", "warning", "info")
                    for e in getattr(at, kind))


def test_vrt_parcels_upload_reads_no_server_file(writable_store, tmp_path):
    """An OGR VRT saved as fields.geojson, naming a CSV outside the upload folder: before the
    change it was indexed ("records added") with that file's lines as parcel ids."""
    secret = H.write_secret_csv(tmp_path / "server-files")
    before = _digest(writable_store)
    at = _add_data_page()
    raster = FLANDERS / f"S2_L2A_Flanders31UES_{NEW_DATE}.tif"
    at.file_uploader[0].set_value((raster.name, raster.read_bytes(), "image/tiff"))
    at.file_uploader[1].set_value(("fields.geojson", H.vrt_parcels_xml(f"CSV:{secret}").encode(), "application/geo+json"))
    at.button[0].click().run()
    assert not at.exception
    assert "store is unchanged" in at.error[0].value and "VRT" in at.error[0].value
    assert "fields.geojson" in at.error[0].value
    assert H.SECRET not in _page_text(at)
    assert _digest(writable_store) == before
    assert not list((tmp_path / "app-data" / "uploads").glob("*/*"))


def test_vrt_raster_upload_is_refused(writable_store, tmp_path):
    before = _digest(writable_store)
    at = _add_data_page()
    vrt = H.write_vrt_raster(tmp_path / "made", FLANDERS / f"S2_L2A_Flanders31UES_{NEW_DATE}.tif",
                             name="S2_L2A_2019-04-02.tif")
    at.file_uploader[0].set_value((vrt.name, vrt.read_bytes(), "image/tiff"))
    at.button[0].click().run()
    assert not at.exception
    assert "store is unchanged" in at.error[0].value and "VRT" in at.error[0].value
    assert _digest(writable_store) == before


def _rss_kb() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS"))


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS and /proc are Linux's")
def test_a_memory_bomb_costs_the_worker_not_the_server(writable_store, tmp_path):
    """The sparse world raster cut into 10 px cells, with the size limits lifted so that only the
    worker's memory cap stands: before the change this grew the server past 6 GB and left it at
    4.1 GB. Now the worker hits its cap, and the server neither grew nor changed the store."""
    world = H.write_sparse_world_raster(tmp_path / "upload")
    before, rss = _digest(writable_store), _rss_kb()
    lifted = Limits(max_raster_pixels=10**10, max_grid_cells=10**8, max_pixel_size_m=10**6,
                    worker_memory_bytes=6 << 30)
    with pytest.raises(InputError, match=r"needs more memory than the worker's limit of 6\.0 GiB"):
        uploads.index_uploads(writable_store, [world], None, 10, lambda done, total: None, limits=lifted)
    assert _rss_kb() - rss < 50_000, "the server grew"
    assert _digest(writable_store) == before


def test_uploads_are_held_to_the_limits_in_the_worker(writable_store, tmp_path):
    world = H.write_sparse_world_raster(tmp_path / "upload")
    stages: list[str] = []
    with pytest.raises(InputError, match=r"36000 x 18000 pixels: 648,000,000, over the limit"):
        uploads.index_uploads(writable_store, [world], None, 10, lambda done, total: None, on_stage=stages.append)
    assert stages == ["Checking the files…"]
