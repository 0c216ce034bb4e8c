"""Suspect acquisitions: the rule lives in the library (`indexer.observations`), per area, so that
the map and the assistant flag the same dates. Re-exported here for callers of the earlier path."""

from __future__ import annotations

from indexer.observations import DEFAULT_RULE, SuspectDate, SuspectRule, Suspects, find_suspects

__all__ = ["DEFAULT_RULE", "SuspectDate", "SuspectRule", "Suspects", "find_suspects"]
