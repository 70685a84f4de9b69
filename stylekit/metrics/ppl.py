"""Perceptual path length (Karras et al. 2019, StyleGAN), computed as NVlabs' `ppl_*` metrics do.

For each sample: draw z0, z1 and t (t = 0 for "end" sampling, t ~ U(0, 1) for "full"); interpolate
(slerp in z, then map; or map, then lerp in w) at t and t + epsilon; synthesise both with the same
noise (the constant noise buffers are re-drawn for every batch, then restored); optionally crop to the
face region of an FFHQ-aligned image (rows 3/8..7/8, columns 2/8..6/8: the `ppl_` names crop, the
`ppl2_` names do not); box-downsample to 256 px when the network is larger; the distance is
||embed(img0) - embed(img1)||^2 / epsilon^2 with `embed` = LPIPS-VGG16 features (their squared
distance is the LPIPS distance). PPL = the mean of the distances between the 1st and 99th percentile
(numpy's 'lower' / 'higher' interpolation, as NVlabs).

Latents, t and noise come from a torch.Generator seeded by (seed, batch index) on the CPU, then moved
to the device: the same seed gives the same number on any device and batch layout. Everything else
runs on the generator's device in its parameter dtype (float32 for real networks).

Under torchrun (`dist`) each rank computes its block of the batch indices (`shard`) and the distances
are gathered in batch order: the same samples, the same batches, the same number as one process.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from stylekit.errors import BadInput
from stylekit.io.console import get_console
from stylekit.train.distributed import DistInfo, agree, gather_lists, gather_rows, shard

SPACES = ("z", "w")
SAMPLINGS = ("full", "end")


@dataclass
class PPLConfig:
    num_samples: int = 50_000
    space: str = "w"
    sampling: str = "end"
    crop: bool = False
    epsilon: float = 1e-4
    batch: int = 16  # pairs per forward pass
    seed: int = 0
    trunc: float = 1.0

    def __post_init__(self) -> None:
        if self.space not in SPACES or self.sampling not in SAMPLINGS:
            raise BadInput(f"ppl: space must be z|w and sampling full|end, got {self.space}, {self.sampling}")
        if self.num_samples < 1 or self.batch < 1 or not self.epsilon > 0:
            raise BadInput(f"ppl: need samples >= 1, --batch >= 1 and epsilon > 0 (got {self.num_samples}, {self.batch}, {self.epsilon})",
                           hint="e.g. --num-gen 50000")


@dataclass
class PPLResult:
    value: float
    kept: int  # samples between the 1st and 99th percentile
    distances: np.ndarray  # every sample's distance, before filtering
    per_rank: list[int] = field(default_factory=list)  # under torchrun: samples each rank computed, in rank order


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation of unit-normalised rows of a and b at t ([N, 1]); the result is unit length."""
    a = a / a.norm(dim=-1, keepdim=True)
    b = b / b.norm(dim=-1, keepdim=True)
    d = (a * b).sum(dim=-1, keepdim=True)
    p = t * torch.acos(d.clamp(-1, 1))
    c = b - d * a
    c = c / c.norm(dim=-1, keepdim=True)
    out = a * torch.cos(p) + c * torch.sin(p)
    return out / out.norm(dim=-1, keepdim=True)


def batch_random(seed: int, index: int, n: int, z_dim: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Generator]:
    """(t [n], z0 [n, z_dim], z1 [n, z_dim], the generator for the noise) of batch `index`, on the CPU."""
    gen = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, index]).generate_state(1, np.uint64)[0] >> 1))
    t = torch.rand(n, generator=gen, dtype=dtype, device="cpu")  # on the CPU: the same numbers on any device
    z0 = torch.randn(n, z_dim, generator=gen, dtype=dtype, device="cpu")
    z1 = torch.randn(n, z_dim, generator=gen, dtype=dtype, device="cpu")
    return t, z0, z1, gen


def face_crop(img: torch.Tensor) -> torch.Tensor:
    """NVlabs' PPL crop of a square FFHQ-aligned image: rows c*3..c*7, columns c*2..c*6 with c = side // 8."""
    c = img.shape[2] // 8
    return img[:, :, c * 3 : c * 7, c * 2 : c * 6]


