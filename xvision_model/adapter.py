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

With ``numeric_bins`` > 0 each standardized feature also enters the MLP piecewise-linearly
encoded over that many bins between quantiles of the training features (Gorishniy et al. 2022,
"On Embeddings for Numerical Features in Tabular Deep Learning"): component t of feature x is
clamp((x - e_t) / (e_(t+1) - e_t), 0, 1). A GELU MLP on the raw value learns smooth functions of
it (the "spectral bias" of MLPs), while the analysis turns a value into a class at a fixed break
(NDMI 0.1 and 0.3): every class error the tiny model made on held-out Hesbaye cells and on
BigEarthNet was a value within 0.044 of a break (median 0.012), though the embedding holds the
index means to 0.002 (median). The encoding lets a linear layer place a step between two edges.

Where the edges go is `bin_fit`. "quantile": between quantiles of the training features.
"target" (the tree-based bins of the same paper, fitted to the classes the analyses state): a
decision tree on each feature alone, fitted to the training records' classes, finds where along
that feature a class changes; each such threshold becomes a narrow bin (its two edges
`STEP_HALF_WIDTH` standard deviations either side), whose component rises from 0 to 1 across the
threshold: a step where the analysis has one, which quantile bins (a ramp over a bin a few
hundredths of NDMI wide) cannot place. The remaining edges are quantiles. On the stored features
of `hb`, a probe MLP trained on its cells classified held-out cells all-three-right 0.919-0.924
against 0.905-0.910 with quantile bins, and Flanders (never seen) 0.889-0.895 against 0.873-0.876
(docs/experiments.md).

On disk: ``adapter.safetensors`` + ``adapter_config.json`` in one directory; never pickle.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from indexer.core.errors import InputError, WeightsError, require_positive_int

WEIGHTS_NAME = "adapter.safetensors"
BIN_FITS: tuple[str, ...] = ("quantile", "target")
#: Half the width of the narrow bin placed at each class threshold, in standard deviations of
#: the feature: about the precision the embedding holds an index mean to (0.002 of NDMI, whose
#: training spread is a few tenths). The probe scored 0.002-0.02 alike, 0.05 lower.
STEP_HALF_WIDTH = 0.01
#: Class thresholds kept per feature (a tree of this many + 1 leaves): two breaks per aspect,
#: and room for a feature that two aspects read.
STEPS_PER_FEATURE = 4
CONFIG_NAME = "adapter_config.json"


@dataclass(frozen=True)
class AdapterConfig:
    """Everything needed to rebuild a `VisionAdapter`; saved as ``adapter_config.json``.

    `hidden_mult` sets the MLP's inner width (``hidden_mult * lm_hidden``); `depth` is its number
    of Linear layers (2 = LLaVA's ``mlp2x_gelu``, 1 = a linear projector). `standardize` adds the
    per-dimension input scaling (buffers ``input_mean`` / ``input_std``). `anchor` is the index of
    the embedding's constant component, or None (see the module docstring). `numeric_bins` adds
    the piecewise-linear encoding of each standardized feature over that many bins
    (buffer ``bin_edges``; needs `standardize`; 0: none), its edges placed by `bin_fit`
    ("quantile", or "target": steps at the training classes' thresholds; see the module docstring).
    """

    in_dim: int = 64
    lm_hidden: int = 896
    num_tokens: int = 8
    hidden_mult: float = 1.0
    depth: int = 2
    standardize: bool = False
    anchor: int | None = None
    numeric_bins: int = 0
    bin_fit: str = "quantile"

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
        if isinstance(self.numeric_bins, bool) or not isinstance(self.numeric_bins, int) or self.numeric_bins < 0:
            raise InputError(f"adapter numeric_bins must be a non-negative integer, got {self.numeric_bins!r}",
                             field="numeric_bins", value=self.numeric_bins)
        if self.numeric_bins and not self.standardize:
            raise InputError("adapter numeric_bins needs standardize (the bins are quantiles of the scaled features)",
                             field="numeric_bins", value=self.numeric_bins)
        if self.bin_fit not in BIN_FITS:
            raise InputError(f"adapter bin_fit must be one of {', '.join(BIN_FITS)}, got {self.bin_fit!r}",
                             field="bin_fit", value=self.bin_fit)
        if self.bin_fit == "target" and self.numeric_bins < 2 * STEPS_PER_FEATURE + 2:
            raise InputError(f"adapter bin_fit 'target' needs numeric_bins >= {2 * STEPS_PER_FEATURE + 2} "
                             f"(two edges per threshold and room for quantiles), got {self.numeric_bins}",
                             field="numeric_bins", value=self.numeric_bins)

    @property
    def mlp_in_dim(self) -> int:
        """Width of the MLP's input: each feature, plus its bins when `numeric_bins` is set."""
        return self.in_dim * (1 + self.numeric_bins)

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


