"""StyleGAN2 math pinned on tiny inputs: fused resampling vs naive FIR, modulated conv paths, invariants."""

import math

import pytest
import torch
import torch.nn.functional as F

from stylekit.nets.stylegan2 import ops
from stylekit.nets.stylegan2.networks import Discriminator, Generator, MinibatchStdLayer, freezed_layers
from stylekit.nets.stylegan2.tiny import tiny_discriminator, tiny_generator


def naive_upfirdn(x, f, up=1, down=1, pad=(0, 0), gain=1.0):
    """Reference: zero-insert by `up`, zero-pad, true convolution with f*gain, keep every `down`-th pixel."""
    n, c, h, w = x.shape
    if up > 1:
        z = torch.zeros(n, c, h * up, w * up, dtype=x.dtype)
        z[:, :, ::up, ::up] = x
        x = z
    x = F.pad(x, [pad[0], pad[1], pad[0], pad[1]])
    k = (f * gain).flip([0, 1])[None, None].repeat(c, 1, 1, 1)
    x = F.conv2d(x, k, groups=c)
    return x[:, :, ::down, ::down]


def naive_modconv(x, weight, styles, demodulate=True, up=False, f=None):
    """Per-sample loop: modulate, demodulate, (transposed conv + FIR | conv), like the papers describe."""
    outs = []
    for i in range(x.shape[0]):
        w = weight * styles[i].reshape(1, -1, 1, 1)
        if demodulate:
            w = w * (w.square().sum(dim=[1, 2, 3], keepdim=True) + 1e-8).rsqrt()
        if up:
            y = F.conv_transpose2d(x[i : i + 1], w.transpose(0, 1), stride=2)  # true conv of zero-inserted x
            y = naive_upfirdn(y, f, pad=(1, 1), gain=4.0)
        else:
            y = F.conv2d(x[i : i + 1], w, padding=w.shape[-1] // 2)
        outs.append(y)
    return torch.cat(outs)


@pytest.fixture(params=["symmetric", "asymmetric"])
def fir(request):
    if request.param == "symmetric":
        return ops.setup_filter([1, 3, 3, 1])
    g = torch.Generator().manual_seed(3)
    f = torch.rand(4, 4, generator=g) + 0.1
    return f / f.sum()


def test_setup_filter_is_normalised_outer_product():
    f = ops.setup_filter([1, 3, 3, 1])
    assert f.shape == (4, 4)
    assert torch.allclose(f.sum(), torch.tensor(1.0))
    assert torch.allclose(f, torch.outer(torch.tensor([1.0, 3, 3, 1]), torch.tensor([1.0, 3, 3, 1])) / 64)


@pytest.mark.numerics
def test_upsample_matches_zero_insert_then_fir(fir):
    x = torch.randn(2, 3, 5, 6, dtype=torch.float64)
    fast = ops.upsample2d(x, fir.double())
    ref = naive_upfirdn(x, fir.double(), up=2, pad=(2, 1), gain=4.0)
    assert fast.shape == (2, 3, 10, 12)
    assert torch.allclose(fast, ref, atol=1e-12)


@pytest.mark.numerics
def test_downsample_matches_fir_then_decimate(fir):
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    fast = ops.downsample2d(x, fir.double())
    ref = naive_upfirdn(x, fir.double(), down=2, pad=(1, 1))
    assert fast.shape == (2, 3, 4, 4)
    assert torch.allclose(fast, ref, atol=1e-12)


def test_upsampled_constant_stays_constant():
    x = torch.full((1, 2, 6, 6), 0.7, dtype=torch.float64)
    y = ops.upsample2d(x, ops.setup_filter().double())
    assert torch.allclose(y[:, :, 2:-2, 2:-2], torch.full_like(y[:, :, 2:-2, 2:-2], 0.7))


@pytest.mark.numerics
@pytest.mark.parametrize("impl", ["polyphase", "transpose"])
@pytest.mark.parametrize("fused", [False, True])
def test_fused_up_conv_equals_naive_transposed_conv_plus_fir(fir, impl, fused, monkeypatch):
    monkeypatch.setattr(ops, "UP_IMPL", impl)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, 6, 6, generator=g, dtype=torch.float64)
    w = torch.randn(4, 5, 3, 3, generator=g, dtype=torch.float64)
    s = torch.randn(3, 5, generator=g, dtype=torch.float64) + 1.5
    fast = ops.modulated_conv2d(x, w, s, demodulate=True, up=True, f=fir.double(), fused=fused)
    ref = naive_modconv(x, w, s, demodulate=True, up=True, f=fir.double())
    assert fast.shape == (3, 4, 12, 12)
    assert torch.allclose(fast, ref, atol=1e-10)


