"""Understanding the question: English or French text -> a typed `QueryPlan`.

`parse(question, context, today=None, lang=None)` is the entry point; `StoreContext` (from
`assistant.plan`) says what the store holds. The rules for dates are in `assistant.parsing.dates`,
for places in `assistant.parsing.places`, for intents, indices and filters in
`assistant.parsing.intent`. Language: French when French marker words outnumber English ones
(`assistant.parsing.text.detect_lang`), else English; `lang=` overrides.
"""

from assistant.parsing.parser import parse
from assistant.plan import StoreContext

__all__ = ["StoreContext", "parse"]
