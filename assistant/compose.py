"""The answer under construction: what each kind of answer (`assistant.answers`) writes into.

A kind adds sentences and cites the records (with the statistics) each one rests on; counts and
derived values (a mean, a median it computed from cited values) are declared so that the chain's
grounding gate (`assistant.grounding.Evidence`) can check every number before it is shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from langchain_core.documents import Document


@dataclass
class Composition:
    """The answer under construction."""

    sentences: list[str] = field(default_factory=list)
    cited: list[tuple[Document, tuple[str, ...]]] = field(default_factory=list)
    similar: list[dict] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: Counts the answer states (parcels, dates): numbers no record holds but the composer knows.
    counts: list[int] = field(default_factory=list)
    #: Numbers the answer computes from cited values (a mean, a median), as written.
    derived: list[str] = field(default_factory=list)
    #: Numbers of the product's own documented rules the answer quotes (a class threshold of
    #: `indexer.analysis.CLASS_RULES`): facts about the method, not about a field.
    rules: list[float] = field(default_factory=list)

    def add(self, sentence: str) -> None:
        self.sentences.append(sentence)

    def cite(self, doc: Document, columns: Sequence[str]) -> None:
        self.cited.append((doc, tuple(columns)))


__all__ = ["Composition"]
