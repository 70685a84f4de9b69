"""Building blocks shared by the pix2pix networks (UNet, ResNet generator, PatchGAN): norms, init, checkpointing."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from stylekit.errors import BadInput

Norm = Literal["batch", "instance"]
Inject = Literal["adain", "concat"]


def norm_layer(kind: Norm, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    raise BadInput(f"unknown --norm '{kind}'", hint="use batch or instance")


def init_normal(module: nn.Module, gain: float = 0.02) -> None:
    """pix2pix init: conv/linear weights N(0, 0.02), biases 0, norm scales N(1, 0.02)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)


def run_block(owner: nn.Module, block: nn.Module, *args: torch.Tensor | None) -> torch.Tensor:
    """`block(*args)`, recomputed in backward when `owner.grad_checkpoint` is on (training only)."""
    if getattr(owner, "grad_checkpoint", False) and owner.training and torch.is_grad_enabled():
        return checkpoint(block, *args, use_reentrant=False)
    return block(*args)
