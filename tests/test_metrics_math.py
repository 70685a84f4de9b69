"""The metric math against independent computations on given features."""

import numpy as np
import pytest

from stylekit.metrics.frechet import frechet_distance, frechet_distance_features, gaussian_stats
from stylekit.metrics.mmd import cmmd, kid, polynomial_mmd_subsets, rbf_mmd2


def _independent_fd(x: np.ndarray, y: np.ndarray) -> float:
    """FD via the eigenvalues of S1^(1/2) S2 S1^(1/2) (a different route to Tr sqrt(S1 S2))."""
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x.T), np.cov(y.T)
    w, v = np.linalg.eigh(s1)
    r1 = v @ np.diag(np.sqrt(np.clip(w, 0, None))) @ v.T
    tr = np.sqrt(np.clip(np.linalg.eigvalsh(r1 @ s2 @ r1), 0, None)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr)


@pytest.mark.numerics
def test_frechet_matches_independent_and_cleanfid():
    from cleanfid.fid import frechet_distance as cleanfid_fd

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 16))
    y = rng.normal(size=(300, 16)) @ rng.normal(size=(16, 16)) * 0.5 + 0.3
    ours = frechet_distance_features(x, y)
    assert ours == pytest.approx(_independent_fd(x, y), rel=1e-6)
    mu1, s1 = gaussian_stats(x)
    mu2, s2 = gaussian_stats(y)
    assert ours == pytest.approx(float(cleanfid_fd(mu1, s1, mu2, s2)), rel=1e-8)


def test_frechet_closed_forms():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 8))
    assert frechet_distance_features(x, x) == pytest.approx(0.0, abs=1e-8)
    shift = np.arange(8) * 0.1
    # Same covariance, shifted mean: FD = |shift|^2 exactly.
    assert frechet_distance_features(x, x + shift) == pytest.approx(float(shift @ shift), abs=1e-8)
    # 1-d Gaussians: (m1-m2)^2 + (s1-s2)^2.
    assert frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([0.0]), np.array([[1.0]])) == pytest.approx(1 + 1)


def test_frechet_singular_covariance_is_finite():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(10, 64)), rng.normal(size=(12, 64)) + 1
    value = frechet_distance_features(x, y)
    assert np.isfinite(value) and value > 0
    assert value == pytest.approx(_independent_fd(x, y), rel=1e-6)  # sample-space route, exact
    mu1, s1 = gaussian_stats(x)
    mu2, s2 = gaussian_stats(y)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(value, rel=1e-4)  # sqrtm route with guards


def _direct_mmd_poly(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with k(a,b) = (a.b/d + 1)^3, written as explicit sums."""
    d, m = x.shape[1], x.shape[0]
    k = lambda a, b: (a @ b / d + 1) ** 3  # noqa: E731
    sxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    syy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    sxy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
    return sxx / (m * (m - 1)) + syy / (m * (m - 1)) - 2 * sxy / (m * m)


@pytest.mark.numerics
def test_kid_matches_direct_formula_and_cleanfid():
    from cleanfid.fid import kernel_distance

    rng = np.random.default_rng(3)
    x = rng.normal(size=(30, 6))
    y = rng.normal(size=(30, 6)) * 1.3 + 0.2
    # Subset size = n: every subset is a permutation of the whole set, so KID = the direct MMD^2.
    result = kid(x, y, num_subsets=5, max_subset_size=1000)
    direct = _direct_mmd_poly(y, x)
    assert result.value == pytest.approx(direct, rel=1e-9)
    assert result.x1000 == pytest.approx(direct * 1000, rel=1e-9)
    assert result.subset_size == 30 and result.std == pytest.approx(0.0, abs=1e-9)
    assert result.value == pytest.approx(kernel_distance(x, y, num_subsets=5), rel=1e-9)


def test_kid_subsets_reproducible_and_near_zero_for_same_distribution():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(300, 8)), rng.normal(size=(300, 8))
    a = polynomial_mmd_subsets(x, y, num_subsets=20, max_subset_size=100, seed=7)
    b = polynomial_mmd_subsets(x, y, num_subsets=20, max_subset_size=100, seed=7)
    np.testing.assert_array_equal(a, b)
    assert abs(a.mean()) < 0.05
    far = kid(x, y + 2.0, num_subsets=20, max_subset_size=100).value
    assert far > 10 * abs(a.mean())


def _direct_cmmd(x: np.ndarray, y: np.ndarray, sigma: float = 10.0) -> float:
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    y = y / np.linalg.norm(y, axis=1, keepdims=True)
    k = lambda a, b: np.exp(-np.sum((a - b) ** 2) / (2 * sigma**2))  # noqa: E731
    kxx = np.mean([k(a, b) for a in x for b in x])
    kyy = np.mean([k(a, b) for a in y for b in y])
    kxy = np.mean([k(a, b) for a in x for b in y])
    return 1000 * (kxx + kyy - 2 * kxy)


@pytest.mark.numerics
def test_cmmd_matches_direct_formula():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(25, 12))
    y = rng.normal(size=(17, 12)) + 0.7
    assert cmmd(x, y) == pytest.approx(_direct_cmmd(x, y), rel=1e-9)
    assert cmmd(x, x) == pytest.approx(0.0, abs=1e-12)
    assert cmmd(x, y) > 0
    # Scale invariance: CMMD normalises the embeddings first.
    assert cmmd(3 * x, y) == pytest.approx(cmmd(x, y), rel=1e-9)
    assert rbf_mmd2(x, y, sigma=1.0) > 0