def test_up_kernel_cache_outside_training_follows_in_place_changes(fir):
    g = torch.Generator().manual_seed(1)
    w = torch.nn.Parameter(torch.randn(4, 5, 3, 3, generator=g, dtype=torch.float64))
    f = fir.double()
    with torch.no_grad():
        first = ops.cached_up_kernel(w, f)
        assert ops.cached_up_kernel(w, f) is first  # remembered while nothing changed
        assert torch.equal(first, ops.up_kernel(w, f))
        w.mul_(2)  # an optimiser / EMA / load_state_dict writes in place
        second = ops.cached_up_kernel(w, f)
    assert second is not first
    assert torch.allclose(second, 2 * first, atol=1e-12)
    # Recording gradients (training): computed afresh, and the gradient reaches the weight.
    kernel = ops.cached_up_kernel(w, f)
    assert kernel is not second and kernel.requires_grad
    kernel.sum().backward()
    assert w.grad is not None and torch.isfinite(w.grad).all()


@pytest.mark.numerics
@pytest.mark.parametrize("demodulate", [True, False])
@pytest.mark.parametrize("k", [1, 3])
def test_modulated_conv_grouped_and_activation_scaling_match_per_sample_loop(demodulate, k):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 6, 5, 5, generator=g, dtype=torch.float64)
    w = torch.randn(7, 6, k, k, generator=g, dtype=torch.float64)
    s = torch.randn(4, 6, generator=g, dtype=torch.float64)
    ref = naive_modconv(x, w, s, demodulate=demodulate)
    for fused in (True, False):
        out = ops.modulated_conv2d(x, w, s, demodulate=demodulate, fused=fused)
        assert torch.allclose(out, ref, atol=1e-10), fused


def test_demodulation_is_invariant_to_style_and_weight_scale():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 4, 5, 5, generator=g, dtype=torch.float64)
    w = torch.randn(3, 4, 3, 3, generator=g, dtype=torch.float64)
    s = torch.rand(2, 4, generator=g, dtype=torch.float64) + 0.5
    a = ops.modulated_conv2d(x, w, s)
    b = ops.modulated_conv2d(x, w * 10, s * torch.tensor([[3.0], [0.2]], dtype=torch.float64))
    assert torch.allclose(a, b, atol=1e-6)
    # Demodulated weights have unit L2 norm per output channel: unit-variance input -> ~unit-variance output.
    xs = torch.randn(1, 64, 32, 32, generator=g, dtype=torch.float64)
    out = ops.modulated_conv2d(xs, torch.randn(16, 64, 3, 3, generator=g, dtype=torch.float64), torch.ones(1, 64, dtype=torch.float64))
    assert abs(out.std().item() - 1.0) < 0.1


def test_bias_act_gain_and_clamp():
    x = torch.tensor([[-2.0, 1.0, 300.0]])
    y = ops.bias_act(x.clone(), torch.tensor([0.0, 1.0, 0.0]), act="lrelu", gain=math.sqrt(2), clamp=256)
    assert torch.allclose(y, torch.tensor([[-0.4 * math.sqrt(2), 2 * math.sqrt(2), 256.0]]))


def test_minibatch_std_appends_group_stddev():
    x = torch.randn(8, 4, 3, 3)
    y = MinibatchStdLayer(group_size=4)(x)
    assert y.shape == (8, 5, 3, 3)
    grouped = x.reshape(4, 2, 4, 3, 3)
    expected = (grouped.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=[1, 2, 3])  # per group member n
    assert torch.allclose(y[0, 4, 0, 0], expected[0]) and torch.allclose(y[1, 4, 0, 0], expected[1])
    assert torch.allclose(y[2, 4], y[0, 4])  # replicated over the group (sample 2 belongs to group 0)


@pytest.mark.parametrize("res,num_ws", [(4, 2), (8, 4), (32, 8), (64, 10)])
def test_generator_shapes_and_num_ws(res, num_ws):
    G = Generator(z_dim=16, c_dim=0, w_dim=16, img_resolution=res, mapping_kwargs=dict(num_layers=2),
                  synthesis_kwargs=dict(channel_base=256, channel_max=32))
    assert G.num_ws == num_ws == 2 * int(math.log2(res)) - 2
    with torch.no_grad():
        ws = G.mapping(torch.randn(2, 16), None)
        img = G.synthesis(ws, noise_mode="const")
    assert ws.shape == (2, num_ws, 16) and img.shape == (2, 3, res, res)


