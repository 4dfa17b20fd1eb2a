"""Torch intra-op threads for small work."""

from __future__ import annotations

from contextlib import contextmanager

import torch


@contextmanager
def torch_threads(n: int):
    """Run the block with `n` torch intra-op threads, then restore the count. Small tensors (the
    fitter's thousands of tiny LAPACK solves, the audit's probes) run faster on one thread: with more,
    every call pays OpenMP synchronisation (10-30x slower measured on a busy 2-core machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
