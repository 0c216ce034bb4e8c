"""Fixtures of the assistant tests: a small indexed farm store (eval/farm.py rasters) and plans.

Chain tests inject hand-written `QueryPlan`s (the parser has its own tests); the CLI and API tests
run the real parser.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from assistant.plan import ClassCondition, Condition, DateWindow, Places, QueryPlan
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


def window(start: str, end: str | None = None, label: str | None = None) -> DateWindow:
    end = end or start
    return DateWindow(dt.date.fromisoformat(start), dt.date.fromisoformat(end), label or (start if start == end else f"{start} to {end}"))


def make_plan(question: str = "?", intent: str = "describe", parcels=(), win: DateWindow | None = None,
              compare=(), index: str | None = None, condition: Condition | None = None,
              class_condition: ClassCondition | None = None, lang: str = "en", attributes=None,
              unresolved=(), k: int = 5, reference: str = "2023-10-02", all_parcels: bool = False,
              date_rule: str = "") -> QueryPlan:
    return QueryPlan(
        question=question, lang=lang, intent=intent,
        places=Places(parcel_ids=tuple(parcels), attributes=attributes or {}, unresolved=tuple(unresolved),
                      all_parcels=all_parcels),
        window=win, compare_windows=tuple(compare), index=index, condition=condition,
        class_condition=class_condition, k=k, reference_date=dt.date.fromisoformat(reference),
        date_rule=date_rule, notes=(),
    )


def fixed(plan: QueryPlan):
    """A parser that returns `plan` whatever the question."""
    return lambda question, context, today=None, lang=None: plan
