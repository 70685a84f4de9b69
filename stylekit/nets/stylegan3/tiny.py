"""Tiny random StyleGAN3 generators for tests, demos and benchmarks (no downloads).

Not degenerate: biases, the input's rotation/translation affine and w_avg are non-zero, and each
layer's `magnitude_ema` is set to the mean square of its input over a batch (what training's moving
average converges to), so truncation, the input transform and layer swaps change the output measurably.
"""

from __future__ import annotations

from typing import Any

import torch

from stylekit.nets.stylegan3.networks import Generator


def tiny_generator_config(resolution: int = 32, z_dim: int = 32, c_dim: int = 0, channel_base: int = 1024,
                          channel_max: int = 32, num_layers: int = 6, config: str = "t", **synthesis_kwargs: Any) -> dict[str, Any]:
    """Generator kwargs of a small T (translation-equivariant) or R (rotation-equivariant: 1x1 convolutions,
    radial filters, as NVlabs' stylegan3-r) network."""
    extra = dict(conv_kernel=1, use_radial_filters=True) if config == "r" else {}
    return dict(z_dim=z_dim, c_dim=c_dim, w_dim=z_dim, img_resolution=resolution, img_channels=3,
                mapping_kwargs=dict(num_layers=2), channel_base=channel_base, channel_max=channel_max,
                num_layers=num_layers, **extra, **synthesis_kwargs)


@torch.no_grad()
def randomize_(G: Generator, seed: int = 0) -> Generator:
    """Give biases, the input affine, w_avg and the magnitude EMAs non-trivial values (in place)."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    for name, p in G.named_parameters():
        if name.endswith("bias") and ".affine." not in name:
            p.copy_(torch.randn(p.shape, generator=gen, device="cpu") * 0.1)
    G.synthesis.input.affine.weight.copy_(torch.randn(G.synthesis.input.affine.weight.shape, generator=gen, device="cpu") * 0.3)
    G.mapping.w_avg.copy_(torch.randn(G.w_dim, generator=gen, device="cpu") * 0.5)
    ws = G.mapping(torch.randn(16, G.z_dim, generator=gen, device="cpu"),
                   torch.eye(G.c_dim, device="cpu")[torch.arange(16) % G.c_dim] if G.c_dim else None)
    x = G.synthesis.input(ws[:, 0])
    for name, w in zip(G.synthesis.layer_names, ws[:, 1:].unbind(1), strict=True):
        layer = getattr(G.synthesis, name)
        layer.magnitude_ema.copy_(x.square().mean())
        x = layer(x, w)
    return G


def tiny_generator(resolution: int = 32, seed: int = 0, **kwargs: Any) -> Generator:
    torch.manual_seed(seed)
    return randomize_(Generator(**tiny_generator_config(resolution, **kwargs)), seed).eval()
