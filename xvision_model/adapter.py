"""The vision adapter: encoder features -> a few visual tokens in the language model's width.

One class, `VisionAdapter`, built from one config, `AdapterConfig` (LLaVA's habit: the
configuration is written next to the weights, so loading rebuilds the same module instead of
relying on a second copy of the class): the record's global embedding [B, in_dim] -> MLP ->
[B, num_tokens, lm_hidden]. There is no patch-token projector: a store keeps one embedding per
record, not the encoder's patch tokens, so nothing could train or feed one.

With ``anchor`` (encoders whose embedding is L2-normalized with a constant component, `spectral-v2`)
the adapter first undoes that normalization: every component is divided by the anchor component,
which gives back the encoder's features (the index means exactly as the analysis states them) and
keeps the anchor itself (the inverse of the vector's length). Without it a statistic reaches the
MLP multiplied by 1 / |f|, which varies from parcel to parcel with everything else in the vector,
so a class break on NDMI would have to be learned as a break on a ratio.

With ``standardize`` the features are then centred and scaled per dimension by statistics of the
training features (`set_input_scale`), kept as buffers in the safetensors file: the raw embedding
dimensions differ in spread by orders of magnitude (an L2-normalized spectral vector's index
components move by a few hundredths), and a probe on the stored Hesbaye vectors classifies
held-out parcels' vigor / moisture / cover better from standardized inputs (0.958 vs 0.932, mean
of 5 seeds).

On disk: ``adapter.safetensors`` + ``adapter_config.json`` in one directory; never pickle.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from indexer.core.errors import InputError, WeightsError, require_positive_int

WEIGHTS_NAME = "adapter.safetensors"
CONFIG_NAME = "adapter_config.json"


@dataclass(frozen=True)
class AdapterConfig:
    """Everything needed to rebuild a `VisionAdapter`; saved as ``adapter_config.json``.

    `hidden_mult` sets the MLP's inner width (``hidden_mult * lm_hidden``); `depth` is its number
    of Linear layers (2 = LLaVA's ``mlp2x_gelu``, 1 = a linear projector). `standardize` adds the
    per-dimension input scaling (buffers ``input_mean`` / ``input_std``). `anchor` is the index of
    the embedding's constant component, or None (see the module docstring).
    """

    in_dim: int = 64
    lm_hidden: int = 896
    num_tokens: int = 8
    hidden_mult: float = 1.0
    depth: int = 2
    standardize: bool = False
    anchor: int | None = None

    def __post_init__(self) -> None:
        for name in ("in_dim", "lm_hidden", "num_tokens", "depth"):
            require_positive_int(getattr(self, name), f"adapter {name}")
        if isinstance(self.hidden_mult, bool) or not isinstance(self.hidden_mult, (int, float)) or self.hidden_mult <= 0:
            raise InputError(f"adapter hidden_mult must be a positive number, got {self.hidden_mult!r}")
        if not isinstance(self.standardize, bool):
            raise InputError(f"adapter standardize must be true or false, got {self.standardize!r}")
        if self.anchor is not None and (isinstance(self.anchor, bool) or not isinstance(self.anchor, int)
                                        or not 0 <= self.anchor < self.in_dim):
            raise InputError(f"adapter anchor must be a component index below in_dim={self.in_dim}, got {self.anchor!r}",
                             field="anchor", value=self.anchor)

    @property
    def hidden_dim(self) -> int:
        return max(1, round(self.hidden_mult * self.lm_hidden))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict, source: str = "adapter config") -> AdapterConfig:
        data = dict(data)
        # Adapters saved before the patch projector was removed name their (only usable) mode.
        mode = data.pop("mode", "gap")
        if mode != "gap":
            raise WeightsError(f"{source}: adapter mode {mode!r} is no longer supported (only the global-embedding adapter exists)")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise WeightsError(f"{source}: unknown adapter config keys {unknown}")
        try:
            return cls(**data)
        except (InputError, TypeError) as exc:
            raise WeightsError(f"{source}: {exc}") from None

    def to_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def from_json(cls, path: str | Path) -> AdapterConfig:
        path = Path(path)
        if not path.is_file():
            raise WeightsError(f"{path}: adapter config not found")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise WeightsError(f"{path}: not a readable JSON adapter config ({exc})") from None
        if not isinstance(data, dict):
            raise WeightsError(f"{path}: expected a JSON object")
        return cls.from_dict(data, source=str(path))


def build_mlp(in_dim: int, hidden: int, out_dim: int, depth: int) -> nn.Sequential:
    """Linear (-GELU-Linear)*: `depth` Linear layers, GELU between them (LLaVA's mlp{depth}x_gelu)."""
    widths = [in_dim] + [hidden] * (depth - 1) + [out_dim]
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        if i:
            layers.append(nn.GELU())
        layers.append(nn.Linear(a, b))
    return nn.Sequential(*layers)


class VisionAdapter(nn.Module):
    """Projects encoder output to `config.num_tokens` visual tokens of width `config.lm_hidden`."""

    def __init__(self, config: AdapterConfig) -> None:
        super().__init__()
        self.config = config
        # One vector must become several tokens, so the last layer emits them all at once.
        self.mlp = build_mlp(config.in_dim, config.hidden_dim, config.lm_hidden * config.num_tokens, config.depth)
        if config.standardize:
            self.register_buffer("input_mean", torch.zeros(config.in_dim))
            self.register_buffer("input_std", torch.ones(config.in_dim))

    @torch.no_grad()
    def set_input_scale(self, features: torch.Tensor) -> None:
        """Set the standardization from training features [N, in_dim].

        The std has a floor (1 % of the features' RMS) so that a dimension nearly constant in
        training does not blow up on imagery where it varies.
        """
        if not self.config.standardize:
            raise InputError("this adapter was configured without standardize; nothing to set")
        flat = features.reshape(-1, features.shape[-1]).double()
        if flat.shape[-1] != self.config.in_dim or len(flat) < 2:
            raise InputError(f"need at least 2 feature rows of width {self.config.in_dim}, got {tuple(features.shape)}")
        flat = self.unanchor(flat)
        floor = 0.01 * flat.pow(2).mean().sqrt().clamp_min(1e-12)
        self.input_mean.copy_(flat.mean(0))
        self.input_std.copy_(flat.std(0).clamp_min(floor))

    def unanchor(self, features: torch.Tensor) -> torch.Tensor:
        """[N, in_dim] with every component but the anchor divided by the anchor (identity without
        one). A zero vector (an observation with no valid pixel) stays zero."""
        k = self.config.anchor
        if k is None:
            return features
        anchor = features[:, k:k + 1]
        ratio = features / anchor.clamp_min(torch.finfo(features.dtype).tiny)
        out = torch.where(anchor > 0, ratio, torch.zeros_like(features))
        out[:, k] = anchor[:, 0]
        return out

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """[B, in_dim] -> [B, num_tokens, lm_hidden]."""
        cfg = self.config
        if features.dim() != 2 or features.shape[-1] != cfg.in_dim:
            raise InputError(
                f"the vision adapter expects features [B, in_dim] with in_dim={cfg.in_dim}, "
                f"got {tuple(features.shape)}; was the adapter trained for another encoder?",
                field="features", value=tuple(features.shape),
            )
        features = self.unanchor(features.to(self.mlp[0].weight.dtype))
        if cfg.standardize:
            features = (features - self.input_mean.to(features.dtype)) / self.input_std.to(features.dtype)
        return self.mlp(features).view(features.shape[0], cfg.num_tokens, cfg.lm_hidden)

    def save(self, directory: str | Path) -> None:
        """Write ``adapter.safetensors`` and ``adapter_config.json`` into `directory`."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        save_file(state, str(directory / WEIGHTS_NAME), metadata={"format": "pt"})
        self.config.to_json(directory / CONFIG_NAME)

    @classmethod
    def load(cls, directory: str | Path) -> VisionAdapter:
        """Rebuild from ``adapter_config.json`` and load ``adapter.safetensors`` strictly."""
        directory = Path(directory)
        config = AdapterConfig.from_json(directory / CONFIG_NAME)
        weights = directory / WEIGHTS_NAME
        if not weights.is_file():
            raise WeightsError(f"{weights}: adapter weights not found")
        try:
            state = load_file(str(weights))
        except Exception as exc:  # truncated or non-safetensors file
            raise WeightsError(f"{weights}: not a readable safetensors file ({exc})") from None
        adapter = cls(config)
        expected, given = set(adapter.state_dict()), set(state)
        if expected != given:
            raise WeightsError(
                f"{weights}: does not match {CONFIG_NAME} (missing: {sorted(expected - given)[:5]}, "
                f"unexpected: {sorted(given - expected)[:5]})"
            )
        try:
            adapter.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise WeightsError(f"{weights}: tensors of the wrong shape ({' '.join(str(exc).split())[:300]})") from None
        return adapter
