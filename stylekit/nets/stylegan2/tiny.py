"""Tiny random StyleGAN2 networks for tests, demos and benchmarks (no downloads).

Weights are random but not degenerate: biases and noise strengths are non-zero and w_avg is set,
so truncation, noise modes and layer swaps all change the output measurably.
"""

from __future__ import annotations

from typing import Any

import torch

from stylekit.nets.stylegan2.networks import Discriminator, Generator


def tiny_generator_config(
    resolution: int = 32, z_dim: int = 32, c_dim: int = 0, channel_base: int = 512, channel_max: int = 64,
    mapping_layers: int = 2, **synthesis_kwargs: Any,
) -> dict[str, Any]:
    return dict(
        z_dim=z_dim, c_dim=c_dim, w_dim=z_dim, img_resolution=resolution, img_channels=3,
        mapping_kwargs=dict(num_layers=mapping_layers),
        synthesis_kwargs=dict(channel_base=channel_base, channel_max=channel_max, **synthesis_kwargs),
    )


def randomize_(G: Generator, seed: int = 0, noise_strength: float = 0.2) -> Generator:
    """Give biases, noise strengths and w_avg non-trivial values (in place)."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(noise_strength)
            elif name.endswith("bias") and "affine" not in name:
                p.copy_(torch.randn(p.shape, generator=gen, device="cpu") * 0.1)
            elif name.endswith("weight") or name.endswith("const"):
                p.copy_(torch.randn(p.shape, generator=gen, device="cpu") * (p.std().item() or 1.0))
        G.mapping.w_avg.copy_(torch.randn(G.w_dim, generator=gen, device="cpu") * 0.5)
    return G


def tiny_generator(resolution: int = 32, seed: int = 0, **kwargs: Any) -> Generator:
    torch.manual_seed(seed)
    return randomize_(Generator(**tiny_generator_config(resolution, **kwargs)), seed).eval()


def tiny_discriminator(resolution: int = 32, seed: int = 0, c_dim: int = 0, **kwargs: Any) -> Discriminator:
    torch.manual_seed(seed)
    kwargs.setdefault("channel_base", 512)
    kwargs.setdefault("channel_max", 64)
    return Discriminator(c_dim=c_dim, img_resolution=resolution, img_channels=3, **kwargs).eval()