def pair_images(G: Any, cfg: PPLConfig, index: int, n: int) -> torch.Tensor:
    """The 2n images of batch `index` ([img(t) for n samples; img(t + eps) for the same]), in [-1, 1]."""
    device = next(G.parameters()).device
    dtype = next(G.parameters()).dtype
    t, z0, z1, gen = batch_random(cfg.seed, index, n, G.z_dim, dtype)
    if cfg.sampling == "end":
        t = torch.zeros_like(t)
    t, z0, z1 = t.to(device), z0.to(device), z1.to(device)
    if cfg.space == "w":
        w0, w1 = G.mapping(torch.cat([z0, z1]), None, truncation_psi=cfg.trunc).chunk(2)
        tt = t[:, None, None]
        ws = torch.cat([w0.lerp(w1, tt), w0.lerp(w1, tt + cfg.epsilon)])
    else:
        zt0, zt1 = slerp(z0, z1, t[:, None]), slerp(z0, z1, t[:, None] + cfg.epsilon)
        ws = G.mapping(torch.cat([zt0, zt1]), None, truncation_psi=cfg.trunc)
    for name, buf in G.named_buffers():
        if name.endswith("noise_const"):
            buf.copy_(torch.randn(buf.shape, generator=gen, dtype=buf.dtype, device="cpu").to(device))
    img = G.synthesis(ws, noise_mode="const", force_fp32=True)
    if cfg.crop:
        img = face_crop(img)
    factor = G.img_resolution // 256
    if factor > 1:
        img = img.reshape(img.shape[0], img.shape[1], img.shape[2] // factor, factor, img.shape[3] // factor, factor).mean((3, 5))
    if img.shape[1] == 1:
        img = img.repeat(1, 3, 1, 1)
    return img


def perceptual_path_length(G: Any, embed: Callable[[torch.Tensor], torch.Tensor], cfg: PPLConfig,
                           dist: DistInfo | None = None) -> PPLResult:
    """PPL of generator `G`; `embed` maps images in [-1, 1] to vectors whose squared distance is the
    perceptual distance (LPIPS.features; tests pass a plain flatten for an L2 distance). Under torchrun
    every rank returns the job's result."""
    if getattr(G, "c_dim", 0):
        raise BadInput("ppl: the network is conditional; perceptual path length here needs an unconditional one")
    batches = range(0, cfg.num_samples, cfg.batch)
    mine = [(index, batches[index]) for index in shard(len(batches), dist)]
    block = agree(lambda: _distances(G, embed, cfg, mine, dist), dist)
    distances = gather_rows(block, dist)
    per_rank = gather_lists([len(block)], dist) if dist is not None and dist.distributed else []
    lo = np.percentile(distances, 1, method="lower")
    hi = np.percentile(distances, 99, method="higher")
    kept = distances[(distances >= lo) & (distances <= hi)]
    return PPLResult(float(kept.mean()), int(kept.size), distances, per_rank)


def _distances(G: Any, embed: Callable[[torch.Tensor], torch.Tensor], cfg: PPLConfig, batches: list[tuple[int, int]],
               dist: DistInfo | None) -> np.ndarray:
    """Float64 distances of the samples of `batches` ((batch index, first sample) pairs), in their order;
    the network's constant noise buffers are restored afterwards."""
    saved = {name: buf.detach().clone() for name, buf in G.named_buffers() if name.endswith("noise_const")}
    dists: list[torch.Tensor] = []
    ranks = dist.world_size if dist is not None else 1
    try:
        with torch.no_grad(), get_console().progress(cfg.num_samples, f"ppl ({cfg.space}, {cfg.sampling})", ranks=ranks) as task:
            for index, start in batches:
                n = min(cfg.batch, cfg.num_samples - start)
                f0, f1 = embed(pair_images(G, cfg, index, n)).flatten(1).chunk(2)
                dists.append((f0.double() - f1.double()).square().sum(dim=1) / cfg.epsilon**2)
                task.advance(n)
    finally:
        with torch.no_grad():
            for name, buf in G.named_buffers():
                if name in saved:
                    buf.copy_(saved[name])
    return torch.cat(dists).cpu().numpy() if dists else np.zeros(0, np.float64)
