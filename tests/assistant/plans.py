"""Hand-written query plans for the assistant's tests (the parser has its own tests).

A module of its own, not conftest: several test folders have a conftest, and `from conftest
import ...` reaches whichever pytest loaded last.
"""

from __future__ import annotations

import datetime as dt

from assistant.plan import ClassCondition, Condition, DateWindow, Places, QueryPlan


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
