"""The store's query API: filtered search against brute force, vectors, records, history, the
record schema check and the upgrade of schema-1 stores."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import Point, box

from indexer.core.errors import InputError, NotFoundError
from indexer.core.schema import SCHEMA_VERSION, STAT_COLUMNS, validate
from indexer.filters import RecordFilter, fold
from indexer.store import MANIFEST, Store
from synthetic_records import record_rows

DIM = 8
ENCODER = {"id": "test-enc", "dim": DIM, "weights_sha256": None, "normalization": {}, "bands": ["B04"]}
DATES = ["2021-04-01", "2021-05-01", "2021-06-01", "2021-07-01", "2022-06-01"]
CROPS = ["Maïs", "winter wheat", "Betterave sucrière", "maize"]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Store:
    """40 parcels on a 0.01° grid x 5 dates, crops cycling, every 7th record not valid."""
    rng = np.random.default_rng(0)
    keys, geoms, crops, valid = [], [], [], []
    for p in range(40):
        x, y = 5.0 + 0.01 * (p % 8), 50.0 + 0.01 * (p // 8)
        for d in DATES:
            keys.append((f"BE-{p:03d}", d))
            geoms.append(box(x, y, x + 0.005, y + 0.005))
            crops.append(CROPS[p % len(CROPS)])
            valid.append(len(keys) % 7 != 0)
    vectors = rng.normal(size=(len(keys), DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    rows = record_rows(keys, geometry=geoms, valid=valid, ndvi_mean=list(rng.uniform(0, 0.9, len(keys))))
    rows["attr_crop"] = pd.array(crops, dtype="string")
    s = Store.open_or_create(tmp_path_factory.mktemp("q") / "store", ENCODER)
    s.upsert(rows, vectors)
    s.commit()
    return Store.open(s.path)


def _brute_force(store: Store, query: np.ndarray, k: int, where: RecordFilter | None) -> list[int]:
    table = store.records(where)
    ids = table["record_id"].to_numpy()
    scores = store.vectors(ids) @ query
    return [int(i) for i in ids[np.argsort(-scores, kind="stable")][:k]]


FILTERS = [
    None,
    RecordFilter(date_from="2021-05-01", date_to="2021-06-30"),
    RecordFilter(dates=["2022-06-01"], valid_only=True),
    RecordFilter(parcel_ids=["BE-001", "BE-002", "BE-033"]),
    RecordFilter(exclude_parcel_ids=["BE-000"], exclude_record_ids=[3, 4, 5]),
    RecordFilter(bbox=(5.0, 50.0, 5.025, 50.015)),
    RecordFilter(polygon=Point(5.0325, 50.0125).buffer(0.012)),
    RecordFilter(attributes={"crop": "MAIS"}),
    RecordFilter(attributes={"attr_crop": ["betterave sucriere", "maize"]}, valid_only=True,
                 date_from="2021-06-01"),
    RecordFilter(parcel_ids=["BE-005"], dates=["2021-04-01"]),  # one record
    RecordFilter(parcel_ids=["nope"]),  # none
]


@pytest.mark.parametrize("where", FILTERS)
@pytest.mark.parametrize("k", [1, 5, 50, 500])
def test_filtered_search_equals_brute_force(store, where, k):
    query = store.vectors([17])[0]
    hits = store.search(query, k, where)
    expected = _brute_force(store, query, k, where)
    assert [h.record_id for h in hits] == expected
    assert len(hits) == min(k, len(store.records(where)))  # k hits whenever k records match
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)


def test_filters_select_what_they_say(store):
    table = store.records()
    maize = store.records(RecordFilter(attributes={"crop": "mais"}))
    assert set(maize["attr_crop"]) == {"Maïs"} and len(maize) == 10 * len(DATES)
    window = store.records(RecordFilter(date_from="2021-05-01", date_to="2021-06-01"))
    assert set(window["date"]) == {"2021-05-01", "2021-06-01"}
    assert store.records(RecordFilter(valid_only=True))["valid"].all()
    inside = store.records(RecordFilter(bbox=(5.0, 50.0, 5.006, 50.006)))
    assert set(inside["parcel_id"]) == {"BE-000"}
    assert len(store.records(RecordFilter())) == len(table)


def test_bad_filters_name_the_field(store):
    with pytest.raises(InputError) as err:
        store.records(RecordFilter(attributes={"soil": "clay"}))
    assert err.value.field == "attributes" and "attr_crop" in str(err.value)
    with pytest.raises(InputError) as err:
        RecordFilter(date_from="2021-13-01")
    assert err.value.field == "date_from"
    with pytest.raises(InputError):
        RecordFilter(date_from="2021-06-01", date_to="2021-05-01")
    with pytest.raises(InputError) as err:
        store.search(np.zeros(DIM), 0)
    assert err.value.field == "k"


def test_vectors_by_ids_and_history(store):
    ids = [40, 3, 17]
    vectors = store.vectors(ids)
    assert vectors.shape == (3, DIM) and vectors.dtype == np.float32
    assert np.allclose(vectors[1], store.vector(3))
    assert store.by_ids(ids)["record_id"].tolist() == ids
    history = store.history("BE-002", date_from="2021-05-01", date_to="2021-12-31")
    assert history["date"].tolist() == ["2021-05-01", "2021-06-01", "2021-07-01"]
    assert store.history("BE-002", date_from="2030-01-01").empty
    with pytest.raises(NotFoundError) as err:
        store.history("BE-999")
    assert err.value.field == "parcel_id" and err.value.value == "BE-999"
    with pytest.raises(NotFoundError) as err:
        store.record("BE-002", "2021-08-01")
    assert err.value.field == "date" and "2021-06-01" in str(err.value)
    with pytest.raises(NotFoundError):
        store.by_ids([10_000])


def test_parcels_and_dates(store):
    parcels = store.parcels()
    assert len(parcels) == 40 and list(parcels.columns) == ["parcel_id", "attr_crop", "geometry"]
    assert store.dates() == DATES


def test_upsert_checks_the_schema(tmp_path):
    s = Store.open_or_create(tmp_path / "s", ENCODER)
    rows = record_rows([("a", "2021-06-01")]).drop(columns=["ndvi_p10"])
    with pytest.raises(InputError) as err:
        s.upsert(rows, np.ones((1, DIM), np.float32))
    assert err.value.field == "ndvi_p10" and "ndvi_p10" in str(err.value)
    rows = record_rows([("a", "2021-06-01")], valid="yes")
    with pytest.raises(InputError) as err:
        s.upsert(rows, np.ones((1, DIM), np.float32))
    assert err.value.field == "valid"
    with pytest.raises(InputError):
        s.upsert(record_rows([("a", "2021-06-01")]), np.ones((1, DIM + 1), np.float32))
    assert len(s) == 0


def test_schema_validate_accepts_all_nan_statistics():
    rows = record_rows([("a", "2021-06-01")], **{c: float("nan") for c in STAT_COLUMNS})
    validate(rows)


def _single_generation_store(path, rows, vectors, schema_version: int) -> None:
    """Write a store in the layout before segments (index-N.faiss + records-N.parquet)."""
    import faiss

    from indexer.store import _sha256

    path.mkdir()
    index = faiss.IndexIDMap2(faiss.IndexFlatIP(DIM))
    index.add_with_ids(vectors, np.arange(len(rows), dtype=np.int64))
    faiss.write_index(index, str(path / "index-000001.faiss"))
    rows.assign(record_id=np.arange(len(rows))).to_parquet(path / "records-000001.parquet", index=False)
    manifest = {"schema_version": schema_version, "encoder": ENCODER, "dimension": DIM, "index_type": "IDMap2,Flat",
                "generation": 1, "count": len(rows), "next_id": len(rows),
                "files": {"index": "index-000001.faiss", "records": "records-000001.parquet",
                          "index_sha256": _sha256(path / "index-000001.faiss"),
                          "records_sha256": _sha256(path / "records-000001.parquet")}}
    (path / MANIFEST).write_text(json.dumps(manifest))


def test_schema_1_store_opens_with_typed_attributes(tmp_path):
    """A single-generation store written before the schema (attributes as one JSON string) opens
    as one segment, and the next commit rewrites it as segments of the current version, nothing lost."""
    rows = record_rows([("a", "2021-06-01"), ("b", "2021-06-01")])
    rows["attributes"] = [json.dumps({"crop": "Maïs", "area_ha": 2.5}, ensure_ascii=False), "{}"]
    vectors = np.eye(2, DIM, dtype=np.float32)
    _single_generation_store(tmp_path / "old", rows, vectors, schema_version=1)

    old = Store.open(tmp_path / "old")
    assert old.migrated_from == 1 and old.layout_upgraded
    records = old.records().set_index("parcel_id")
    assert records.loc["a", "attr_crop"] == "Maïs" and records.loc["a", "attr_area_ha"] == 2.5
    assert pd.isna(records.loc["b", "attr_crop"]) and "attributes" not in records.columns
    assert len(old.records(RecordFilter(attributes={"crop": "mais"}))) == 1
    assert [h.record_id for h in old.search(vectors[1], 1)] == [1]
    np.testing.assert_array_equal(old.vectors([1, 0]), vectors[[1, 0]])
    old.upsert(record_rows([("c", "2021-06-01")]), np.eye(1, DIM, 2, dtype=np.float32))
    old.commit()
    reopened = Store.open(tmp_path / "old")
    assert reopened.migrated_from is None and reopened.manifest["schema_version"] == SCHEMA_VERSION
    assert reopened.manifest["layout"] == 2 and not reopened.layout_upgraded
    assert reopened.records().set_index("parcel_id").loc["a", "attr_crop"] == "Maïs"
    assert reopened.records()["record_id"].tolist() == [0, 1, 2]
    np.testing.assert_array_equal(reopened.vectors([0, 1]), vectors)
    names = sorted(p.name for p in (tmp_path / "old").iterdir() if not p.name.startswith("."))
    assert names == [MANIFEST, reopened.manifest["segments"][0]["name"]]


def test_schema_2_single_generation_store_opens(tmp_path):
    rows = record_rows([("a", "2021-06-01"), ("b", "2021-07-01")])
    _single_generation_store(tmp_path / "old", rows, np.eye(2, DIM, dtype=np.float32), schema_version=2)
    old = Store.open(tmp_path / "old")
    assert old.migrated_from is None and old.layout_upgraded and len(old) == 2
    assert old.history("a")["date"].tolist() == ["2021-06-01"]


def test_fold_is_case_and_accent_insensitive():
    assert fold("Betterave  SUCRIÈRE") == fold("betterave sucriere") == "betterave sucriere"


def test_empty_store_answers_with_empty_tables(tmp_path):
    s = Store.open_or_create(tmp_path / "empty", ENCODER)
    assert s.parcels().empty and s.dates() == [] and s.records().empty
    assert s.search(np.ones(DIM, np.float32), 3) == []


# -- similar parcels (indexer.query.similar): the one search every front end uses -------------------


def _usable_others(store: Store, parcel: str, rid: int) -> pd.DataFrame:
    table = store.records()
    return table[table["valid"] & (table["parcel_id"] != parcel) & (table["record_id"] != rid)]


def test_similar_equals_brute_force_over_usable_records_of_other_parcels(store):
    from indexer.query import similar

    target = store.record("BE-003", "2021-05-01")
    rid = int(target["record_id"])
    got = similar(store, "BE-003", "2021-05-01", 7)
    others = _usable_others(store, "BE-003", rid)
    scores = store.vectors(others["record_id"]) @ store.vector(rid)
    expected = others["record_id"].to_numpy()[np.argsort(-scores, kind="stable")][:7].tolist()
    assert got["record_id"].tolist() == expected
    assert (got["distance"] == 1 - got["score"]).all() and (got["status"] == "usable").all()
    assert similar(store, k=7, record_id=rid)["record_id"].tolist() == expected


def test_similar_within_a_crop_and_a_window(store):
    from indexer.query import similar

    got = similar(store, "BE-003", "2021-05-01", 50, crop="MAIZE", date_from="2021-05-01", date_to="2021-06-30")
    assert len(got) > 0 and set(got["date"]) <= {"2021-05-01", "2021-06-01"}
    crops = store.records().set_index("record_id").loc[got["record_id"], "attr_crop"]
    assert {fold(c) for c in crops} == {"maize"}
    both = similar(store, "BE-003", "2021-05-01", 200, crop=["maize", "Mais"], full=True)
    assert {fold(c) for c in both["attr_crop"]} == {"maize", "mais"}


def test_similar_per_parcel_gives_k_distinct_parcels(store):
    from indexer.query import similar

    got = similar(store, "BE-003", "2021-05-01", 12, per_parcel=True)
    assert len(got) == 12 and got["parcel_id"].is_unique
    scores = got["score"].tolist()
    assert scores == sorted(scores, reverse=True)


def test_similar_refuses_an_unusable_record_and_a_store_without_crops(store, tmp_path):
    from indexer.core.errors import StoreError
    from indexer.query import similar

    bad = store.records().query("valid == False").iloc[0]
    with pytest.raises(StoreError, match="flagged not valid"):
        similar(store, bad["parcel_id"], bad["date"])
    with pytest.raises(InputError, match="a parcel and a date, or a record id"):
        similar(store)
    plain = Store.open_or_create(tmp_path / "plain", ENCODER)
    plain.upsert(record_rows([("a", "2021-06-01"), ("b", "2021-06-01")]), np.eye(2, DIM, dtype=np.float32))
    plain.commit()
    with pytest.raises(InputError, match="no crop attribute"):
        similar(plain, "a", "2021-06-01", crop="maize")


def test_crop_column_names_the_crop_not_its_code():
    from indexer.core.schema import crop_column

    frame = pd.DataFrame({"attr_ct_code": [1110], "attr_crop_name": ["Winter wheat"], "attr_croptype": ["x"]})
    assert crop_column(frame) == "attr_crop_name"
    assert crop_column(frame[["attr_ct_code"]]) is None
    assert crop_column(pd.DataFrame({"attr_CULTURE": ["blé"]})) == "attr_CULTURE"


def test_history_carries_the_observation_status(store):
    from indexer.query import history

    rows = history(store, "BE-000")
    assert rows["date"].tolist() == sorted(rows["date"]) and len(rows) == len(DATES)
    assert set(rows["status"]) <= {"usable", "cloud", "nodata"}
    assert (rows["status"] == "usable").tolist() == rows["valid"].tolist()
    assert rows["status_reason"].str.len().gt(0).all()
