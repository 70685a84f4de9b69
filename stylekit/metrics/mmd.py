"""Kernel two-sample distances: KID (cubic polynomial kernel, unbiased, subsets) and CMMD (Gaussian RBF).

KID follows clean-fid's `kernel_distance` exactly (Bińkowski et al. 2018): k(x, y) = (x.y / d + 1)^3;
for each of `num_subsets` random subsets of m = min(n1, n2, max_subset_size) rows per set,
  MMD_u^2 = [sum_{i!=j} k(x_i,x_j) + sum_{i!=j} k(y_i,y_j)] / (m (m-1)) - 2 sum_{i,j} k(x_i,y_j) / m^2,
and KID is the mean over subsets (raw value; papers often print it x1000). Subsets are drawn from a
seeded generator so a rerun gives the same number.

CMMD follows Jayasumana et al. (CVPR 2024): on L2-normalised CLIP embeddings, the biased MMD^2 with
the Gaussian kernel k(x, y) = exp(-|x - y|^2 / (2 sigma^2)), sigma = 10, scaled by 1000.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class KIDResult:
    value: float  # raw KID (mean over subsets)
    std: float  # standard deviation over subsets
    subsets: int
    subset_size: int

    @property
    def x1000(self) -> float:
        return self.value * 1000.0


def polynomial_mmd_subsets(
    feats1: np.ndarray, feats2: np.ndarray, num_subsets: int = 100, max_subset_size: int = 1000, seed: int = 0
) -> np.ndarray:
    """Per-subset unbiased MMD^2 values with the cubic polynomial kernel (clean-fid's definition)."""
    x_all = np.asarray(feats2, dtype=np.float64)
    y_all = np.asarray(feats1, dtype=np.float64)
    d = x_all.shape[1]
    m = min(x_all.shape[0], y_all.shape[0], max_subset_size)
    if m < 2:
        raise ValueError("KID needs at least 2 images per set")
    rng = np.random.default_rng(seed)
    values = np.empty(num_subsets)
    for s in range(num_subsets):
        x = x_all[rng.choice(x_all.shape[0], m, replace=False)]
        y = y_all[rng.choice(y_all.shape[0], m, replace=False)]
        kxx = (x @ x.T / d + 1) ** 3
        kyy = (y @ y.T / d + 1) ** 3
        kxy = (x @ y.T / d + 1) ** 3
        within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        values[s] = within - 2 * kxy.sum() / (m * m)
    return values


def kid(feats1: np.ndarray, feats2: np.ndarray, num_subsets: int = 100, max_subset_size: int = 1000, seed: int = 0) -> KIDResult:
    """Kernel Inception Distance between two feature sets (any features; Inception for 'KID')."""
    values = polynomial_mmd_subsets(feats1, feats2, num_subsets, max_subset_size, seed)
    m = min(len(feats1), len(feats2), max_subset_size)
    return KIDResult(float(values.mean()), float(values.std()), num_subsets, m)


def _sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.maximum(sq, 0.0)


def rbf_mmd2(x: np.ndarray, y: np.ndarray, sigma: float = 10.0) -> float:
    """Biased MMD^2 with a Gaussian RBF kernel of bandwidth sigma (includes the diagonal terms)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    gamma = 1.0 / (2.0 * sigma * sigma)
    kxx = np.exp(-gamma * _sq_dists(x, x)).mean()
    kyy = np.exp(-gamma * _sq_dists(y, y)).mean()
    kxy = np.exp(-gamma * _sq_dists(x, y)).mean()
    return float(kxx + kyy - 2 * kxy)


def l2_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def cmmd(emb1: np.ndarray, emb2: np.ndarray, sigma: float = 10.0, scale: float = 1000.0) -> float:
    """CMMD: scale * MMD^2_RBF(sigma) on L2-normalised embeddings (normalised here if they are not)."""
    return scale * rbf_mmd2(l2_normalise(emb1), l2_normalise(emb2), sigma)
