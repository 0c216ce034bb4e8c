"""How many torch threads the tiny profile runs with on the CPU, and a context to run with them.

The tiny profile's matrices (256 wide, batches of 8 to 32 rows) are too small to share between
cores: splitting each operation costs more than it saves, and on a machine whose cores are busy
with anything else the threads wait for each other. Measured on the 2-core machine while it was
busy: a forward pass for serving 4-10x faster on one thread than on two with equal logits. The
full profile (Qwen2-1.5B) uses torch's default, and so does training, whose batches are larger
(`finetune.train`: on the idle machine two threads are faster there).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


def tiny_cpu_threads(profile: str | None, on_gpu: bool) -> int | None:
    """1 for the tiny profile on the CPU, else None (torch's default)."""
    return 1 if profile == "tiny" and not on_gpu else None


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run with `n` torch intra-op threads, then restore the setting (None: leave it alone, and
    do not import torch)."""
    if n is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
