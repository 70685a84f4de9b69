"""D's real pass and R1 fused (NVlabs "Dboth"): one D forward on the reals gives the same losses and
gradients as the two separate passes, and a Dreg minibatch takes two D steps from those gradients."""

from __future__ import annotations

import copy

import pytest
import torch

from stylekit.nets.stylegan2.augment import AugmentPipe, BatchRandom
from stylekit.nets.stylegan2.tiny import tiny_discriminator, tiny_generator
from stylekit.train.distributed import DistInfo
from stylekit.train.stats import RunningMeans
from stylekit.train.stylegan import Phases, phase_random
from stylekit.train.stylegan_loss import LossConfig, StyleGAN2Loss, lazy_adam

RES, N = 16, 4
pytestmark = pytest.mark.usefixtures("one_thread")


def _loss(augment: bool) -> StyleGAN2Loss:
    G = tiny_generator(RES, seed=0).train()
    D = tiny_discriminator(RES, seed=1).train()
    pipe = AugmentPipe("bgc", p=0.5) if augment else None  # p > 0: the reals really are augmented
    return StyleGAN2Loss(G, D, pipe, LossConfig(r1_gamma=3.0))


def _reals() -> torch.Tensor:
    return torch.rand(N, 3, RES, RES, generator=torch.Generator().manual_seed(5)) * 2 - 1


def _rnd() -> BatchRandom:
    return phase_random(7, 16, 2, DistInfo())


def _grads(value: torch.Tensor, params: list[torch.nn.Parameter]) -> list[torch.Tensor]:
    return [torch.zeros_like(p) if g is None else g
            for p, g in zip(params, torch.autograd.grad(value, params, retain_graph=True, allow_unused=True), strict=True)]


@pytest.mark.numerics
@pytest.mark.parametrize("augment", [False, True], ids=["noaug", "bgc"])
def test_fused_real_pass_equals_the_two_separate_passes(augment):
    loss, real = _loss(augment), _reals()
    params = list(loss.D.parameters())
    # fused: one forward on the reals gives the real loss and R1
    rnd = _rnd()
    fused_fake = loss.disc_fake(rnd, N, None)
    fused = loss.disc_real(rnd, real, None, r1=True)
    main_fused = _grads(fused_fake + fused.loss, params)
    r1_fused = _grads(fused.r1_loss, params)
    # separate: Dmain's pass without R1, then a second forward on the reals for R1 (same augmentation draws)
    rnd = _rnd()
    sep_fake = loss.disc_fake(rnd, N, None)
    sep = loss.disc_real(rnd, real, None, r1=False)
    assert sep.r1_loss is None and sep.r1_penalty is None and not sep.logits.requires_grad
    main_sep = _grads(sep_fake + sep.loss, params)
    rnd = _rnd()
    loss.disc_fake(rnd, N, None)  # consumes the same draws, so the reals get the same augmentation
    second = loss.disc_real(rnd, real, None, r1=True)
    r1_sep = _grads(second.r1_loss, params)

    torch.testing.assert_close(fused_fake, sep_fake)
    torch.testing.assert_close(fused.loss, sep.loss)
    torch.testing.assert_close(fused.logits, sep.logits)
    torch.testing.assert_close(fused.r1_loss, second.r1_loss)
    assert float(fused.r1_penalty) > 0
    for a, b in zip(main_fused, main_sep, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    for a, b in zip(r1_fused, r1_sep, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert sum(float(g.abs().sum()) for g in r1_fused) > 0
    # R1 as defined: gamma/2 |grad_x D(x)|^2, times the interval 16 (no augmentation: D(x) directly)
    if not augment:
        x = real.clone().requires_grad_(True)
        (gx,) = torch.autograd.grad(loss.D(x, None).sum(), x)
        want = gx.square().sum(dim=[1, 2, 3]).mean() * 3.0 / 2 * 16
        torch.testing.assert_close(fused.r1_loss, want, rtol=1e-5, atol=1e-7)


def _phases(loss: StyleGAN2Loss) -> tuple[Phases, RunningMeans]:
    stats = RunningMeans(torch.device("cpu"))
    opt_G = lazy_adam(list(loss.G.parameters()), 0.002, 4)
    opt_D = lazy_adam(list(loss.D.parameters()), 0.002, 16)
    return Phases(loss, opt_G, opt_D, list(loss.G.parameters()), list(loss.D.parameters()), stats, DistInfo()), stats


def test_a_dreg_minibatch_runs_d_once_on_the_reals_and_takes_both_lazy_steps():
    loss, real = _loss(augment=True), _reals()
    D0 = copy.deepcopy(loss.D)
    phases, stats = _phases(loss)
    calls: list[int] = []
    loss.D.register_forward_hook(lambda module, args, out: calls.append(1))
    steps: list[int] = []
    phases.opt_D.register_step_post_hook(lambda opt, args, kwargs: steps.append(1))
    phases.disc(_rnd(), real, N, dreg=True)
    assert len(calls) == 2 and len(steps) == 2  # fakes + reals (the separate R1 pass made it 3); Dmain + Dreg
    means = stats.means(DistInfo())
    assert means["r1_penalty"] > 0 and means["loss_Dr1"] > 0
    assert means["loss_D"] == pytest.approx(means["loss_D_fake"] + means["loss_D_real"], rel=1e-6)

    # the same two steps by hand: both gradients at the starting parameters, Dmain's step then Dreg's
    ref = _loss(augment=True)
    ref.D.load_state_dict(D0.state_dict())
    ref_phases, _ = _phases(ref)
    params = list(ref.D.parameters())
    rnd = _rnd()
    fake = ref.disc_fake(rnd, N, None)
    reals = ref.disc_real(rnd, real, None, r1=True)
    main, r1 = _grads(fake + reals.loss, params), _grads(reals.r1_loss, params)
    for grads in (main, r1):
        for p, g in zip(params, grads, strict=True):
            p.grad = g
        ref_phases.opt_D.step()
    for (name, a), b in zip(loss.D.named_parameters(), params, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    assert any(not torch.equal(a, b) for a, b in zip(loss.D.parameters(), D0.parameters(), strict=True))


def test_a_plain_minibatch_takes_one_d_step_without_r1():
    loss = _loss(augment=False)
    phases, stats = _phases(loss)
    steps: list[int] = []
    phases.opt_D.register_step_post_hook(lambda opt, args, kwargs: steps.append(1))
    phases.disc(_rnd(), _reals(), N, dreg=False)
    assert len(steps) == 1
    assert "r1_penalty" not in stats.means(DistInfo())
