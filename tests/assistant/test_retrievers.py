"""Retrievers over the store: documents carry the store's own values; similar search filters and scores."""

from __future__ import annotations

import math

import numpy as np
import pytest
from langchain_core.retrievers import BaseRetriever

from assistant.documents import STAT_COLUMNS
from assistant.retrievers import (HistoryRetriever, SimilarRetriever, TargetRetriever, history_query, similar_query,
                                  target_query)
from indexer.core.errors import InputError, NotFoundError


def test_target_documents_carry_the_stored_values(view):
    retriever = TargetRetriever(store=view)
    assert isinstance(retriever, BaseRetriever)
    docs = retriever.invoke(target_query(["farm-01"], "2022-06-01", "2022-08-31"))
    assert [d.metadata["date"] for d in docs] == ["2022-06-24", "2022-07-19", "2022-08-13"]
    table = view.records().set_index("record_id")
    for doc in docs:
        row = table.loc[doc.metadata["record_id"]]
        assert doc.metadata["parcel_id"] == row["parcel_id"] == "farm-01"
        for column in (*STAT_COLUMNS, "valid_fraction", "cloud_fraction"):
            assert doc.metadata[column] == row[column]  # exactly the store's float
        assert doc.metadata["source"] == row["source"] and doc.metadata["source"].endswith(".tif")
        assert doc.page_content == row["analysis"] and doc.metadata["analysis_fr"] == row["analysis_fr"]
        assert doc.metadata["attributes"]["crop"] == "winter wheat"


def test_target_by_attribute_is_case_and_accent_insensitive(view):
    for name, value in (("attr_crop", "MAÏZE"), ("crop", "Maize")):
        docs = TargetRetriever(store=view).invoke(target_query(attributes={name: [value]}, date_from="2023-05-30",
                                                               date_to="2023-05-30"))
        assert sorted(d.metadata["parcel_id"] for d in docs) == ["farm-02", "farm-05"]
    # Equality, not substring: "wheat" is not "winter wheat".
    assert TargetRetriever(store=view).invoke(target_query(attributes={"crop": ["wheat"]})) == []


def test_similar_excludes_the_parcel_and_scores_by_cosine(view):
    target = view.records()
    rid = int(target[(target.parcel_id == "farm-01") & (target.date == "2022-05-30")]["record_id"].iloc[0])
    docs = SimilarRetriever(store=view).invoke(similar_query(rid, k=4))
    assert len(docs) == 4
    assert all(d.metadata["parcel_id"] != "farm-01" and d.metadata["valid"] for d in docs)
    query = view.vectors([rid])[0]
    for doc in docs:
        cosine = float(np.dot(query, view.vectors([doc.metadata["record_id"]])[0]))
        assert doc.metadata["score"] == pytest.approx(cosine, abs=1e-5)
        assert doc.metadata["distance"] == pytest.approx(1 - cosine, abs=1e-5)
    scores = [d.metadata["score"] for d in docs]
    assert scores == sorted(scores, reverse=True)
    # The twin field (same crop, same curve) on the same day of a season is the nearest.
    assert docs[0].metadata["parcel_id"] == "farm-04" and docs[0].metadata["date"].endswith("-05-30")


def test_similar_filters_dates_and_attributes(view):
    records = view.records()
    rid = int(records[(records.parcel_id == "farm-02") & (records.date == "2023-08-13")]["record_id"].iloc[0])
    docs = SimilarRetriever(store=view).invoke(similar_query(rid, k=10, date_from="2021-01-01", date_to="2021-12-31",
                                                             attributes={"crop": ["maize"]}))
    assert docs and {d.metadata["parcel_id"] for d in docs} == {"farm-05"}
    assert all(d.metadata["date"].startswith("2021") for d in docs)
    with pytest.raises(NotFoundError):
        SimilarRetriever(store=view).invoke(similar_query(10**6))


def test_history_windows_are_labelled(view):
    docs = HistoryRetriever(store=view).invoke(history_query("farm-03", [("2022-06-01", "2022-06-30", "June 2022"),
                                                                         ("2021-06-01", "2021-06-30", "June 2021")]))
    assert [(d.metadata["date"], d.metadata["window"]) for d in docs] == [("2022-06-24", "June 2022"),
                                                                          ("2021-06-24", "June 2021")]
    assert not docs[1].metadata["valid"]  # cloud on 2021-06-24 over the northern parcels
    everything = HistoryRetriever(store=view).invoke(history_query("farm-03"))
    assert len(everything) == 27 and all(not math.isnan(d.metadata["valid_fraction"]) for d in everything)
    with pytest.raises(NotFoundError):
        HistoryRetriever(store=view).invoke(history_query("nope"))
    with pytest.raises(InputError):
        HistoryRetriever(store=view).invoke("not json")
