"""Seeded StyleGAN2 sampling, as NVlabs' generate.py does it: seed -> z -> w (truncated) -> uint8 image.

The one implementation behind `stylekit generate`, the editing commands and the metrics of generated
images (metrics/generated.py): a seed gives the image users know from the NVlabs tools (same network,
truncation and noise mode).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch

from stylekit.device import amp_dtype, autocast
from stylekit.errors import BadInput
from stylekit.io.console import get_console
from stylekit.nets.stylegan2.networks import Generator


def seed_to_z(seed: int, z_dim: int) -> np.ndarray:
    """NVlabs generate.py: np.random.RandomState(seed).randn(1, z_dim)."""
    if not 0 <= seed < 2**32:
        raise BadInput(f"seed {seed} is out of range", hint="seeds are integers in [0, 2^32)")
    return np.random.RandomState(seed).randn(1, z_dim)


def seeds_to_z(seeds: list[int], z_dim: int) -> torch.Tensor:
    return torch.from_numpy(np.concatenate([seed_to_z(s, z_dim) for s in seeds])).float()


def class_labels(G: Generator, class_idx: int | None, n: int) -> torch.Tensor | None:
    """One-hot labels for a conditional network (BadInput when missing/out of range), None otherwise."""
    if G.c_dim == 0:
        if class_idx is not None:
            get_console().warn("--class ignored: the network is not conditional")
        return None
    if class_idx is None:
        raise BadInput(f"the network is conditional ({G.c_dim} classes): pass --class K", hint=f"K in 0..{G.c_dim - 1}")
    if not 0 <= class_idx < G.c_dim:
        raise BadInput(f"--class {class_idx} is out of range", hint=f"the network has classes 0..{G.c_dim - 1}")
    c = torch.zeros(n, G.c_dim, device="cpu")  # moved with z by the caller
    c[:, class_idx] = 1
    return c


def to_uint8(img: torch.Tensor) -> np.ndarray:
    """[N, C, H, W] in [-1, 1] -> uint8 [N, H, W, C], exactly NVlabs' (x * 127.5 + 128).clamp(0, 255)."""
    return (img.permute(0, 2, 3, 1) * 127.5 + 128).clamp(0, 255).to(torch.uint8).cpu().numpy()


def synthesize(
    G: Generator, ws: torch.Tensor, noise_mode: str, seeds: list[int] | None = None, batch: int = 8, amp: bool = False
) -> torch.Tensor:
    """ws [N, num_ws, w_dim] -> fp32 images [N, C, R, R] on CPU; random noise is seeded per image.

    `amp`: the convolutions autocast to the device's native low-precision dtype (bf16 on AVX512-BF16 /
    AMX CPUs and recent GPUs; no-op elsewhere): ~4x the matmul rate, images within a few 1/255 steps.
    """

    device = next(G.parameters()).device
    out = []
    with torch.no_grad(), autocast(device, amp), _inference_layout(G, device, amp):
        if noise_mode == "random":
            for i in range(ws.shape[0]):
                with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                    torch.manual_seed(seeds[i] if seeds else i)
                    out.append(G.synthesis(ws[i : i + 1].to(device), noise_mode=noise_mode).float().cpu())
        else:
            for i in range(0, ws.shape[0], batch):
                out.append(G.synthesis(ws[i : i + batch].to(device), noise_mode=noise_mode).float().cpu())
    return torch.cat(out)


@contextlib.contextmanager
def _inference_layout(G: Generator, device: torch.device, amp: bool) -> Iterator[None]:
    """Under --amp on CPU, G's convolution weights channels-last for the duration (restored after):
    oneDNN then keeps the bf16 activations NHWC and skips a reorder around every convolution. Measured
    interleaved (docs/performance.md): 1.18x at 64 px, 1.05x at 128, 1.8x at 256 px; same images. In fp32
    it was mixed (1.05x / 0.89x / 1.11x), so fp32 keeps NCHW."""

    if device.type != "cpu" or not amp or amp_dtype(device) is None:
        yield
        return
    G.to(memory_format=torch.channels_last)
    try:
        yield
    finally:
        G.to(memory_format=torch.contiguous_format)


def map_seeds(
    G: Generator, seeds: list[int], trunc: float = 1.0, trunc_cutoff: int | None = None, class_idx: int | None = None
) -> torch.Tensor:
    """seeds -> ws [N, num_ws, w_dim] (CPU), truncated as NVlabs' mapping does."""
    if trunc_cutoff is not None and not 0 <= trunc_cutoff <= G.num_ws:
        raise BadInput(f"--trunc-cutoff {trunc_cutoff} is out of range", hint=f"the network has {G.num_ws} layers of w")
    device = next(G.parameters()).device
    z = seeds_to_z(seeds, G.z_dim).to(device)
    c = class_labels(G, class_idx, len(seeds))
    with torch.no_grad():
        return G.mapping(z, c.to(device) if c is not None else None, truncation_psi=trunc, truncation_cutoff=trunc_cutoff).cpu()