def target_edges(scaled: np.ndarray, targets: np.ndarray, bins: int) -> np.ndarray:
    """[in_dim, bins + 1] sorted edges per standardized feature (`scaled` [N, in_dim]): a narrow
    bin at each threshold where a one-feature decision tree (scikit-learn's CART, fitted to the
    rows' classes `targets` [N, k], rows with a -1 left out) splits, then quantiles for the rest.
    """
    from sklearn.tree import DecisionTreeClassifier  # training only: serving never fits edges

    keep = (targets >= 0).all(axis=1)
    if keep.sum() < 2:
        raise InputError("adapter bin_fit 'target' needs at least 2 rows with every class target set",
                         field="targets", value=int(keep.sum()))
    x_fit, y_fit = scaled[keep], targets[keep]
    out = np.empty((scaled.shape[1], bins + 1))
    for j in range(scaled.shape[1]):
        # A leaf of at least 0.5 % of the rows: a threshold is where many records change class,
        # not around a handful of outliers.
        tree = DecisionTreeClassifier(max_leaf_nodes=STEPS_PER_FEATURE + 1, random_state=0,
                                      min_samples_leaf=max(5, len(x_fit) // 200))
        tree.fit(x_fit[:, j:j + 1], y_fit)
        thresholds = np.sort(tree.tree_.threshold[tree.tree_.feature >= 0])
        steps = np.concatenate([thresholds - STEP_HALF_WIDTH, thresholds + STEP_HALF_WIDTH])
        quantiles = np.quantile(scaled[:, j], np.linspace(0, 1, bins + 1 - len(steps)))
        out[j] = np.sort(np.concatenate([steps, quantiles]))
    return out


class VisionAdapter(nn.Module):
    """Projects encoder output to `config.num_tokens` visual tokens of width `config.lm_hidden`."""

    def __init__(self, config: AdapterConfig) -> None:
        super().__init__()
        self.config = config
        # One vector must become several tokens, so the last layer emits them all at once.
        self.mlp = build_mlp(config.mlp_in_dim, config.hidden_dim, config.lm_hidden * config.num_tokens, config.depth)
        if config.standardize:
            self.register_buffer("input_mean", torch.zeros(config.in_dim))
            self.register_buffer("input_std", torch.ones(config.in_dim))
        if config.numeric_bins:
            # Until set_input_scale: evenly spaced edges over +-3 standard deviations.
            edges = torch.linspace(-3.0, 3.0, config.numeric_bins + 1)
            self.register_buffer("bin_edges", edges.repeat(config.in_dim, 1))

    @torch.no_grad()
    def set_input_scale(self, features: torch.Tensor, targets: np.ndarray | None = None) -> None:
        """Set the standardization (and the bins' edges) from training features [N, in_dim].

        The std has a floor (1 % of the features' RMS) so that a dimension nearly constant in
        training does not blow up on imagery where it varies. `targets` [N, k]: each row's class
        index per aspect (-1 where it has none), needed by ``bin_fit="target"``.
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
        if not self.config.numeric_bins:
            return
        scaled = (flat - self.input_mean.double()) / self.input_std.double()
        if self.config.bin_fit == "target":
            if targets is None or len(targets) != len(flat):
                raise InputError(f"adapter bin_fit 'target' needs one row of class targets per feature row "
                                 f"({len(flat)}), got {None if targets is None else len(targets)}",
                                 field="targets")
            edges = torch.from_numpy(target_edges(scaled.numpy(), np.asarray(targets), self.config.numeric_bins))
        else:
            levels = torch.linspace(0, 1, self.config.numeric_bins + 1, dtype=torch.float64)
            edges = torch.quantile(scaled, levels, dim=0).T  # [in_dim, bins + 1]
        # Strictly increasing, so that every bin has a width (a constant dimension, ties).
        steps = torch.arange(self.config.numeric_bins + 1, dtype=torch.float64) * 1e-4
        self.bin_edges.copy_(torch.cummax(edges, dim=1).values + steps)

    def encode_bins(self, features: torch.Tensor) -> torch.Tensor:
        """[B, in_dim] standardized -> [B, in_dim * numeric_bins]: the piecewise-linear encoding
        (see the module docstring), each component in [0, 1]."""
        edges = self.bin_edges.to(features.dtype)
        low, width = edges[:, :-1], edges[:, 1:] - edges[:, :-1]
        return ((features[:, :, None] - low) / width).clamp(0.0, 1.0).flatten(1)

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
        if cfg.numeric_bins:
            features = torch.cat([features, self.encode_bins(features)], dim=1)
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
