"""Training the generator on a store: pairs and split (`dataset`), profiles, the loop (`train`)."""

from xvision_model.finetune.dataset import PROMPTS, Split, build_pairs, held_out_parcels
from xvision_model.finetune.profiles import FULL, PROFILES, TINY, Profile, StageSettings, get_profile
from xvision_model.lm import TinyLMSettings
from xvision_model.finetune.train import TrainResult, train

__all__ = [
    "FULL", "PROFILES", "PROMPTS", "TINY", "Profile", "Split", "StageSettings", "TinyLMSettings", "TrainResult",
    "build_pairs", "get_profile", "held_out_parcels", "train",
]
