"""Bad inputs through the CLI: exit code 2, one `xvision index: error:` line naming the file and the
problem, no traceback, and the store written by an earlier good run left byte-for-byte unchanged."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from indexer.store import Store
from xvision.cli import main
from indexer.core.errors import EncoderMismatchError

#: Warnings Python shows on stderr by default (the others are ignored outside __main__).
_HIDDEN = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)


@pytest.fixture(scope="session")
def good_store(rasters, tmp_path_factory) -> Path:
    """A store written by a good `xvision index` run over (a) and its two parcels."""
    store = tmp_path_factory.mktemp("stores") / "good"
    rc = main(["index", str(rasters["l2a_stack"]), "--parcels", str(rasters["parcels"]),
               "--store", str(store), "--quiet"])
    assert rc == 0
    assert len(Store.open(store)) == 2
    return store


@pytest.fixture
def store(good_store, tmp_path) -> Path:
    """A private copy of the good store (a failing test cannot spoil the others)."""
    return Path(shutil.copytree(good_store, tmp_path / "store"))


def snapshot(folder: Path) -> dict[str, str]:
    """Relative path -> SHA-256 of every file under `folder` (hidden ones included)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def run_failing(argv: list[str], store: Path, capsys) -> str:
    """Run the CLI, check the failure contract, return the error line."""
    before = snapshot(store)
    capsys.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rc = main([*argv, "--store", str(store), "--quiet"])
    out, err = capsys.readouterr()
    assert rc == 2, (out, err)
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("xvision index: error: "), err
    assert "Traceback" not in err and "Traceback" not in out
    shown = [f"{w.category.__name__}: {w.message}" for w in caught if not issubclass(w.category, _HIDDEN)]
    assert not shown, f"these warnings would be printed on stderr too: {shown}"
    assert snapshot(store) == before, "the store changed"
    return lines[0]


def test_good_store_is_complete(good_store):
    files = snapshot(good_store)
    assert "manifest.json" in files and any(f.endswith(".faiss") for f in files)
    assert any(f.endswith(".parquet") for f in files)


# name in the rasters fixture, extra CLI arguments, what the message must say
RASTER_CASES = [
    ("truncated", ["--grid", "8"], ["truncated or corrupt"]),
    ("truncated_header", ["--grid", "8"], ["not a readable raster"]),
    ("no_crs", ["--grid", "8"], ["no CRS"]),
    ("unnamed_bands", ["--grid", "8"], ["band 1 of 4 is not named as a Sentinel-2 band", "--bands"]),
    ("all_nodata", ["--grid", "8"], ["every pixel is nodata"]),
    ("stac_corrupt_asset", ["--grid", "8"], ["asset 'red'", "B04.tif", "unreadable"]),
    ("undated_stack", ["--grid", "8"], ["no acquisition date", "--date"]),
    ("unnamed_bands", ["--grid", "8", "--bands", "B02,B03"], ["names 2 bands", "the file has 4", "--bands"]),
    ("unnamed_bands", ["--grid", "8", "--bands", "B02,B03,B04,B08,B11"], ["names 5 bands", "the file has 4", "--bands"]),
]


@pytest.mark.parametrize(("name", "extra", "says"), RASTER_CASES,
                         ids=[f"{c[0]}{'-' + c[1][-1] if '--bands' in c[1] else ''}" for c in RASTER_CASES])
def test_bad_raster(rasters, store, capsys, name, extra, says):
    path = rasters[name]
    line = run_failing(["index", str(path), *extra], store, capsys)
    assert str(path) in line
    for text in says:
        assert text in line


def test_bad_bands_label(rasters, store, capsys):
    line = run_failing(["index", str(rasters["unnamed_bands"]), "--grid", "8", "--bands", "B02,B03,B04,B99"],
                       store, capsys)
    assert "--bands" in line and "'B99'" in line and "not a Sentinel-2 band" in line


def test_bad_input_among_good_ones(rasters, store, capsys):
    # Every input is checked before anything is written: the good stack first does not get in.
    bad = rasters["truncated"]
    line = run_failing(["index", str(rasters["l2a_stack"]), str(bad), "--parcels", str(rasters["parcels"])],
                       store, capsys)
    assert str(bad) in line


def test_missing_input(rasters, store, capsys, tmp_path):
    missing = tmp_path / "nope.tif"
    line = run_failing(["index", str(missing), "--grid", "8"], store, capsys)
    assert str(missing) in line and "no such file" in line


def test_parcels_far_away(rasters, store, capsys):
    parcels = rasters["parcels_far_away"]
    line = run_failing(["index", str(rasters["l2a_stack"]), "--parcels", str(parcels)], store, capsys)
    assert str(parcels) in line and "no parcel overlaps" in line


def test_parcels_all_invalid(rasters, store, capsys):
    parcels = rasters["parcels_invalid"]
    line = run_failing(["index", str(rasters["l2a_stack"]), "--parcels", str(parcels)], store, capsys)
    assert str(parcels) in line and "no usable polygon" in line and "no area" in line


def test_store_written_by_another_encoder(rasters, store, capsys):
    # The store fixture was built with the default (spectral-v2); v1 vectors must not join it.
    line = run_failing(["index", str(rasters["l2a_stack"]), "--parcels", str(rasters["parcels"]),
                        "--encoder", "spectral-v1"], store, capsys)
    assert str(store) in line
    assert "'spectral-v1'" in line and "'spectral-v2'" in line and "--encoder spectral-v2" in line


