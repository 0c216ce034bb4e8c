"""The instruction each analysis answers, per language: training and generation use the same.

Its own module so that serving (`xvision_model.writer`, `assistant.generator`) reads it without
importing torch.
"""

PROMPTS: dict[str, str] = {
    "en": "Describe the agronomic state of this parcel.",
    "fr": "Décris l'état agronomique de cette parcelle.",
}
