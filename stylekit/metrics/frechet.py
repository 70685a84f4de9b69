"""Fréchet distance between Gaussians fitted to two feature sets (FID, CLIP-FID, style-FD).

d^2 = |mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)). The matrix square root is scipy's `sqrtm` with
the usual guards (clean-fid / pytorch-fid): a non-finite result retries with eps on the diagonals,
and a tiny imaginary part from round-off is dropped. When the imaginary part is not tiny (badly
conditioned, e.g. fewer samples than dimensions) the trace is taken from the eigenvalues of the
symmetric PSD matrix S1^(1/2) S2 S1^(1/2) instead, which has the same trace and no complex round-off.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import linalg


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased, N-1) covariance of features [N, D], in float64."""
    feats = np.asarray(features, dtype=np.float64)
    if feats.ndim != 2 or feats.shape[0] < 2:
        raise ValueError(f"need at least 2 feature vectors of shape [N, D], got {feats.shape}")
    return feats.mean(axis=0), np.cov(feats, rowvar=False)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def _trace_sqrt_product_eigh(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    root1 = _psd_sqrt(sigma1)
    middle = root1 @ sigma2 @ root1
    values = np.linalg.eigvalsh((middle + middle.T) / 2)
    return float(np.sqrt(np.clip(values, 0, None)).sum())


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6) -> float:
    """Tr((S1 S2)^(1/2)) with the numerical guards described in the module docstring."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", linalg.LinAlgWarning)  # singular products are handled below
        covmean = linalg.sqrtm(sigma1 @ sigma2)
        if not np.isfinite(covmean).all():
            offset = np.eye(sigma1.shape[0]) * eps
            covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3) or not np.isfinite(covmean).all():
            return _trace_sqrt_product_eigh(sigma1, sigma2)
        covmean = covmean.real
    return float(np.trace(covmean))


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2); clipped at 0 (round-off)."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"feature dimensions differ: {mu1.shape} vs {mu2.shape}")
    diff = mu1 - mu2
    value = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt_product(sigma1, sigma2, eps))
    return max(value, 0.0)


def _trace_sqrt_product_samples(a: np.ndarray, b: np.ndarray) -> float:
    """Tr((S1 S2)^(1/2)) from centred samples a [n1, D], b [n2, D] without forming D x D matrices.

    With S1 = a^T a / (n1-1) and S2 = b^T b / (n2-1), the non-zero eigenvalues of S1 S2 are the squared
    singular values of a b^T / sqrt((n1-1)(n2-1)); the trace of the square root is their sum.
    """
    m = a @ b.T
    if m.shape[0] > m.shape[1]:
        m = m.T
    eig = np.linalg.eigvalsh(m @ m.T)
    return float(np.sqrt(np.clip(eig, 0, None)).sum() / np.sqrt((a.shape[0] - 1) * (b.shape[0] - 1)))


def frechet_distance_features(feats1: np.ndarray, feats2: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets [N1, D] and [N2, D].

    With fewer samples than dimensions the covariances are low-rank: the trace term is then computed
    exactly in sample space (an N x N problem) instead of a slow, ill-conditioned D x D sqrtm.
    """
    x = np.asarray(feats1, dtype=np.float64)
    y = np.asarray(feats2, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1] or min(len(x), len(y)) < 2:
        raise ValueError(f"need two [N>=2, D] feature sets of equal D, got {x.shape} and {y.shape}")
    if min(len(x), len(y)) > x.shape[1]:
        mu1, s1 = gaussian_stats(x)
        mu2, s2 = gaussian_stats(y)
        return frechet_distance(mu1, s1, mu2, s2)
    a, b = x - x.mean(0), y - y.mean(0)
    diff = x.mean(0) - y.mean(0)
    tr1 = float((a * a).sum() / (len(a) - 1))
    tr2 = float((b * b).sum() / (len(b) - 1))
    return max(float(diff @ diff + tr1 + tr2 - 2 * _trace_sqrt_product_samples(a, b)), 0.0)
