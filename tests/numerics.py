"""Tolerances for tests that compare two computation paths, derived from the computation itself.

Two paths that sum the same terms in another order (another kernel, another batch size, another CPU
ISA) differ by at most `K * eps` relative to the magnitudes summed, K the longest reduction and eps
the dtype's machine epsilon (the classic recursive-summation bound). Tests carrying
`@pytest.mark.numerics` use these helpers and also run under capped kernel ISAs (`make test`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch


def eps(dtype: torch.dtype = torch.float32) -> float:
    return float(torch.finfo(dtype).eps)


def summation(k: int, dtype: torch.dtype = torch.float32) -> float:
    """Relative error bound of a K-term reduction summed in another order."""
    return k * eps(dtype)


def optimised(lrs: Iterable[float], k: int, dtype: torch.dtype = torch.float32) -> float:
    """Absolute bound on how far one Adam-optimised variable drifts between two paths.

    Adam's step is lr * m/sqrt(v): scale-free, so a relative gradient error r moves a step by about
    lr * r, except on coordinates whose gradient is itself within the rounding noise of zero, where
    the step's direction is decided by rounding. Bounding each step's perturbation by
    lr * sqrt(r) (r = K * eps) covers every coordinate whose gradient exceeds sqrt(r) of the largest
    one; summed over the steps taken.
    """
    return sum(lrs) * math.sqrt(summation(k, dtype))


def well_conditioned(lrs: Iterable[float], k: int, dtype: torch.dtype = torch.float32) -> float:
    """Like `optimised` for variables whose gradient is far from zero everywhere (first order: lr * r)."""
    return sum(lrs) * summation(k, dtype)


def longest_reduction(*modules: torch.nn.Module) -> int:
    """The most terms any one output of the modules' convolutions and linear layers sums (K)."""
    return max(int(m.weight[0].numel()) for mod in modules for m in mod.modules()
               if isinstance(m, torch.nn.Conv2d | torch.nn.Linear) and m.weight is not None)
