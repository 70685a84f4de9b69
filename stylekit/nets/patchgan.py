"""PatchGAN discriminator: one real/fake logit per overlapping patch of concat(A, B).

The `basic` pix2pix D is n_layers = 3, whose output units each see a 70x70 input patch.
Layer facts from junyanz/pytorch-CycleGAN-and-pix2pix (written independently): 4x4 convs, the
first without norm, channels ndf * min(2^i, 8), stride 2 except the last two, LeakyReLU 0.2.
"""

from __future__ import annotations

import torch
from torch import nn

from stylekit.errors import BadInput
from stylekit.nets.blocks import Norm, init_normal, norm_layer


def receptive_field(n_layers: int) -> int:
    """Input patch side seen by one output unit: 70 for n_layers 3, 34 for 2, 16 for 1."""
    rf = 1
    strides = [1, 1] + [2] * n_layers  # walk from the output back to the input
    for s in strides:
        rf = rf * s + (4 - s)
    return rf


class PatchGAN(nn.Module):
    """Conditional PatchGAN: input concat(A, B) with in_nc = 6 channels, output [N, 1, h, w] logits."""

    def __init__(self, in_nc: int = 6, ndf: int = 64, n_layers: int = 3, norm: Norm = "batch") -> None:
        super().__init__()
        if n_layers < 1:
            raise BadInput(f"--n-layers-d {n_layers} must be at least 1", hint="3 is the 70x70 PatchGAN")
        use_bias = norm == "instance"
        layers: list[nn.Module] = [nn.Conv2d(in_nc, ndf, 4, 2, 1), nn.LeakyReLU(0.2)]
        prev = 1
        for n in range(1, n_layers + 1):
            mult = min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride, 1, bias=use_bias), norm_layer(norm, ndf * mult),
                       nn.LeakyReLU(0.2)]
            prev = mult
        layers.append(nn.Conv2d(ndf * prev, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)
        init_normal(self)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([a, b], 1))