def test_open_or_create_refuses_another_encoder(store):
    before = snapshot(store)
    manifest = Store.open(store).manifest["encoder"]
    for change in ({"id": "other"}, {"dim": 128}, {"weights_sha256": "ab" * 32}, {"bands": ["B04", "B08"]}):
        with pytest.raises(EncoderMismatchError) as err:
            Store.open_or_create(store, {**manifest, **change})
        assert str(store) in str(err.value) and f"{next(iter(change))} differs" in str(err.value)
    assert snapshot(store) == before


def test_real_stderr_is_one_line(rasters, good_store, tmp_path):
    """The same contract in a real process (warnings and logging as a user sees them)."""
    store = Path(shutil.copytree(good_store, tmp_path / "store"))
    before = snapshot(store)
    path = rasters["no_crs"]
    env = {**os.environ, "PYTHONWARNINGS": ""}
    proc = subprocess.run(
        [sys.executable, "-m", "xvision.cli", "index", str(path), "--grid", "8", "--store", str(store)],
        capture_output=True, text=True, timeout=120, env=env,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("xvision index: error: ") and str(path) in lines[0] and "no CRS" in lines[0]
    assert snapshot(store) == before


# --- issue 18: hostile inputs and the tracebacks it listed ---------------------------------------

import hostile_files as H  # noqa: E402


def test_vrt_parcels_named_geojson_are_refused_and_nothing_is_indexed(rasters, store, capsys, tmp_path):
    secret = H.write_secret_csv(tmp_path / "outside")
    parcels = H.write_vrt_parcels(tmp_path / "upload", secret)
    line = run_failing(["index", str(rasters["l2a_stack"]), "--parcels", str(parcels)], store, capsys)
    assert str(parcels) in line and "VRT" in line and H.SECRET not in line


def test_vrt_parcels_in_a_zip_are_refused(rasters, store, capsys, tmp_path):
    secret = H.write_secret_csv(tmp_path / "outside")
    archive = H.write_zip(tmp_path / "fields.zip", {"fields.geojson": H.vrt_parcels_xml(f"CSV:{secret}").encode()})
    line = run_failing(["index", str(rasters["l2a_stack"]), "--parcels", str(archive)], store, capsys)
    assert str(archive) in line and "VRT" in line and H.SECRET not in line


def test_vrt_raster_named_tif_is_refused(rasters, store, capsys, tmp_path):
    vrt = H.write_vrt_raster(tmp_path / "upload", rasters["l2a_stack"])
    line = run_failing(["index", str(vrt), "--grid", "8"], store, capsys)
    assert str(vrt) in line and "VRT" in line


def test_world_extent_raster_with_a_grid_is_one_line(store, capsys, tmp_path):
    """It was `std::bad_alloc` after several GB; now the header is enough to refuse it."""
    world = H.write_sparse_world_raster(tmp_path / "world")
    line = run_failing(["index", str(world), "--grid", "10"], store, capsys)
    assert str(world) in line and "36000 x 18000" in line and "max_raster_pixels" in line


def test_limits_come_from_the_environment(rasters, store, capsys, monkeypatch):
    monkeypatch.setenv("XVISION_MAX_GRID_CELLS", "10")
    line = run_failing(["index", str(rasters["l2a_stack"]), "--grid", "8"], store, capsys)
    assert "over the limit of 10" in line and "XVISION_MAX_GRID_CELLS" in line


def _one_error_line(argv: list[str], capsys, command: str) -> str:
    capsys.readouterr()
    rc = main(argv)
    out, err = capsys.readouterr()
    assert rc == 2, (out, err)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"xvision {command}: error: "), err
    return lines[0]


@pytest.mark.parametrize("argv", [["history", "field-veg"], ["export"], ["index", "x.tif", "--grid", "8"]],
                         ids=["history", "export", "index"])
def test_store_option_naming_a_file(argv, capsys, tmp_path):
    file = tmp_path / "not-a-store"
    file.write_text("x")
    line = _one_error_line([*argv, "--store", str(file)], capsys, argv[0])
    assert f"{file}: is a file, not a store folder" in line and "--store" in line


def test_export_out_to_a_folder_or_proc(good_store, capsys, tmp_path):
    line = _one_error_line(["export", "--store", str(good_store), "--out", str(tmp_path)], capsys, "export")
    assert f"{tmp_path}: is a folder" in line and "--out" in line
    line = _one_error_line(["export", "--store", str(good_store), "--out", "/proc/records.csv"], capsys, "export")
    assert "/proc/records.csv: cannot be written" in line
    missing = tmp_path / "nope" / "records.csv"
    line = _one_error_line(["export", "--store", str(good_store), "--out", str(missing)], capsys, "export")
    assert f"the folder {missing.parent} does not exist" in line
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("argv", [["history", "field-veg", "--json"], ["history", "field-veg"]])
def test_a_closed_pipe_ends_quietly(good_store, argv):
    """`xvision history ... | head -1`: the reader is gone before the output is written."""
    proc = subprocess.Popen([sys.executable, "-m", "xvision.cli", *argv, "--store", str(good_store)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # what `head` does once it has its line
    _, err = proc.communicate(timeout=120)
    assert b"Traceback" not in err and b"BrokenPipeError" not in err, err.decode()
    assert proc.returncode == 141
