"""Every random stream of a training run, derived one way from the run's seed.

`numpy.random.SeedSequence` mixes the run's seed with a named purpose (and integers such as the
stage and epoch), so the streams are independent of each other, the same on every machine, and
a resumed run draws exactly what an uninterrupted one would. No stream is "seed + 1".
"""

from __future__ import annotations

import zlib

import numpy as np
import torch


def _sequence(seed: int, purpose: str, keys: tuple[int, ...]) -> np.random.SeedSequence:
    # crc32 is stable across processes (str.__hash__ is salted per process).
    return np.random.SeedSequence([int(seed) % 2**64, zlib.crc32(purpose.encode()), *(int(k) % 2**64 for k in keys)])


def derive_seed(seed: int, purpose: str, *keys: int) -> int:
    """A 63-bit integer seed for `purpose` (fits `torch.manual_seed` and `write_analysis`)."""
    return int(_sequence(seed, purpose, keys).generate_state(1, np.uint64)[0] >> np.uint64(1))


def numpy_rng(seed: int, purpose: str, *keys: int) -> np.random.Generator:
    """A numpy generator for `purpose`."""
    return np.random.default_rng(_sequence(seed, purpose, keys))


def torch_generator(seed: int, purpose: str, *keys: int) -> torch.Generator:
    """A CPU torch generator for `purpose`."""
    return torch.Generator().manual_seed(derive_seed(seed, purpose, *keys))