def test_truncation_psi_zero_is_w_avg_and_cutoff_limits_layers():
    G = tiny_generator(16)
    z = torch.randn(3, G.z_dim)
    with torch.no_grad():
        ws = G.mapping(z, None, truncation_psi=0)
        assert torch.allclose(ws, G.mapping.w_avg.expand_as(ws))
        full = G.mapping(z, None)
        cut = G.mapping(z, None, truncation_psi=0.5, truncation_cutoff=2)
    assert torch.allclose(cut[:, 2:], full[:, 2:])
    assert torch.allclose(cut[:, :2], G.mapping.w_avg.lerp(full[:, :2], 0.5))


def test_noise_modes():
    G = tiny_generator(16)
    ws = G.mapping(torch.randn(2, G.z_dim), None).detach()
    with torch.no_grad():
        a, b = G.synthesis(ws, noise_mode="const"), G.synthesis(ws, noise_mode="const")
        r1, r2 = G.synthesis(ws, noise_mode="random"), G.synthesis(ws, noise_mode="random")
        n = G.synthesis(ws, noise_mode="none")
    assert torch.equal(a, b)
    assert not torch.allclose(r1, r2) and not torch.allclose(a, n)
    with pytest.raises(ValueError):
        G.synthesis(ws, noise_mode="bogus")


def test_fp16_blocks_run_and_stay_close():
    G = tiny_generator(16, num_fp16_res=2, conv_clamp=256)
    ws = G.mapping(torch.randn(2, G.z_dim), None).detach()
    with torch.no_grad():
        ref = G.synthesis(ws, noise_mode="const")  # CPU default: fp32
        half = G.synthesis(ws, noise_mode="const", force_fp32=False)
    assert half.dtype == torch.float32
    assert (half - ref).abs().max() < 0.05 * ref.abs().max()


def test_generator_backward_works():
    G = tiny_generator(8).train()
    img = G(torch.randn(2, G.z_dim), None)
    img.square().mean().backward()
    assert G.synthesis.b8.conv0.weight.grad is not None and G.mapping.fc0.weight.grad is not None


def test_discriminator_conditional_and_freezed_numbering():
    D = tiny_discriminator(32, c_dim=3, block_kwargs=dict(freeze_layers=4))
    c = torch.eye(3)[[0, 1, 2, 0]]
    with torch.no_grad():
        logits = D(torch.randn(4, 3, 32, 32), c)
    assert logits.shape == (4, 1)
    layers = freezed_layers(D)
    assert layers[:7] == [(0, "b32.fromrgb"), (1, "b32.conv0"), (2, "b32.conv1"), (3, "b32.skip"),
                          (4, "b16.conv0"), (5, "b16.conv1"), (6, "b16.skip")]
    names = dict(D.named_parameters())
    assert "b32.skip.weight" not in names and "b16.conv0.weight" in names  # frozen -> buffer
    assert "b32.skip.weight" in D.state_dict()


def test_discriminator_names_match_nvlabs_layout():
    D = Discriminator(c_dim=0, img_resolution=16, channel_base=256, channel_max=32)
    keys = set(D.state_dict())
    for k in ("b16.fromrgb.weight", "b16.conv0.bias", "b16.conv1.resample_filter", "b16.skip.weight", "b8.conv1.weight",
              "b4.conv.weight", "b4.fc.weight", "b4.out.bias"):
        assert k in keys, k
    assert "b8.fromrgb.weight" not in keys and "b16.skip.bias" not in keys


@pytest.mark.numerics
@pytest.mark.parametrize("fused", [False, True])
def test_fp16_autocast_pre_normalises_fp32_activations(fused):
    """--amp on V100/T4 autocasts to fp16 while force_fp32 keeps activations fp32: the modulated conv
    must still pre-normalise (NVlabs' fp16 overflow guard), else large styles overflow to inf/NaN."""
    from numerics import summation

    g = torch.Generator().manual_seed(0)
    w, x = torch.randn(6, 4, 3, 3, generator=g) * 30, torch.randn(2, 4, 5, 5, generator=g) * 300
    s = torch.randn(2, 4, generator=g) * 100
    with torch.no_grad():
        ref = ops.modulated_conv2d(x, w, s, fused=fused)
        with torch.autocast("cpu", dtype=torch.float16):
            assert ops.computes_in_fp16(x)
            half = ops.modulated_conv2d(x, w, s, fused=fused)
    assert half.dtype == torch.float16 and torch.isfinite(half).all()
    # a 4 x 3 x 3 reduction in fp16, relative to the largest output
    assert float((half.float() - ref).abs().max()) <= summation(4 * 3 * 3, torch.float16) * float(ref.abs().max())
