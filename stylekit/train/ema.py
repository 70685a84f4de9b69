"""Exponential moving average of a network's weights (G_ema in StyleGAN, an EMA classifier, ...).

Two ways to set the speed:
- `decay`: the classic per-update factor, ema = decay * ema + (1 - decay) * weights;
- `half_life_kimg` (NVlabs StyleGAN2-ADA): the average forgets half of its past in that many thousand
  images, so the factor depends on the batch: beta = 0.5 ** (batch / ema_nimg). With `rampup` (0.05
  in NVlabs' paper configs) the half-life is limited to rampup * images seen so far, which lets the
  average follow the fast early training.
Buffers (e.g. BatchNorm statistics, StyleGAN's w_avg) are copied, not averaged.
"""

from __future__ import annotations

import copy

import torch

from stylekit.train.distributed import unwrap


def ema_beta(batch_size: int, half_life_kimg: float, cur_nimg: int | None = None, rampup: float | None = None) -> float:
    """NVlabs' per-step EMA factor for a half-life given in thousands of images."""
    ema_nimg = half_life_kimg * 1000
    if rampup is not None and cur_nimg is not None:
        ema_nimg = min(ema_nimg, cur_nimg * rampup)
    return 0.5 ** (batch_size / max(ema_nimg, 1e-8))


class EMA:
    """An averaged copy of `model`: `ema.module` (eval mode, no grads). Register it as a module.

        G_ema = EMA(G, half_life_kimg=10, rampup=0.05)
        runner.register("G_ema", G_ema.module)
        ... after each optimizer step:  G_ema.update(G, batch_size=batch, cur_nimg=cur_nimg)
    """

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        decay: float | None = None,
        half_life_kimg: float | None = None,
        rampup: float | None = None,
    ) -> None:
        if (decay is None) == (half_life_kimg is None):
            raise ValueError("give exactly one of decay or half_life_kimg")
        if decay is not None and not 0.0 <= decay <= 1.0:
            raise ValueError(f"EMA decay {decay} is outside [0, 1]")
        if half_life_kimg is not None and half_life_kimg < 0:
            raise ValueError(f"EMA half-life {half_life_kimg} kimg is negative")
        self.decay = decay
        self.half_life_kimg = half_life_kimg
        self.rampup = rampup
        self.module = copy.deepcopy(unwrap(model)).eval().requires_grad_(False)

    def beta(self, batch_size: int | None = None, cur_nimg: int | None = None) -> float:
        """The factor the next `update` uses (weight kept from the old average)."""
        if self.decay is not None:
            return self.decay
        if batch_size is None:
            raise ValueError("a half-life EMA needs batch_size (and cur_nimg with rampup)")
        assert self.half_life_kimg is not None
        return ema_beta(batch_size, self.half_life_kimg, cur_nimg, self.rampup)

    @torch.no_grad()
    def update(self, model: torch.nn.Module, batch_size: int | None = None, cur_nimg: int | None = None) -> float:
        """Move the average towards `model`'s weights; `cur_nimg` = images seen before this batch.

        Returns the beta used.
        """
        beta = self.beta(batch_size, cur_nimg)
        source = unwrap(model)
        params = dict(source.named_parameters())
        averaged: list[torch.Tensor] = []
        current: list[torch.Tensor] = []
        for name, p_ema in self.module.named_parameters():
            p = params[name].detach()
            if p_ema.is_floating_point():
                averaged.append(p_ema)
                current.append(p.to(p_ema.dtype))
            else:
                p_ema.copy_(p)
        if averaged:
            # One multi-tensor kernel instead of one lerp per parameter (hundreds of small launches).
            torch._foreach_lerp_(averaged, current, 1.0 - beta)
        buffers = dict(source.named_buffers())
        ema_buffers = list(self.module.named_buffers())
        if ema_buffers:
            torch._foreach_copy_([b for _, b in ema_buffers], [buffers[name].detach() for name, _ in ema_buffers])
        return beta
