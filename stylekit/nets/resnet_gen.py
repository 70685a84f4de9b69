"""The pix2pix/CycleGAN ResNet generator (`--net-g resnet9`), with the same style-vector conditioning as the UNet.

Architecture facts follow junyanz's resnet_9blocks (written independently here): reflection-padded
7x7 conv to ngf, two stride-2 3x3 convs (ngf -> 2ngf -> 4ngf), nine residual blocks at 4ngf (pad, 3x3
conv, norm, ReLU, [dropout 0.5], pad, 3x3 conv, norm; added to the input), two stride-2 transposed
3x3 convs back to ngf, reflection-padded 7x7 conv to the output, tanh. Convolution biases only with
instance norm. Any size divisible by 4 works (no power-of-two limit, unlike the UNet).

Reference conditioning (as `stylekit.nets.unet`): `adain` applies `h * (1 + gamma) + beta` from a
zero-initialised linear head on the style vector after the last norm of every residual block and of
both upsampling blocks; `concat` broadcasts the style vector over the input of those blocks.
"""

from __future__ import annotations

import torch
from torch import nn

from stylekit.errors import BadInput
from stylekit.nets.blocks import Inject, Norm, init_normal, norm_layer, run_block

N_BLOCKS = 9
SIZE_MULTIPLE = 4


def check_resnet_size(size: int) -> None:
    if size < 16 or size % SIZE_MULTIPLE:
        raise BadInput(f"--size {size} does not fit --net-g resnet9", hint="use a multiple of 4 that is at least 16, e.g. 256")


class StyleMod(nn.Module):
    """Per-channel `h * (1 + gamma) + beta` from the style vector; starts as the identity."""

    def __init__(self, style_dim: int, channels: int) -> None:
        super().__init__()
        self.linear = nn.Linear(style_dim, 2 * channels)

    def forward(self, h: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.linear(style).to(h.dtype)[:, :, None, None].chunk(2, dim=1)
        return h * (1 + gamma) + beta


def _with_style(x: torch.Tensor, style: torch.Tensor | None, inject: str | None) -> torch.Tensor:
    if inject != "concat":
        return x
    assert style is not None
    return torch.cat([x, style[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3]).to(x.dtype)], 1)


class ResBlock(nn.Module):
    def __init__(self, ch: int, norm: Norm, dropout: bool, style_dim: int, inject: Inject) -> None:
        super().__init__()
        self.inject = inject if style_dim > 0 else None
        extra = style_dim if self.inject == "concat" else 0
        bias = norm == "instance"
        layers: list[nn.Module] = [nn.ReflectionPad2d(1), nn.Conv2d(ch + extra, ch, 3, bias=bias), norm_layer(norm, ch), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3, bias=bias), norm_layer(norm, ch)]
        self.body = nn.Sequential(*layers)
        self.mod = StyleMod(style_dim, ch) if self.inject == "adain" else None

    def forward(self, x: torch.Tensor, style: torch.Tensor | None) -> torch.Tensor:
        h = self.body(_with_style(x, style, self.inject))
        if self.mod is not None:
            assert style is not None
            h = self.mod(h, style)
        return x + h


class UpBlock(nn.Module):
    def __init__(self, cin: int, cout: int, norm: Norm, style_dim: int, inject: Inject) -> None:
        super().__init__()
        self.inject = inject if style_dim > 0 else None
        extra = style_dim if self.inject == "concat" else 0
        self.conv = nn.ConvTranspose2d(cin + extra, cout, 3, 2, 1, output_padding=1, bias=norm == "instance")
        self.norm = norm_layer(norm, cout)
        self.mod = StyleMod(style_dim, cout) if self.inject == "adain" else None

    def forward(self, x: torch.Tensor, style: torch.Tensor | None) -> torch.Tensor:
        h = self.norm(self.conv(_with_style(x, style, self.inject)))
        if self.mod is not None:
            assert style is not None
            h = self.mod(h, style)
        return torch.relu(h)


class ResnetGenerator(nn.Module):
    """resnet_9blocks for `size` x `size` images in [-1, 1]; `style_dim > 0` enables conditioning."""

    size_multiple = SIZE_MULTIPLE

    def __init__(self, size: int, in_nc: int = 3, out_nc: int = 3, ngf: int = 64, norm: Norm = "batch",
                 dropout: bool = True, style_dim: int = 0, inject: Inject = "adain", grad_checkpoint: bool = False,
                 n_blocks: int = N_BLOCKS) -> None:
        super().__init__()
        if inject not in ("adain", "concat"):
            raise BadInput(f"unknown --ref-inject '{inject}'", hint="use adain or concat")
        check_resnet_size(size)
        self.size, self.style_dim, self.grad_checkpoint = size, style_dim, grad_checkpoint
        bias = norm == "instance"
        self.stem = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(in_nc, ngf, 7, bias=bias), norm_layer(norm, ngf), nn.ReLU(),
                                  nn.Conv2d(ngf, 2 * ngf, 3, 2, 1, bias=bias), norm_layer(norm, 2 * ngf), nn.ReLU(),
                                  nn.Conv2d(2 * ngf, 4 * ngf, 3, 2, 1, bias=bias), norm_layer(norm, 4 * ngf), nn.ReLU())
        self.blocks = nn.ModuleList(ResBlock(4 * ngf, norm, dropout, style_dim, inject) for _ in range(n_blocks))
        self.ups = nn.ModuleList([UpBlock(4 * ngf, 2 * ngf, norm, style_dim, inject), UpBlock(2 * ngf, ngf, norm, style_dim, inject)])
        self.head = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_nc, 7), nn.Tanh())
        init_normal(self)
        for m in self.modules():  # conditioning starts neutral
            if isinstance(m, StyleMod):
                nn.init.zeros_(m.linear.weight)
                nn.init.zeros_(m.linear.bias)

    def forward(self, x: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        if self.style_dim > 0 and style is None:
            raise ValueError("this generator is reference-conditioned: pass a style vector")
        h = self.stem(x)
        for block in [*self.blocks, *self.ups]:
            h = run_block(self, block, h, style)
        return self.head(h)
