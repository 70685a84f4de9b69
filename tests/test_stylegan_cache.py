"""Weight-derived tensors (fused up-sampling kernel, demodulation sums, low-precision copies) are
computed once outside training and follow in-place changes (stylekit/nets/stylegan2/ops.py)."""

from __future__ import annotations

import torch

from stylekit.nets.stylegan2 import ops


def _layer(seed: int = 0) -> tuple[torch.nn.Parameter, torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    w = torch.nn.Parameter(torch.randn(6, 4, 3, 3, generator=g))
    x = torch.randn(2, 4, 5, 5, generator=g)
    s = torch.randn(2, 4, generator=g) + 1.5
    return w, x, s, ops.setup_filter()


def test_outside_training_the_demodulation_sums_and_bf16_copies_are_made_once() -> None:
    w, x, s, f = _layer()
    made: list[str] = []
    real = ops.cached_derived

    def counting(weight, what, make, *deps):
        def wrapped():
            made.append(what)
            return make()
        return real(weight, what, wrapped, *deps)

    ops.cached_derived = counting
    try:
        with torch.no_grad():
            first = ops.modulated_conv2d(x.bfloat16(), w, s, demodulate=True, up=True, f=f, fused=False)
            again = ops.modulated_conv2d(x.bfloat16(), w, s, demodulate=True, up=True, f=f, fused=False)
    finally:
        ops.cached_derived = real
    assert torch.equal(first, again)
    assert sorted(made) == sorted(["square_sum", "up_kernel", "up_kernel:torch.bfloat16"])


def test_cached_values_follow_in_place_weight_changes() -> None:
    w, x, s, f = _layer(1)
    with torch.no_grad():
        before = ops.modulated_conv2d(x, w, s, demodulate=True, up=True, f=f, fused=False)
        w.mul_(torch.linspace(0.5, 2.0, 6).reshape(6, 1, 1, 1))  # an EMA / optimiser / load_state_dict step
        after = ops.modulated_conv2d(x, w, s, demodulate=True, up=True, f=f, fused=False)
        fresh = ops.modulated_conv2d(x, w.detach().clone(), s, demodulate=True, up=True, f=f, fused=False)
    assert not torch.allclose(before, after)
    assert torch.allclose(after, fresh, atol=1e-6)


def test_a_value_cached_in_inference_mode_serves_a_later_gradient_through_the_activations() -> None:
    # invert: a frozen G whose kernels were cached by an earlier inference pass; the latent needs grads.
    w, x, s, f = _layer(2)
    w.requires_grad_(False)
    with torch.inference_mode():
        ops.modulated_conv2d(x, w, s, demodulate=True, up=True, f=f, fused=False)
    x = x.clone().requires_grad_(True)
    out = ops.modulated_conv2d(x, w, s, demodulate=True, up=True, f=f, fused=False)
    out.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_while_training_nothing_is_cached_and_the_gradient_reaches_the_weight() -> None:
    w, x, s, f = _layer(3)
    out = ops.modulated_conv2d(x, w, s, demodulate=True, up=True, f=f, fused=False)
    out.sum().backward()
    assert w.grad is not None and w.grad.abs().sum() > 0
    assert not any(key[0] == id(w) for key in ops._DERIVED)


def test_a_kernel_first_made_under_bf16_autocast_is_exact_for_a_later_fp32_forward() -> None:
    w, x, s, f = _layer()
    with torch.no_grad():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            under_autocast = ops.modulated_conv2d(x, w, s, up=True, f=f, fused=False)
            ops.modulated_conv2d(x, w, s, up=True, f=f, fused=True)
        fp32 = ops.cached_up_kernel(w, f)
        assert fp32.dtype == torch.float32 and torch.equal(fp32, ops.up_kernel(w, f))
        out = ops.modulated_conv2d(x, w, s, up=True, f=f, fused=False)
    w.requires_grad_(False)  # the same forward with nothing cached: what an fp32 forward must give
    ops._DERIVED.clear()
    with torch.no_grad():
        assert torch.equal(out, ops.modulated_conv2d(x, w, s, up=True, f=f, fused=False))
    assert under_autocast.dtype == torch.bfloat16
