"""Question answering over a store: parsing, LangChain retrievers, the chain and grounded answers."""

from __future__ import annotations


def __getattr__(name: str):
    # Lazy: `import assistant.plan` (the parser, the app) must not load torch and transformers.
    if name == "Assistant":
        from assistant.api import Assistant

        return Assistant
    if name == "encoder_for":
        from assistant.indexing import encoder_for

        return encoder_for
    raise AttributeError(name)


__all__ = ["Assistant", "encoder_for"]
