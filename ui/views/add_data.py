"""Add data page: upload Sentinel-2 rasters and a parcels file, and index them into the store."""

from __future__ import annotations

import streamlit as st

from indexer.core.errors import XVisionError
from ui import chat_backend, config, uploads

cfg = config.parse()

st.title("Add imagery and parcels")
st.markdown(
    "Upload Sentinel-2 acquisitions (GeoTIFF/JP2 stacks with band names, one file per date; the date "
    "is read from the file's tags or its name, e.g. `S2_L2A_2023-06-12.tif`) and a parcels file "
    "(GeoPackage, GeoJSON, zipped shapefile or GeoParquet, any CRS). Each parcel is indexed at each "
    "date into the store; a parcel and date already there is replaced. Without a parcels file the "
    f"rasters are cut into square cells. Files up to {config.MAX_UPLOAD_MB} MB each; they are kept "
    f"under `{cfg.data_dir.name}/uploads/`."
)
with st.form("add-data"):
    rasters = st.file_uploader("Rasters", type=list(uploads.RASTER_TYPES), accept_multiple_files=True)
    parcels = st.file_uploader("Parcels file (optional)", type=list(uploads.PARCEL_TYPES))
    grid = st.number_input("Without parcels: cell size in pixels", min_value=2, max_value=500, value=10)
    submitted = st.form_submit_button("Index", type="primary")

if submitted:
    saved: list = []
    bar = st.progress(0.0, text="Checking the files…")
    try:
        saved, parcels_path = uploads.save(
            cfg.data_dir,
            [uploads.Upload(f.name, f.getvalue()) for f in rasters or []],
            uploads.Upload(parcels.name, parcels.getvalue()) if parcels else None,
            config.MAX_UPLOAD_MB * 1_000_000,
        )
        uploads.check(saved, parcels_path)
        bar.progress(0.0, text="Loading the store's encoder…")
        summary = uploads.index_uploads(
            cfg.store, saved, parcels_path, int(grid), chat_backend.encoder(cfg),
            lambda done, total: bar.progress(done / max(total, 1), text=f"Indexing: {done} / {total} records"),
        )
    except XVisionError as exc:
        uploads.discard(saved)
        bar.empty()
        st.error(f"Nothing was added; the store is unchanged. {exc}")
    except ImportError as exc:  # the assistant in this build cannot provide the store's encoder
        uploads.discard(saved)
        bar.empty()
        st.error(f"Nothing was added; the store is unchanged. Indexing from the app is not available in this "
                 f"build ({exc}); index with `xvision index ... --store {cfg.store}` instead.")
    except Exception as exc:  # a failure the indexer did not word: still nothing was committed
        uploads.discard(saved)
        bar.empty()
        st.error(f"Nothing was added; the store is unchanged. Indexing failed: {type(exc).__name__}: {exc}")
    else:
        bar.progress(1.0, text="Done")
        st.success("Indexed. " + "; ".join(summary.lines()))
        st.session_state.pop("xv_cited", None)
