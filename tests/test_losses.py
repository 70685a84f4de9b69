"""SupCon and CE against hand-computed values; the DDP rescaling gives the single-process loss and gradient."""

import math

import pytest
import torch
import torch.nn.functional as F

from stylekit.errors import BadInput
from stylekit.train.losses import LossConfig, style_loss, supcon_loss


def _reference_supcon(z: torch.Tensor, y: torch.Tensor, t: float) -> float:
    """Khosla et al. L_out written as plain loops."""
    n = z.shape[0]
    losses = []
    for i in range(n):
        pos = [p for p in range(n) if p != i and y[p] == y[i]]
        if not pos:
            continue
        denom = sum(math.exp(float(z[i] @ z[a]) / t) for a in range(n) if a != i)
        losses.append(-sum(math.log(math.exp(float(z[i] @ z[p]) / t) / denom) for p in pos) / len(pos))
    return sum(losses) / len(losses)


def test_supcon_hand_computed_temperature_one():
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    y = torch.tensor([0, 0, 1])
    # anchor 0: positive 1 (sim 0), negatives: 2 (sim 1) -> log(1 + e); anchor 1: log 2; anchor 2 has no positive
    expected = (math.log(1 + math.e) + math.log(2)) / 2
    assert float(supcon_loss(z, y, temperature=1.0)) == pytest.approx(expected, rel=1e-6)


@pytest.mark.numerics
def test_supcon_matches_loops_at_default_temperature():
    g = torch.Generator().manual_seed(0)
    z = F.normalize(torch.randn(12, 8, generator=g), dim=1)
    y = torch.tensor([0, 0, 1, 1, 1, 2, 2, 3, 0, 1, 2, 4])  # class 3 and 4: anchors without positives
    assert float(supcon_loss(z, y, 0.1)) == pytest.approx(_reference_supcon(z, y, 0.1), rel=1e-5)


def test_supcon_without_positives_is_zero_with_gradient():
    z = F.normalize(torch.randn(4, 3), dim=1).requires_grad_(True)
    loss = supcon_loss(z, torch.arange(4))
    assert float(loss.detach()) == 0.0
    loss.backward()
    assert z.grad is not None and float(z.grad.abs().sum()) == 0.0


def test_supcon_perfect_clusters_lower_than_mixed():
    y = torch.tensor([0, 0, 1, 1])
    tight = torch.tensor([[1.0, 0], [1.0, 0], [0, 1.0], [0, 1.0]])
    mixed = torch.tensor([[1.0, 0], [0, 1.0], [1.0, 0], [0, 1.0]])
    assert float(supcon_loss(tight, y)) < float(supcon_loss(mixed, y))


@pytest.mark.numerics
def test_gathered_supcon_reproduces_global_loss_and_gradient():
    """Two simulated ranks: mean of the rank losses = global loss; summed grads / 2 = global grad."""
    g = torch.Generator().manual_seed(1)
    raw = torch.randn(8, 5, generator=g)
    y = torch.tensor([0, 0, 1, 1, 2, 2, 0, 3])
    full = raw.clone().requires_grad_(True)
    global_loss = supcon_loss(F.normalize(full, dim=1), y)
    global_loss.backward()

    parts = raw.clone().requires_grad_(True)
    z = F.normalize(parts, dim=1)
    rank_losses = [supcon_loss(z[r * 4 : (r + 1) * 4], y[r * 4 : (r + 1) * 4], gathered=(z, y, r * 4), world_size=2) for r in range(2)]
    assert float(sum(rank_losses).detach() / 2) == pytest.approx(float(global_loss.detach()), rel=1e-5)
    (sum(rank_losses) / 2).backward()  # DDP averages gradients over the 2 ranks
    torch.testing.assert_close(parts.grad, full.grad, rtol=1e-5, atol=1e-6)


def test_ce_with_label_smoothing_hand_computed():
    logits = torch.tensor([[2.0, 0.0, 0.0]])
    y = torch.tensor([0])
    cfg = LossConfig(loss="ce", label_smoothing=0.1)
    total, parts = style_loss(cfg, logits, F.normalize(torch.randn(1, 4), dim=1), y)
    logp = [2 - math.log(math.exp(2) + 2), -math.log(math.exp(2) + 2), -math.log(math.exp(2) + 2)]
    target = [0.9 + 0.1 / 3, 0.1 / 3, 0.1 / 3]
    expected = -sum(t * lp for t, lp in zip(target, logp, strict=True))
    assert float(total) == pytest.approx(expected, rel=1e-6)
    assert float(parts["ce"]) == pytest.approx(expected, rel=1e-6) and "supcon" not in parts


def test_combined_loss_weights_supcon():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(6, 3, generator=g)
    z = F.normalize(torch.randn(6, 4, generator=g), dim=1)
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    total, parts = style_loss(LossConfig("ce+supcon", supcon_weight=0.5), logits, z, y)
    assert float(total) == pytest.approx(float(parts["ce"] + 0.5 * parts["supcon"]), rel=1e-6)
    assert float(parts["supcon"]) == pytest.approx(_reference_supcon(z, y, 0.1), rel=1e-5)
    only, p2 = style_loss(LossConfig("supcon"), logits, z, y)
    assert float(only) == pytest.approx(float(parts["supcon"]), rel=1e-6) and "ce" not in p2


@pytest.mark.parametrize("kwargs", [{"loss": "triplet"}, {"supcon_weight": -1.0}, {"label_smoothing": 1.0}, {"temperature": 0.0}])
def test_bad_loss_config(kwargs):
    with pytest.raises(BadInput):
        LossConfig(**kwargs).validate()
