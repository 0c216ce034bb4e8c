"""What the store cannot know (yields, prices, weather forecasts, owners, future values): declined
in one sentence that says what can be answered instead. Cites nothing."""

from __future__ import annotations

from assistant.answers.turn import AnswerContext, Found, Turn
from assistant.compose import Composition

TEXTS = {
    "en": ("I cannot answer that: this archive holds only Sentinel-2 observations of the parcels (vegetation "
           "indices, cloud and snow) from {first} to {last}, not yields, prices, weather or forecasts; I can tell "
           "you how a parcel's vegetation looked on a date, how it compares with past seasons, when it was "
           "harvested, or which dates were cloudy."),
    "fr": ("Je ne peux pas répondre à cela : cette archive ne contient que des observations Sentinel-2 des "
           "parcelles (indices de végétation, nuages et neige) du {first} au {last}, pas de rendements, de prix, "
           "de météo ni de prévisions ; je peux dire comment était la végétation d'une parcelle à une date, la "
           "comparer aux saisons passées, dater sa récolte ou indiquer les dates nuageuses."),
}


def retrieve(turn: Turn, ctx: AnswerContext) -> Found:
    return Found()


def compose(turn: Turn, ctx: AnswerContext) -> Composition:
    out = Composition()
    dates = ctx.dates()
    first, last = (dates[0], dates[-1]) if dates else ("-", "-")
    out.add(TEXTS.get(turn.lang, TEXTS["en"]).format(first=first, last=last))
    return out
