"""Which generator answers for a store: the one asked for, the one registered with the store, or the
project's bundled default — provided it was trained on the store's encoder.

Lookup order (`choose_model`): an explicit model directory; the store's registered model (the
manifest's ``"model"`` entry, a path relative to the store or absolute, else a ``model/`` folder
inside the store); the bundled default `BUNDLED_MODEL` (``models/tiny-demo`` at the repository
root). A candidate fits when its model card's encoder is the store's and its adapter takes vectors
of the store's dimension. When none fits, the assistant answers from the records' own analyses
and the choice's `notes` say so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from assistant.store_access import StoreView
from indexer.core.errors import XVisionError

#: The model directory the demo ships (may be absent; then no bundled default exists).
BUNDLED_MODEL = Path(__file__).resolve().parents[1] / "models" / "tiny-demo"


@dataclass
class ModelChoice:
    """The generator chosen for a store (`path` None: none fits) and why, in plain words."""

    path: Path | None
    card: dict | None
    origin: str  # "explicit", "registered", "bundled" or "none"
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _candidates(view: StoreView, model_dir: str | Path | None) -> list[tuple[str, Path]]:
    if model_dir is not None:
        return [("explicit", Path(model_dir))]
    out = []
    registered = view.manifest.get("model")
    if isinstance(registered, str) and registered:
        path = Path(registered)
        out.append(("registered", path if path.is_absolute() else view.path / path))
    out.append(("registered", view.path / "model"))
    out.append(("bundled", BUNDLED_MODEL))
    return out


def fits(card: dict, view: StoreView) -> str | None:
    """Why the model of `card` cannot read this store's vectors (None when it can)."""
    if card.get("encoder") != view.encoder_id:
        return f"it was trained on {card.get('encoder')!r} embeddings, the store holds {view.encoder_id!r}"
    in_dim = (card.get("adapter") or {}).get("in_dim")
    dim = view.manifest.get("dimension")
    if in_dim is not None and dim is not None and int(in_dim) != int(dim):
        return f"its adapter takes {in_dim}-d vectors, the store's are {dim}-d"
    return None


def choose_model(view: StoreView, model_dir: str | Path | None = None) -> ModelChoice:
    """The first candidate model that fits `view` (see the module docstring)."""
    from xvision_model.artifacts import read_card

    notes: list[str] = []
    warnings: list[str] = []
    for origin, path in _candidates(view, model_dir):
        if origin != "explicit" and not (path / "model_card.json").is_file():
            if origin == "bundled":
                notes.append(f"no bundled default model at {path}")
            continue
        try:
            card = read_card(path)
        except XVisionError as exc:
            (warnings if origin == "explicit" else notes).append(f"model {path} not used: {exc}")
            continue
        why = fits(card, view)
        if why:
            (warnings if origin == "explicit" else notes).append(f"model {path} does not fit this store: {why}")
            continue
        notes.append(f"generator: {origin} model {path} (profile {card.get('profile')}, encoder {card.get('encoder')})")
        return ModelChoice(path, card, origin, notes, warnings)
    notes.append(f"no generator model fits this store's encoder ({view.encoder_id}); the answer is composed "
                 "from the records' own analyses")
    return ModelChoice(None, None, "none", notes, warnings)
