"""The learning-rate and latent-noise ramps shared by `invert` and `styleclip`.

Both follow NVlabs projector.py (also used verbatim by StyleCLIP's latent optimisation):
lr(t) = lr0 * (0.5 - 0.5 cos(pi * min(1, (1 - t) / rampdown))) * min(1, t / rampup), with t = step / steps,
so the rate rises over the first 5% of the steps and falls along a cosine over the last 25%.
"""

from __future__ import annotations

import math

LR_RAMPUP = 0.05
LR_RAMPDOWN = 0.25
NOISE_RAMP = 0.75


def ramped_lr(t: float, lr: float, rampup: float = LR_RAMPUP, rampdown: float = LR_RAMPDOWN) -> float:
    """Learning rate at progress t in [0, 1)."""
    ramp = min(1.0, (1.0 - t) / rampdown) if rampdown > 0 else 1.0
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    ramp *= min(1.0, t / rampup) if rampup > 0 else 1.0
    return lr * ramp


def w_noise_scale(t: float, w_std: float, initial: float = 0.05, ramp: float = NOISE_RAMP) -> float:
    """Std of the Gaussian noise added to w at progress t: w_std * initial * max(0, 1 - t / ramp)^2."""
    if ramp <= 0:
        return 0.0
    return w_std * initial * max(0.0, 1.0 - t / ramp) ** 2
