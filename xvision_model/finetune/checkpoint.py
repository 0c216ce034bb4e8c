"""Checkpoints after every epoch, safetensors and JSON only.

    checkpoint/  state.json (stage, epoch, step, losses; the commit point), trainable-*.safetensors,
                 optimizer-*.safetensors (AdamW moments and the RNG state), tokenizer/ and base/
                 (tiny: the trained tokenizer and the stage-1 LM)

Tensors are written under step-numbered names first and `state.json` last, so a crash at any
point leaves the previous checkpoint whole; `resume` continues exactly where it ended.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from indexer.core.errors import WeightsError

CHECKPOINT_DIR = "checkpoint"
STATE_NAME = "state.json"
CHECKPOINT_FORMAT = 1


def write_json(path: Path, data: dict) -> None:
    """Write `data` to `path` atomically (a temporary file, then a rename)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def trainable(module: nn.Module) -> dict[str, nn.Parameter]:
    return {n: p for n, p in module.named_parameters() if p.requires_grad}


def read_state(checkpoint: Path) -> dict | None:
    """The last committed state in `checkpoint`, or None when there is none."""
    path = checkpoint / STATE_NAME
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise WeightsError(f"{path}: unreadable checkpoint state ({exc})", path=path) from None
    if state.get("format") != CHECKPOINT_FORMAT:
        raise WeightsError(f"{path}: unsupported checkpoint format {state.get('format')!r}", path=path,
                           field="format", value=state.get("format"))
    return state


def _rng_tensors() -> dict[str, torch.Tensor]:
    out = {"rng/cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        out["rng/cuda"] = torch.cuda.get_rng_state()
    return out


def save_checkpoint(checkpoint: Path, state: dict, params: dict[str, nn.Parameter] | None = None,
                    optimizer: torch.optim.Optimizer | None = None) -> dict:
    """Write the tensors under step-numbered names, then `state.json` (the commit point); returns the state written."""
    checkpoint.mkdir(parents=True, exist_ok=True)
    files = {}
    if params is not None and optimizer is not None:
        tag = f"{state['stage']}-{state['step']:07d}"
        trainable_tensors = {n: p.detach().cpu().contiguous() for n, p in params.items()}
        moments = _rng_tensors()
        for name, p in params.items():
            for key, value in optimizer.state.get(p, {}).items():
                if torch.is_tensor(value):
                    moments[f"{name}/{key}"] = value.detach().cpu().contiguous()
        files = {"trainable": f"trainable-{tag}.safetensors", "optimizer": f"optimizer-{tag}.safetensors"}
        for key, tensors in (("trainable", trainable_tensors), ("optimizer", moments)):
            tmp = checkpoint / (files[key] + ".tmp")
            save_file(tensors, str(tmp))
            os.replace(tmp, checkpoint / files[key])
    state = {**state, "format": CHECKPOINT_FORMAT, "files": files}
    write_json(checkpoint / STATE_NAME, state)
    for stale in checkpoint.glob("*.safetensors"):
        if stale.name not in files.values():
            stale.unlink(missing_ok=True)
    return state


def load_params(params: dict[str, nn.Parameter], path: Path) -> None:
    """Copy the tensors saved in `path` into `params` (the names must match exactly)."""
    if not path.is_file():
        raise WeightsError(f"{path}: checkpoint tensors missing; cannot resume", path=path)
    state = load_file(str(path))
    if set(state) != set(params):
        raise WeightsError(
            f"{path}: checkpoint does not match the model being resumed (missing "
            f"{sorted(set(params) - set(state))[:3]}, unexpected {sorted(set(state) - set(params))[:3]})", path=path,
        )
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(state[name].to(p.device, p.dtype))


def load_optimizer(optimizer: torch.optim.Optimizer, params: dict[str, nn.Parameter], path: Path) -> None:
    """Restore AdamW's moments for `params` and the RNG state saved with them."""
    tensors = load_file(str(path))
    for name, p in params.items():
        entry = {k.rsplit("/", 1)[1]: v for k, v in tensors.items() if k.rsplit("/", 1)[0] == name}
        if entry:
            # AdamW keeps `step` on the CPU unless capturable/fused; the moments live with the parameter.
            on_device = bool(optimizer.defaults.get("fused") or optimizer.defaults.get("capturable"))
            optimizer.state[p] = {k: (v.to(p.device) if k != "step" or on_device else v) for k, v in entry.items()}
    torch.set_rng_state(tensors["rng/cpu"])
    if torch.cuda.is_available() and "rng/cuda" in tensors:
        torch.cuda.set_rng_state(tensors["rng/cuda"])
