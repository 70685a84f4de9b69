"""StyleGAN2 losses: non-saturating logistic, lazy R1, lazy path-length regularisation, style mixing.

Each phase returns the loss to back-propagate, already multiplied by its lazy-regularisation gain
(the interval: R1 every 16 minibatches with weight gamma/2 x 16, path length every 4 with weight
2 x 4), as in Karras et al. 2020 ("Analyzing and improving...", appendix B). The optimiser side of
lazy regularisation (lr x r/(r+1), betas ** (r/(r+1))) is in `lazy_adam`.

All randomness (z, the second z and cut-off of style mixing, per-layer noise maps, the path-length
probe) comes from a `BatchRandom`: drawn on the device for this process's rows only.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from stylekit.nets.stylegan2.augment import AugmentPipe, BatchRandom
from stylekit.nets.stylegan2.networks import Discriminator, Generator
from stylekit.train.distributed import DistInfo, all_reduce_mean


@dataclass
class LossConfig:
    r1_gamma: float = 10.0
    style_mixing: float = 0.9
    pl_weight: float = 2.0
    pl_decay: float = 0.01
    pl_batch_shrink: int = 2
    G_reg_interval: int = 4
    D_reg_interval: int = 16
    fp16: bool = False  # let the networks' fp16 blocks run in fp16 (CUDA, --amp); else everything fp32


def lazy_adam(params: list[torch.nn.Parameter], lr: float, reg_interval: int | None,
              betas: tuple[float, float] = (0.0, 0.99), eps: float = 1e-8) -> torch.optim.Adam:
    """Adam with the lazy-regularisation correction: lr x r/(r+1), betas ** (r/(r+1))."""
    if reg_interval:
        ratio = reg_interval / (reg_interval + 1)
        lr = lr * ratio
        betas = (betas[0] ** ratio, betas[1] ** ratio)
    return torch.optim.Adam(params, lr=lr, betas=betas, eps=eps)


def noise_layers(G: Generator) -> list[torch.nn.Module]:
    """Synthesis layers with per-pixel noise, in a fixed order."""
    return [m for m in G.synthesis.modules() if getattr(m, "use_noise", False) and hasattr(m, "noise_const")]


@contextlib.contextmanager
def batch_noise(layers: list[torch.nn.Module], rnd: BatchRandom, n: int) -> Iterator[None]:
    """Run synthesis with noise_mode='const' on noise drawn from `rnd` (on the device, this rank's rows).

    The layers' noise_const buffers are swapped for [n, 1, R, R] maps (broadcast by the layer) for
    the duration, then restored: the saved `noise_const` never changes.
    """
    saved = []
    try:
        for layer in layers:
            res = int(layer.resolution)
            saved.append(layer.noise_const)
            layer.noise_const = rnd.randn(n, 1, res, res)
        yield
    finally:
        for layer, buf in zip(layers, saved, strict=False):
            layer.noise_const = buf


@dataclass
class RealPass:
    """What one D pass on reals gives: the logistic loss (to back-propagate), the detached logits (ADA,
    statistics) and, when R1 was asked, its loss x D_reg_interval (to back-propagate) and mean penalty."""

    loss: torch.Tensor
    logits: torch.Tensor
    r1_loss: torch.Tensor | None = None
    r1_penalty: torch.Tensor | None = None


class StyleGAN2Loss:
    """The phases of one StyleGAN2-ADA minibatch: Gmain, Greg, Dmain (fake + real), Dreg (R1, fused with
    Dmain's real pass)."""

    def __init__(self, G: Generator, D: Discriminator, augment: AugmentPipe | None, cfg: LossConfig,
                 dist: DistInfo | None = None) -> None:
        self.G, self.D, self.augment, self.cfg = G, D, augment, cfg
        self.dist = dist or DistInfo()
        self.noise = noise_layers(G)
        self.pl_mean = torch.zeros([], device=next(G.parameters()).device)

    # -------------------------------------------------------------------------------- forward
    def run_G(self, rnd: BatchRandom, n: int, c: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """n images and their ws [n, num_ws, w_dim] (with style mixing)."""
        G = self.G
        z = rnd.randn(n, G.z_dim)
        ws = G.mapping(z, c)
        if self.cfg.style_mixing > 0:
            cutoff = rnd.shared_randint(1, ws.shape[1])
            mix = rnd.shared_rand() < self.cfg.style_mixing
            z2 = rnd.randn(n, G.z_dim)
            if mix:
                ws2 = G.mapping(z2, c, skip_w_avg_update=True)
                ws = torch.cat([ws[:, :cutoff], ws2[:, cutoff:]], dim=1)
        with batch_noise(self.noise, rnd, n):
            img = G.synthesis(ws, noise_mode="const", force_fp32=not self.cfg.fp16)
        return img, ws

    def run_D(self, img: torch.Tensor, c: torch.Tensor | None, rnd: BatchRandom) -> torch.Tensor:
        if self.augment is not None:  # p lives on the device: no host test of p > 0 (NVlabs)
            img = self.augment(img, rnd)
        return self.D(img, c, force_fp32=not self.cfg.fp16)

    # -------------------------------------------------------------------------------- phases
    def gen_main(self, rnd: BatchRandom, n: int, c: torch.Tensor | None) -> torch.Tensor:
        """Non-saturating G loss: softplus(-D(G(z)))."""
        img, _ = self.run_G(rnd, n, c)
        return F.softplus(-self.run_D(img, c, rnd)).mean()

    def gen_pl(self, rnd: BatchRandom, n: int, c: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Path-length penalty on a batch shrunk by pl_batch_shrink; returns (loss x interval, mean length)."""
        img, ws = self.run_G(rnd, n, c)
        noise = rnd.randn(n, *img.shape[1:]) / math.sqrt(img.shape[2] * img.shape[3])
        (grads,) = torch.autograd.grad((img * noise).sum(), ws, create_graph=True)
        lengths = grads.square().sum(dim=2).mean(dim=1).sqrt()
        mean_len = all_reduce_mean(lengths.mean(), self.dist)
        pl_mean = self.pl_mean.lerp(mean_len, self.cfg.pl_decay)
        self.pl_mean.copy_(pl_mean.detach())
        penalty = (lengths - pl_mean).square()
        loss = (img[:, 0, 0, 0] * 0 + penalty * self.cfg.pl_weight).mean() * self.cfg.G_reg_interval
        return loss, mean_len

    def disc_fake(self, rnd: BatchRandom, n: int, c: torch.Tensor | None) -> torch.Tensor:
        """softplus(D(G(z))) on n fakes made without G gradients (the fake half of Dmain)."""
        with torch.no_grad():
            fake, _ = self.run_G(rnd, n, c)
        return F.softplus(self.run_D(fake, c, rnd)).mean()

    def disc_real(self, rnd: BatchRandom, real: torch.Tensor, c: torch.Tensor | None, *, r1: bool) -> RealPass:
        """One D pass on the (augmented) reals: softplus(-D(x)), and with `r1` also R1 from the same pass.

        R1 = gamma/2 |grad_x D(aug(x))|^2, through the augmentation, times the D_reg_interval gain
        (NVlabs "Dboth": the reals require grad only when R1 is asked, and one forward serves both).
        """
        x = real.detach().requires_grad_(r1)
        logits = self.run_D(x, c, rnd)
        out = RealPass(loss=F.softplus(-logits).mean(), logits=logits.detach())
        if r1:
            (grads,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
            penalty = grads.square().sum(dim=[1, 2, 3])
            out.r1_loss = (logits[:, 0] * 0 + penalty * (self.cfg.r1_gamma / 2)).mean() * self.cfg.D_reg_interval
            out.r1_penalty = penalty.detach().mean()
        return out
