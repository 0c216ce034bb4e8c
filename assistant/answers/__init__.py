"""The kinds of answer: one module per kind (its retrieval and its composition), chosen by the
table in `assistant.answers.registry`.

Each kind module has ``retrieve(turn, ctx) -> Found`` and ``compose(turn, ctx) -> Composition``
(see `assistant.answers.turn`); ``DESCRIBES_FOCUS = True`` lets the chain's generator describe its
focus observation. Shared rules and words are in `common` and `checks`. This package imports
nothing heavy: the parser reads the trigger words of the registry.
"""
