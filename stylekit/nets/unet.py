"""The pix2pix UNet generator, with an optional style code injected into every decoder scale.

Architecture facts follow junyanz/pytorch-CycleGAN-and-pix2pix (written independently here): a
size 2^n image goes through n stride-2 4x4 convolutions down to 1x1 (unet_256 = 8 downs), channels
ngf, 2ngf, 4ngf, 8ngf, 8ngf, ...; the decoder mirrors it with transposed convolutions and skip
concatenations; the innermost down has no norm, the outermost up ends in tanh; dropout 0.5 on the
decoder blocks between the innermost one and the 8ngf->4ngf one. With `style_dim == 0` this is
plain pix2pix (same parameter count as unet_256: 54.41M at ngf 64).

Reference conditioning (FUNIT/MUNIT style): a style vector (from `stylekit.nets.ref_encoder`)
drives each decoder block —
- `adain`: after the block's own normalisation, a per-channel affine `h * (1 + gamma) + beta` whose
  gamma/beta come from a linear head on the style vector (zero-initialised: training starts as
  plain pix2pix and learns how much to listen to the references);
- `concat`: the style vector is broadcast over the block's input and concatenated to it.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from stylekit.errors import BadInput
from stylekit.nets.blocks import Inject, Norm, init_normal, norm_layer, run_block
from stylekit.nets.ref_encoder import RefEncoder, frozen_prefixes
from stylekit.nets.resnet_gen import ResnetGenerator, check_resnet_size

MIN_SIZE = 32


def unet_depth(size: int) -> int:
    """Number of downsamplings for a square `size` (a power of two >= 32): 256 -> 8 (unet_256)."""
    if size < MIN_SIZE or size & (size - 1):
        raise BadInput(
            f"--size {size} is not a power of two >= {MIN_SIZE}",
            hint="the UNet halves the image down to 1x1; use 32, 64, 128, 256, 512, 1024, ...",
        )
    return int(math.log2(size))


class Down(nn.Module):
    """LeakyReLU -> conv 4x4 stride 2 -> norm (the outermost has neither activation nor norm)."""

    def __init__(self, cin: int, cout: int, norm: Norm, outermost: bool, innermost: bool) -> None:
        super().__init__()
        self.act = nn.Identity() if outermost else nn.LeakyReLU(0.2, inplace=False)
        self.conv = nn.Conv2d(cin, cout, 4, 2, 1, bias=norm == "instance")
        self.norm = nn.Identity() if (outermost or innermost) else norm_layer(norm, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(self.act(x)))


class Up(nn.Module):
    """ReLU -> transposed conv 4x4 stride 2 -> norm [-> style affine] [-> dropout]; outermost ends in tanh."""

    def __init__(self, cin: int, cout: int, norm: Norm, outermost: bool, dropout: bool,
                 style_dim: int, inject: Inject) -> None:
        super().__init__()
        self.outermost = outermost
        self.inject = inject if style_dim > 0 else None
        extra = style_dim if self.inject == "concat" else 0
        self.act = nn.ReLU(inplace=False)
        self.conv = nn.ConvTranspose2d(cin + extra, cout, 4, 2, 1, bias=outermost or norm == "instance")
        self.norm = nn.Identity() if outermost else norm_layer(norm, cout)
        self.affine = nn.Linear(style_dim, 2 * cout) if self.inject == "adain" and not outermost else None
        self.drop = nn.Dropout(0.5) if dropout else nn.Identity()

    def forward(self, x: torch.Tensor, style: torch.Tensor | None) -> torch.Tensor:
        x = self.act(x)
        if self.inject == "concat":
            assert style is not None
            x = torch.cat([x, style[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3]).to(x.dtype)], 1)
        h = self.norm(self.conv(x))
        if self.outermost:
            return torch.tanh(h)
        if self.affine is not None:
            assert style is not None
            gamma, beta = self.affine(style).to(h.dtype)[:, :, None, None].chunk(2, dim=1)
            h = h * (1 + gamma) + beta
        return self.drop(h)


class UNet(nn.Module):
    """pix2pix UNet for `size` x `size` images in [-1, 1]; `style_dim > 0` enables conditioning."""

    def __init__(self, size: int, in_nc: int = 3, out_nc: int = 3, ngf: int = 64, norm: Norm = "batch",
                 dropout: bool = True, style_dim: int = 0, inject: Inject = "adain",
                 grad_checkpoint: bool = False) -> None:
        super().__init__()
        if inject not in ("adain", "concat"):
            raise BadInput(f"unknown --ref-inject '{inject}'", hint="use adain or concat")
        depth = unet_depth(size)
        self.size, self.depth, self.style_dim = size, depth, style_dim
        self.grad_checkpoint = grad_checkpoint
        chans = [ngf * min(2**i, 8) for i in range(depth)]  # 64,128,256,512,512,...
        self.downs = nn.ModuleList(
            Down(in_nc if i == 0 else chans[i - 1], chans[i], norm, outermost=i == 0, innermost=i == depth - 1)
            for i in range(depth)
        )
        ups = []
        for i in reversed(range(depth)):  # i = level this block outputs to (i - 1 channels)
            cin = chans[i] if i == depth - 1 else 2 * chans[i]
            cout = out_nc if i == 0 else chans[i - 1]
            # dropout on the 8ngf blocks below the innermost (junyanz: num_downs - 5 of them)
            drop = dropout and 4 <= i < depth - 1
            ups.append(Up(cin, cout, norm, outermost=i == 0, dropout=drop, style_dim=style_dim, inject=inject))
        self.ups = nn.ModuleList(ups)
        init_normal(self)
        for up in self.ups:  # conditioning starts neutral
            if up.affine is not None:
                nn.init.zeros_(up.affine.weight)
                nn.init.zeros_(up.affine.bias)

    @property
    def size_multiple(self) -> int:
        """Input sides must be multiples of this (the UNet halves down to 1x1)."""
        return 2**self.depth

    def forward(self, x: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        if self.style_dim > 0 and style is None:
            raise ValueError("this UNet is reference-conditioned: pass a style vector")
        skips = []
        h = x
        for down in self.downs:
            h = run_block(self, down, h)
            skips.append(h)
        skips.pop()  # the innermost output is the decoder's input, not a skip
        for j, up in enumerate(self.ups):
            if j > 0:
                h = torch.cat([h, skips.pop()], 1)
            h = run_block(self, up, h, style)
        return h


# ------------------------------------------------------------------ reference-conditioned generator
@dataclass
class GeneratorConfig:
    """Everything needed to rebuild a trained generator (stored as JSON next to its weights)."""

    size: int = 256
    ngf: int = 64
    norm: str = "batch"
    dropout: bool = True
    refs: int = 5
    ref_inject: str = "adain"
    ref_encoder: str = "small-cnn"
    style_dim: int = 256
    ref_size: int = 128
    vgg_weights: str = "vgg19"
    direction: str = "AtoB"
    net_g: str = "unet"  # a key of GENERATORS (configs written before --net-g existed are unets)


@dataclass(frozen=True)
class GeneratorKind:
    build: Callable[..., nn.Module]  # (size, ngf=, norm=, dropout=, style_dim=, inject=, grad_checkpoint=)
    check_size: Callable[[int], object]  # BadInput when the size does not fit


# --net-g name -> generator (UNet: sizes a power of two >= 32; resnet9: multiples of 4)
GENERATORS = {"unet": GeneratorKind(UNet, unet_depth), "resnet9": GeneratorKind(ResnetGenerator, check_resnet_size)}


def check_generator_size(net_g: str, size: int) -> None:
    if net_g not in GENERATORS:
        raise BadInput(f"unknown --net-g '{net_g}'", hint=f"use one of: {', '.join(GENERATORS)}")
    GENERATORS[net_g].check_size(size)


class RefUNet(nn.Module):
    """pix2pix generator (UNet, or junyanz's resnet_9blocks with `net_g="resnet9"`) whose decoder reads a
    style vector averaged over K reference images.

    forward(a [N,3,S,S] in [-1,1], refs [N,K,3,R,R] in [0,1] or None) -> [N,3,S,S] in [-1,1].
    With `refs == 0` there is no encoder and the network is exactly plain pix2pix. The image network is
    the attribute named after `net_g` (so state dict keys say which it is); `backbone` returns it.
    """

    def __init__(self, cfg: GeneratorConfig, grad_checkpoint: bool = False) -> None:
        super().__init__()

        self.cfg = cfg
        conditioned = cfg.refs > 0
        self.encoder = (RefEncoder(cfg.ref_encoder, cfg.style_dim, cfg.ref_size, cfg.vgg_weights)
                        if conditioned else None)
        check_generator_size(cfg.net_g, cfg.size)
        backbone = GENERATORS[cfg.net_g].build(cfg.size, ngf=cfg.ngf, norm=cfg.norm, dropout=cfg.dropout,
                                         style_dim=cfg.style_dim if conditioned else 0, inject=cfg.ref_inject,
                                         grad_checkpoint=grad_checkpoint)
        self.add_module(cfg.net_g, backbone)
        if self.encoder is not None:
            init_normal(self.encoder.mlp)
            if hasattr(self.encoder, "cnn"):
                init_normal(self.encoder.cnn)
            for m in self.encoder.mlp.modules():
                if isinstance(m, nn.LayerNorm):
                    nn.init.ones_(m.weight)
                    nn.init.zeros_(m.bias)

    def style(self, refs: torch.Tensor | None) -> torch.Tensor | None:
        if self.encoder is None:
            return None
        if refs is None or refs.shape[1] == 0:
            raise ValueError("this generator is reference-conditioned: pass reference images")
        return self.encoder(refs)

    @property
    def backbone(self) -> nn.Module:
        return getattr(self, self.cfg.net_g)

    def forward(self, a: torch.Tensor, refs: torch.Tensor | None = None) -> torch.Tensor:
        return self.backbone(a, self.style(refs))

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """State without frozen pretrained parts (VGG weights come from the registry when loading)."""

        skip = tuple("encoder." + p for p in frozen_prefixes(self.cfg.ref_encoder))
        return {k: v for k, v in self.state_dict().items() if not (skip and k.startswith(skip))}


@contextlib.contextmanager
def inference_mode(module: nn.Module) -> Iterator[None]:
    """pix2pix inference: dropout off, batch norm from each batch's own statistics (as in training
    with batch 1), running statistics neither used nor updated, no cross-process sync."""
    was_training = module.training
    saved = []
    module.eval()
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats:
            saved.append((m, m.running_mean, m.running_var))
            m.running_mean, m.running_var = None, None
    try:
        with torch.no_grad():
            yield
    finally:
        for m, mean, var in saved:
            m.running_mean, m.running_var = mean, var
        module.train(was_training)
