"""End to end through `xvision` on the real samples: index, history, similar, export, re-index."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import box

from indexer.store import Store
from xvision.cli import build_parser, main

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
HESBAYE = DATA / "worldcereal-hesbaye"
BEN = DATA / "bigearthnet-s2-examples"
pytestmark = pytest.mark.skipif(not HESBAYE.is_dir(), reason=f"real samples not found at {DATA}")
DATES = ("2021-04-01", "2021-06-01", "2021-08-01")
# Upper-left cell of the Hesbaye raster on a 10 px grid (EPSG:32631, x=664000, y=5612120).
CELL = "grid10-32631-664000-5612120"
REQUIRED = ["parcel_id", "date", "valid_fraction", "ndvi_mean", "ndwi_mean", "ndmi_mean", "savi_mean",
            "evi_mean", "ndre_mean", "analysis"]


@pytest.fixture(scope="module")
def hesbaye_store(tmp_path_factory) -> Path:
    store = tmp_path_factory.mktemp("hesbaye") / "store"
    files = [str(HESBAYE / f"S2_L2A_hesbaye_{d}.tif") for d in DATES]
    assert main(["index", *files, "--grid", "10", "--store", str(store), "--quiet"]) == 0
    return store


def test_index_real_hesbaye_grid(hesbaye_store, capsys):
    store = Store.open(hesbaye_store)
    assert len(store) == 300 and store.manifest["count"] == 300
    assert sorted(store.records().date.unique()) == list(DATES)
    assert store.records().valid.all()
    # The sample lacks B01, B8A and B09: the encoder's policy fills them and the record says so.
    assert set(store.records().imputed_bands) == {"B01<-B02,B8A<-B08,B09<-B08"}
    assert store.manifest["encoder"]["id"] == "spectral-v2"
    assert store.manifest["encoder"]["normalization"]["mean"][0] == pytest.approx(0.034076769)
    assert store.records().analysis.str.len().min() > 50 and store.records().analysis_fr.str.contains("NDVI").all()


def test_history_and_similar_json(hesbaye_store, capsys):
    assert main(["history", CELL, "--store", str(hesbaye_store), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["date"] for r in rows] == list(DATES)
    assert main(["similar", CELL, "--date", "2021-06-01", "--store", str(hesbaye_store), "-k", "7", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert len(hits) == 7
    assert all(h["parcel_id"] != CELL and h["valid"] for h in hits)
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)


def test_similar_parcels_are_spectrally_similar(hesbaye_store):
    """Neighbours in embedding space have much closer NDVI/NDMI than random pairs."""
    from indexer.query import similar

    store = Store.open(hesbaye_store)
    rng = np.random.default_rng(0)
    records = store.records().sample(40, random_state=0)
    near, rand = [], []
    for _, rec in records.iterrows():
        hits = similar(store, rec.parcel_id, rec.date, 5)
        near.append(np.abs(hits.ndvi_mean - rec.ndvi_mean).mean() + np.abs(hits.ndmi_mean - rec.ndmi_mean).mean())
        other = store.records().iloc[rng.integers(0, len(store), 5)]
        rand.append(np.abs(other.ndvi_mean - rec.ndvi_mean).mean() + np.abs(other.ndmi_mean - rec.ndmi_mean).mean())
    assert np.mean(near) < 0.4 * np.mean(rand)


def test_export_formats(hesbaye_store, tmp_path, capsys):
    for fmt in ("csv", "parquet", "geojson"):
        out = tmp_path / f"records.{fmt}"
        assert main(["export", "--store", str(hesbaye_store), "--format", fmt, "--out", str(out)]) == 0
    table = pd.read_csv(tmp_path / "records.csv")
    assert len(table) == 300 and set(REQUIRED) <= set(table.columns)
    assert {f"ndvi_{s}" for s in ("mean", "median", "p10", "p90", "std")} <= set(table.columns)
    assert table.date.str.fullmatch(r"\d{4}-\d{2}-\d{2}").all()
    geo = gpd.read_file(tmp_path / "records.geojson")
    assert len(geo) == 300 and geo.crs.to_epsg() == 4326
    assert len(pd.read_parquet(tmp_path / "records.parquet")) == 300


def test_reindex_replaces_never_duplicates(tmp_path, capsys):
    store = tmp_path / "store"
    one = str(HESBAYE / "S2_L2A_hesbaye_2021-06-01.tif")
    assert main(["index", one, "--grid", "20", "--store", str(store), "--quiet"]) == 0
    ids = Store.open(store).records().set_index(["parcel_id", "date"]).record_id
    capsys.readouterr()
    assert main(["index", one, str(HESBAYE / "S2_L2A_hesbaye_2021-07-01.tif"), "--grid", "20",
                 "--store", str(store), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "records added: 25" in out and "records replaced: 25" in out
    after = Store.open(store).records().set_index(["parcel_id", "date"]).record_id
    assert len(after) == 50
    assert (after.loc[ids.index] == ids).all()


def test_parcels_file_in_another_crs(tmp_path, capsys):
    """Parcels in Web Mercator are reprojected; one outside the raster is counted and skipped."""
    fields = gpd.GeoDataFrame(
        {"parcel_id": ["BE-001", "BE-002", "FAR-1"], "crop": ["wheat", "sugar beet", "maize"]},
        geometry=[box(5.3215, 50.6305, 5.3245, 50.6325), box(5.327, 50.633, 5.331, 50.636), box(2.0, 48.0, 2.01, 48.01)],
        crs="EPSG:4326",
    ).to_crs("EPSG:3857")
    parcels = tmp_path / "fields.gpkg"
    fields.to_file(parcels)
    store = tmp_path / "store"
    assert main(["index", str(HESBAYE / "S2_L2A_hesbaye_2021-06-01.tif"), "--parcels", str(parcels),
                 "--store", str(store), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "records added: 2" in out and "skipped (outside raster footprint): 1" in out
    records = Store.open(store).records().set_index("parcel_id")
    assert records.loc["BE-002", "attr_crop"] == "sugar beet"
    assert records.loc["BE-001", "source_crs"] == "EPSG:3857"
    assert records.loc["BE-001"].geometry.bounds == pytest.approx((5.3215, 50.6305, 5.3245, 50.6325), abs=1e-6)
    assert 200 < records.loc["BE-001", "n_pixels"] < 500  # ~212 m x 222 m at 10 m


@pytest.mark.skipif(not BEN.is_dir(), reason="BigEarthNet sample missing")
def test_index_bigearthnet_band_folders(tmp_path, capsys):
    store = tmp_path / "store"
    assert main(["index", str(BEN), "--grid", "40", "--store", str(store), "--quiet"]) == 0
    records = Store.open(store).records()
    assert len(records) == 6 * 9
    assert set(records.imputed_bands) == {""}  # all 12 CROMA bands present
    assert records.date.nunique() == 5 and records.tile.str.len().eq(5).all()
    assert set(records.cloud_method) == {"spectral-test"}  # no SCL and no B10 in BigEarthNet


def test_help_for_every_command(capsys):
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # noqa: SLF001 - argparse has no public API
    for name in commands:
        with pytest.raises(SystemExit) as exit_info:
            main([name, "--help"])
        assert exit_info.value.code == 0
        assert "usage: xvision " + name in capsys.readouterr().out


def test_kill_during_index_leaves_store_consistent(tmp_path):
    """SIGKILL at several moments of a run: the store always opens, in the old or a new state."""
    store = tmp_path / "store"
    base = str(HESBAYE / "S2_L2A_hesbaye_2021-06-01.tif")
    assert main(["index", base, "--grid", "10", "--store", str(store), "--quiet"]) == 0
    committed = {100}
    others = [str(HESBAYE / f"S2_L2A_hesbaye_{d}.tif") for d in ("2021-07-01", "2021-08-01", "2021-09-01")]
    cmd = [sys.executable, "-m", "xvision.cli", "index", base, *others, "--grid", "5", "--store", str(store),
           "--commit-every", "40", "--batch-size", "8", "--quiet"]
    for delay in (6.0, 8.0, 10.0, 12.5):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        opened = Store.open(store)  # raises if files and manifest disagree
        opened.verify()  # every byte of every segment as written
        n = len(opened)
        assert n == opened.manifest["count"]
        assert not opened.records().duplicated(["parcel_id", "date"]).any()
        # Every stored id has its vector.
        for rid in opened.records().record_id.sample(min(20, n), random_state=0):
            assert np.isfinite(opened.vector(rid)).all()
        committed.add(n)
    assert len(committed) > 1, "no kill landed after a commit: the test did not exercise a partial run"

    # Compaction (`xvision reindex` merges every segment), killed at several moments: the store
    # opens with exactly the same records and vectors each time.
    before = Store.open(store)
    table = before.records()[["record_id", "parcel_id", "date"]].reset_index(drop=True)
    vectors = before.vectors(table["record_id"])
    reindex = [sys.executable, "-m", "xvision.cli", "reindex", "--store", str(store), "--quiet"]
    for delay, kind in ((2.5, "hnsw"), (4.0, "flat"), (5.5, "hnsw")):
        proc = subprocess.Popen([*reindex, "--index-type", kind], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        opened = Store.open(store)
        opened.verify()
        pd.testing.assert_frame_equal(opened.records()[["record_id", "parcel_id", "date"]].reset_index(drop=True), table)
        np.testing.assert_array_equal(opened.vectors(table["record_id"]), vectors)
    assert main(["reindex", "--store", str(store), "--index-type", "auto", "--quiet"]) == 0
    assert len(Store.open(store).manifest["segments"]) == 1


def test_crash_inside_compaction_leaves_old_or_new_state(tmp_path, monkeypatch):
    """The two windows of a compaction: merged segment written but not published (the old state
    stays and the stray segment goes at the next commit), published but old segments not removed
    (the new state; the leftovers go at the next commit)."""
    import indexer.store as store_module

    store = tmp_path / "store"
    base = str(HESBAYE / "S2_L2A_hesbaye_2021-06-01.tif")
    for date in ("2021-06-01", "2021-07-01"):
        assert main(["index", str(HESBAYE / f"S2_L2A_hesbaye_{date}.tif"), "--grid", "10", "--store", str(store),
                     "--quiet"]) == 0
    want = Store.open(store).records()[["record_id", "parcel_id", "date"]].reset_index(drop=True)

    class Crash(Exception):
        pass

    def crash(*args, **kwargs):
        raise Crash

    for point in ("_publish_manifest", "_remove_stale"):
        with monkeypatch.context() as patch:
            patch.setattr(store_module.Store, point, crash)
            with pytest.raises(Crash):
                Store.open(store).compact(index_type="flat")
        opened = Store.open(store)
        opened.verify()
        pd.testing.assert_frame_equal(opened.records()[["record_id", "parcel_id", "date"]].reset_index(drop=True), want)
        dirs = sorted(p.name for p in store.iterdir() if p.name.startswith("seg-"))
        assert len(dirs) > len(opened.manifest["segments"])  # the crash left files behind
    assert len(Store.open(store).manifest["segments"]) == 1  # the second crash came after publishing
    assert main(["index", base, "--grid", "10", "--store", str(store), "--quiet"]) == 0
    opened = Store.open(store)
    assert sorted(p.name for p in store.iterdir() if p.name.startswith("seg-")) == \
        [s["name"] for s in opened.manifest["segments"]]
