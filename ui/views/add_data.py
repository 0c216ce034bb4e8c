"""Add data page: upload Sentinel-2 rasters and a parcels file, and index them into the store."""

from __future__ import annotations

import streamlit as st

from indexer.core.errors import XVisionError
from indexer.core.limits import Limits
from ui import config, uploads

cfg = config.parse()
try:
    limits = Limits.from_env()
except XVisionError as exc:  # a mistyped XVISION_* limit: said on the page, the defaults apply
    st.warning(f"{exc}; the default limits apply.")
    limits = Limits()

st.title("Add imagery and parcels")
st.markdown(
    "Upload Sentinel-2 acquisitions (GeoTIFF/JP2 stacks with band names, one file per date; the date "
    "is read from the file's tags or its name, e.g. `S2_L2A_2023-06-12.tif`) and a parcels file "
    "(GeoPackage, GeoJSON, zipped shapefile or GeoParquet, any CRS). Each parcel is indexed at each "
    "date into the store; a parcel and date already there is replaced. Without a parcels file the "
    f"rasters are cut into square cells. Files up to {min(config.MAX_UPLOAD_MB, limits.max_upload_bytes // 1_000_000)} "
    f"MB each; they are kept under `{cfg.data_dir.name}/uploads/`. Rasters up to "
    f"{limits.max_raster_pixels:,} pixels with pixels of {limits.max_pixel_size_m:g} m or finer, parcels files up "
    f"to {limits.max_parcel_features:,} features; files are read only as the formats they claim."
)
with st.form("add-data"):
    rasters = st.file_uploader("Rasters", type=list(uploads.RASTER_TYPES), accept_multiple_files=True)
    parcels = st.file_uploader("Parcels file (optional)", type=list(uploads.PARCEL_TYPES))
    grid = st.number_input("Without parcels: cell size in pixels", min_value=2, max_value=500, value=10)
    submitted = st.form_submit_button("Index", type="primary")

if submitted:
    saved: list = []
    bar = st.progress(0.0, text="Saving the files…")
    try:
        saved, parcels_path = uploads.save(
            cfg.data_dir,
            [uploads.Upload(f.name, f.getvalue()) for f in rasters or []],
            uploads.Upload(parcels.name, parcels.getvalue()) if parcels else None,
            min(config.MAX_UPLOAD_MB * 1_000_000, limits.max_upload_bytes),
        )
        # Checked and indexed in a worker process with a memory cap: a hostile or huge file costs
        # the worker, never this server.
        lines = uploads.index_uploads(
            cfg.store, saved, parcels_path, int(grid),
            lambda done, total: bar.progress(done / max(total, 1), text=f"Indexing: {done} / {total} records"),
            limits=limits, on_stage=lambda text: bar.progress(0.0, text=text),
        )
    except XVisionError as exc:
        uploads.discard(saved)
        bar.empty()
        st.error(f"Nothing was added; the store is unchanged. {exc}")
    except Exception as exc:  # a failure the indexer did not word: still nothing was committed
        uploads.discard(saved)
        bar.empty()
        st.error(f"Nothing was added; the store is unchanged. Indexing failed: {type(exc).__name__}: {exc}")
    else:
        bar.progress(1.0, text="Done")
        st.success("Indexed. " + "; ".join(lines))
        st.session_state.pop("xv_cited", None)
