"""Seeds -> StyleGAN2 z latents, NVlabs' way (generate.py, and the training loop's sample grids)."""

from __future__ import annotations

import numpy as np
import torch

from stylekit.errors import BadInput


def seed_to_z(seed: int, z_dim: int) -> np.ndarray:
    """NVlabs generate.py: np.random.RandomState(seed).randn(1, z_dim)."""
    if not 0 <= seed < 2**32:
        raise BadInput(f"seed {seed} is out of range", hint="seeds are integers in [0, 2^32)")
    return np.random.RandomState(seed).randn(1, z_dim)


def seeds_to_z(seeds: list[int], z_dim: int) -> torch.Tensor:
    """[len(seeds), z_dim] float32 on the CPU (callers move it to their device)."""
    return torch.from_numpy(np.concatenate([seed_to_z(s, z_dim) for s in seeds])).float()
