"""The differentiable augmentation pipeline: presets, identity at p=0, exact blits, R1 double backward, sharding."""

import math

import pytest
import torch

from stylekit.nets.stylegan2.augment import AUGPIPES, GROUPS, AugmentPipe, BatchRandom, filter_bank


def _images(n: int = 6, size: int = 16, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g) * 2 - 1


def _rnd(seed: int = 0, **kw: int) -> BatchRandom:
    return BatchRandom(torch.Generator().manual_seed(seed), **kw)


def test_presets_are_cumulative_groups():
    assert set(AUGPIPES) == {"blit", "geom", "color", "filter", "noise", "cutout", "bg", "bgc", "bgcf", "bgcfn", "bgcfnc"}
    assert set(AUGPIPES["bgc"]) == set(GROUPS["blit"]) | set(GROUPS["geom"]) | set(GROUPS["color"])
    assert set(AUGPIPES["bgcfnc"]) == set().union(*(GROUPS[g] for g in GROUPS))
    assert AUGPIPES["blit"] == {"xflip": 1, "rotate90": 1, "xint": 1}


@pytest.mark.parametrize("name", sorted(AUGPIPES))
def test_p_zero_is_identity_and_p_one_changes(name):
    x = _images()
    pipe = AugmentPipe(name, p=0.0)
    assert torch.equal(pipe(x, _rnd()), x)
    pipe.p = 1.0
    y = pipe(x, _rnd(3))
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert (y - x).abs().mean() > 1e-3


def test_blit_without_translation_is_an_exact_flip_or_rotation():
    x = _images(8)
    y = AugmentPipe("blit", p=1.0, xint=0)(x, _rnd(1))
    for i in range(8):
        cands = [torch.rot90(x[i].flip(-1) if f else x[i], k, (1, 2)) for f in (0, 1) for k in range(4)]
        assert min(float((c - y[i]).abs().max()) for c in cands) < 1e-5


def test_probability_scales_with_p():
    x = _images(200, 8)
    pipe = AugmentPipe("noise", p=0.25)
    changed = ((pipe(x, _rnd(5)) - x).abs().flatten(1).max(1).values > 0).float().mean()
    assert 0.15 < float(changed) < 0.35


def test_filter_bank_sums_to_impulse():
    bank = filter_bank()
    total = bank.sum(0)
    assert abs(float(total[len(total) // 2]) - 1) < 1e-12 and float(total.abs().sum()) < 1 + 1e-9


def test_colour_brightness_only_shifts():
    x = _images(4)
    y = AugmentPipe("color", p=1.0, contrast=0, lumaflip=0, hue=0, saturation=0)(x, _rnd(2))
    shift = (y - x).flatten(1)
    assert torch.allclose(shift, shift[:, :1].expand_as(shift), atol=1e-5)


def test_r1_double_backward_through_geometric_augment():
    x = _images(4).requires_grad_(True)
    w = torch.randn(3, requires_grad=True)
    y = AugmentPipe("bgc", p=1.0)(x, _rnd(4))
    logits = (y * w.view(1, 3, 1, 1)).square().mean(dim=[1, 2, 3])
    (g,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
    g.square().sum().backward()
    assert w.grad is not None and torch.isfinite(w.grad).all() and float(w.grad.abs().sum()) > 0


def test_phase_draws_depend_on_seed_step_phase_rank_only():
    from stylekit.train.distributed import DistInfo
    from stylekit.train.stylegan import phase_random

    x = _images(4)
    pipe = AugmentPipe("bgcfnc", p=0.7)

    def draw(seed: int, step: int, phase: int, rank: int) -> torch.Tensor:
        return pipe(x, phase_random(seed, step, phase, DistInfo(rank=rank, world_size=2)))

    ref = draw(1, 5, 2, 0)
    assert torch.equal(ref, draw(1, 5, 2, 0))  # reproducible (resume repeats an uninterrupted run)
    for other in [(1, 5, 2, 1), (1, 6, 2, 0), (1, 5, 3, 0), (2, 5, 2, 0)]:
        assert not torch.equal(ref, draw(*other)), other
    r0, r1 = (phase_random(1, 5, 0, DistInfo(rank=r, world_size=2)) for r in (0, 1))
    assert r0.shared_randint(1, 10**9) == r1.shared_randint(1, 10**9)  # the style-mixing cut-off is shared
    assert r0.randn(2, 3).device == torch.device("cpu")


def test_rotation_probability_follows_nvlabs():
    # Two rotations, each with 1 - sqrt(1 - p): at least one happens with probability p.
    p = 0.5
    p_rot = 1 - math.sqrt(1 - p)
    assert abs((1 - (1 - p_rot) ** 2) - p) < 1e-12
