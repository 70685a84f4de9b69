"""StyleGAN3 (alias-free) generator: filtered leaky ReLU vs a literal reference, filter design, NVlabs
pickles and round trips, config bounds, the input transform, the ws contract and the layer map.

Tolerances (tests/numerics.py): the filtered-lrelu reference runs in float64, so the float32 op differs
from it by at most its own rounding: K * eps(float32) times the magnitude of what it sums (the same
computation on absolute values), K every term accumulated along the chain of sums.
"""

from __future__ import annotations

import collections
import json
import math
import pickle
import re
import sys
import types

import numpy as np
import pytest
import scipy.signal
import torch
import torch.nn.functional as F
from numerics import eps, summation

from stylekit.errors import BadInput
from stylekit.nets.stylegan2.export import EXPORTERS
from stylekit.nets.stylegan2.load import load_network, save_network
from stylekit.nets.stylegan2.networks import NOISE_MODES
from stylekit.nets.stylegan2.tiny import tiny_discriminator
from stylekit.nets.stylegan3 import networks as sg3_networks
from stylekit.nets.stylegan3.filters import filtered_lrelu, lowpass_filter
from stylekit.nets.stylegan3.networks import Generator, SynthesisNetwork, input_transform
from stylekit.nets.stylegan3.tiny import tiny_generator

pytestmark = pytest.mark.usefixtures("one_thread")

# ----------------------------------------------------------------------------- a fake NVlabs layout
# (the pattern of tests/test_stylegan_load.py: pickles exactly like NVlabs persistent modules)


class _EasyDict(dict):
    pass


def _reconstruct_persistent_obj(meta):  # never called: only its name ends up in the pickle
    raise AssertionError("the loader must not call the real persistence hook")


class _Persistent:
    def __init__(self, meta):
        self.meta = meta

    def __reduce__(self):
        return (_reconstruct_persistent_obj, (self.meta,))


_NEVER_RUN = "raise SystemExit('embedded source must never run')\n"


@pytest.fixture
def fake_nvlabs(monkeypatch):
    """Register stand-in torch_utils.persistence / dnnlib.util modules so pickle can name them."""
    pers = types.ModuleType("torch_utils.persistence")
    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    pers._reconstruct_persistent_obj = _reconstruct_persistent_obj
    du = types.ModuleType("dnnlib.util")
    _EasyDict.__module__, _EasyDict.__qualname__ = "dnnlib.util", "EasyDict"
    du.EasyDict = _EasyDict
    for name, mod in (("torch_utils", types.ModuleType("torch_utils")), ("torch_utils.persistence", pers),
                      ("dnnlib", types.ModuleType("dnnlib")), ("dnnlib.util", du)):
        monkeypatch.setitem(sys.modules, name, mod)
    return _persistent_of


def _persistent_of(module: torch.nn.Module, init_kwargs=None, module_src: str = _NEVER_RUN):
    state = {
        "training": False,
        "_parameters": collections.OrderedDict(module._parameters.items()),
        "_buffers": collections.OrderedDict(module._buffers.items()),
        "_non_persistent_buffers_set": set(),
        "_modules": collections.OrderedDict((k, _persistent_of(m, module_src=module_src)) for k, m in module._modules.items()),
        "_init_args": (),
        "_init_kwargs": _EasyDict(init_kwargs or {}),
    }
    return _Persistent(dict(type="class", version=6, module_src=module_src, class_name=type(module).__name__, state=state))


def _kwargs(net, **override):
    """NVlabs-shaped init kwargs: stylekit's StyleGAN3 Generator already has NVlabs' flat shape."""
    out = {k: _EasyDict(v) if isinstance(v, dict) else v for k, v in net.init_kwargs.items()}
    out.update(override)
    return out


def _images(G, seed=0, n=2):
    z = torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(seed))
    c = torch.eye(G.c_dim)[torch.arange(n) % G.c_dim] if G.c_dim else None
    with torch.no_grad():
        return G(z, c, truncation_psi=0.7, noise_mode="const")


def _ws(G, seed=0, n=2):
    z = torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return G.mapping(z, None, truncation_psi=0.7)


# ----------------------------------------------------------------------------- 1. filtered_lrelu


def _true_conv(x: torch.Tensor, f: torch.Tensor, axis: str) -> torch.Tensor:
    """Valid true convolution of every channel with f: explicit flipped kernel, one depthwise conv2d."""
    c = x.shape[1]
    k = f.flip(list(range(f.ndim)))
    shape = {"y": (len(f), 1), "x": (1, len(f)), "2d": tuple(f.shape)}[axis]
    return F.conv2d(x, k.reshape(1, 1, *shape).repeat(c, 1, 1, 1), groups=c)


def _reference_filtered_lrelu(x, fu, fd, b, up, down, padding, gain, slope, clamp):
    """NVlabs filtered_lrelu, step by step, in float64."""
    x = x.double()
    if b is not None:  # 1. bias
        x = x + b.double().reshape(1, -1, 1, 1)
    n, c, h, w = x.shape
    z = x.new_zeros(n, c, h * up, w * up)  # 2. up-1 zeros after each pixel
    z[:, :, ::up, ::up] = x
    px0, px1, py0, py1 = padding  # 3. pad (negative crops)
    z = F.pad(z, [px0, px1, py0, py1])
    if fu is not None:  # 4. true convolution with fu, times up**2 in all
        fu = fu.double()
        if fu.ndim == 1:
            z = _true_conv(_true_conv(z, fu * up, "y"), fu * up, "x")
        else:
            z = _true_conv(z, fu * up**2, "2d")
    z = z * gain  # 5. gain
    z = torch.where(z >= 0, z, z * slope)  # 6. leaky ReLU
    if clamp is not None:  # 7. clamp
        z = z.clamp(-clamp, clamp)
    if fd is not None:  # 8. true convolution with fd
        fd = fd.double()
        z = _true_conv(_true_conv(z, fd, "y"), fd, "x") if fd.ndim == 1 else _true_conv(z, fd, "2d")
    return z[:, :, ::down, ::down]  # 9. every down-th pixel


def _terms(f: torch.Tensor | None) -> int:
    """Terms a filter pass accumulates per output (both 1D passes for a separable filter)."""
    return 0 if f is None else (2 * f.numel() if f.ndim == 1 else f.numel())


def _filter(gen, taps, ndim):
    """Random, deliberately asymmetric taps: a flipped (correlated) filter or swapped axes would show."""
    return None if taps is None else torch.randn((taps,) * ndim, generator=gen)


_LRELU_CASES = {
    # name: (up, down, fu taps/ndim, fd taps/ndim, padding x0 x1 y0 y1, gain, slope, clamp fraction)
    "separable_up2_down2": (2, 2, (12, 1), (12, 1), (9, 8, 7, 10), math.sqrt(2), 0.2, None),
    "separable_up4_down2": (4, 2, (24, 1), (12, 1), (13, 11, 12, 14), math.sqrt(2), 0.2, None),
    "radial_fd": (2, 2, (12, 1), (12, 2), (11, 10, 9, 12), math.sqrt(2), 0.2, None),
    "2d_fu": (2, 1, (6, 2), (5, 1), (4, 6, 5, 3), math.sqrt(2), 0.2, None),
    "torgb_no_filters": (1, 1, (None, 1), (None, 1), (0, 0, 0, 0), 1.0, 1.0, None),
    "fd_only_down2": (1, 2, (None, 1), (6, 1), (2, 3, 3, 2), math.sqrt(2), 0.2, None),
    "negative_padding_crops": (2, 2, (8, 1), (6, 1), (-3, 2, 1, -4), math.sqrt(2), 0.2, None),
    "clamp_bites": (2, 2, (12, 1), (12, 2), (9, 8, 7, 10), math.sqrt(2), 0.2, 0.4),
}


@pytest.mark.numerics
@pytest.mark.parametrize("case", list(_LRELU_CASES))
def test_filtered_lrelu_equals_the_literal_reference(case):
    up, down, (tu, nu), (td, nd), padding, gain, slope, clamp_frac = _LRELU_CASES[case]
    gen = torch.Generator().manual_seed(sorted(_LRELU_CASES).index(case))
    x = torch.randn(2, 3, 13, 15, generator=gen)  # not square: swapped axes would show
    b = torch.randn(3, generator=gen)
    fu, fd = _filter(gen, tu, nu), _filter(gen, td, nd)
    clamp = None
    if clamp_frac is not None:  # a clamp below the largest pre-clamp value: it changes the result
        pre = _reference_filtered_lrelu(x, fu, None, b, up, 1, padding, gain, slope, None)
        clamp = clamp_frac * float(pre.abs().max())
        unclamped = _reference_filtered_lrelu(x, fu, fd, b, up, down, padding, gain, slope, None)
    ref = _reference_filtered_lrelu(x, fu, fd, b, up, down, padding, gain, slope, clamp)
    out = filtered_lrelu(x, fu, fd, b, up=up, down=down, padding=padding, gain=gain, slope=slope, clamp=clamp)
    assert out.dtype == torch.float32 and out.shape == ref.shape and out.numel() > 0
    # Error bound of the float32 op: every accumulated term (both filter passes, plus the bias add and the
    # gain and slope products) rounds relative to the sum of the absolute terms, i.e. the same chain run on
    # |x| + |b|, |fu|, |fd| (slope 1, no clamp: the leaky ReLU and the clamp are 1-Lipschitz).
    mag = _reference_filtered_lrelu(x.abs() + b.abs().reshape(1, -1, 1, 1), None if fu is None else fu.abs(),
                                    None if fd is None else fd.abs(), None, up, down, padding, abs(gain), 1.0, None)
    tol = summation(_terms(fu) + _terms(fd) + 3) * mag
    err = (out.double() - ref).abs()
    assert bool((err <= tol).all()), f"{case}: max error {err.max().item():.3g}, bound there {tol.flatten()[err.argmax()].item():.3g}"
    assert float(ref.abs().max()) > 0.1  # a real signal, not an all-zero crop
    if clamp is not None:
        assert float((unclamped - ref).abs().max()) > 100 * float(tol.max())  # the clamp did bite


def test_filtered_lrelu_sizes_follow_padding():
    """Output size: (in * up + pad0 + pad1 - taps_u + 1 - taps_d + 1) / down, per axis (x from px, y from py)."""
    x = torch.randn(1, 2, 7, 5)
    fu, fd = torch.ones(8) / 8, torch.ones(4) / 4
    out = filtered_lrelu(x, fu, fd, None, up=2, down=2, padding=(4, 3, 2, 1))
    h = (7 * 2 + 2 + 1 - 8 + 1 - 4 + 1 + 1) // 2
    w = (5 * 2 + 4 + 3 - 8 + 1 - 4 + 1 + 1) // 2
    assert tuple(out.shape) == (1, 2, h, w)


# ----------------------------------------------------------------------------- 2. lowpass_filter


def test_lowpass_filter_of_one_tap_is_the_identity():
    assert lowpass_filter(1, cutoff=2, width=4, fs=16) is None
    assert lowpass_filter(1, cutoff=2, width=4, fs=16, radial=True) is None


@pytest.mark.numerics
@pytest.mark.parametrize(("numtaps", "cutoff", "width", "fs"), [(12, 2.0, 6.0, 32.0), (24, 4.0, 5.2, 64.0), (12, 8.0, 8.0, 32.0)])
def test_separable_lowpass_filter_is_firwin_with_unit_dc_gain(numtaps, cutoff, width, fs):
    f = lowpass_filter(numtaps, cutoff, width, fs)
    assert f.dtype == torch.float32 and tuple(f.shape) == (numtaps,)
    expected = scipy.signal.firwin(numtaps=numtaps, cutoff=cutoff, width=width, fs=fs)
    # float64 design rounded once to float32: half an ulp of each tap
    assert np.all(np.abs(f.double().numpy() - expected) <= eps() * np.abs(expected))
    assert abs(f.double().sum().item() - 1) <= summation(numtaps) * f.abs().sum().item()
    assert torch.allclose(f, f.flip(0), rtol=0, atol=eps() * f.abs().max().item())  # linear phase


@pytest.mark.numerics
@pytest.mark.parametrize(("numtaps", "cutoff", "width", "fs"), [(12, 2.0, 6.0, 32.0), (12, 6.0, 4.0, 32.0)])
def test_radial_lowpass_filter_is_a_symmetric_2d_filter_with_unit_dc_gain(numtaps, cutoff, width, fs):
    f = lowpass_filter(numtaps, cutoff, width, fs, radial=True)
    assert f.dtype == torch.float32 and tuple(f.shape) == (numtaps, numtaps)
    assert abs(f.double().sum().item() - 1) <= summation(numtaps**2) * f.abs().sum().item()
    atol = eps() * f.abs().max().item()  # equal float64 values, each rounded to float32 once
    for sym in (f.flip(0), f.flip(1), f.t(), torch.rot90(f)):
        assert torch.allclose(f, sym, rtol=0, atol=atol)
    separable = torch.outer(f.sum(1), f.sum(0))  # what a separable filter with these marginals would be
    assert (f - separable).abs().max().item() > 1000 * atol  # radial, not separable


# ----------------------------------------------------------------------------- 3. NVlabs pickles


@pytest.mark.parametrize("config", ["t", "r"])
def test_nvlabs_stylegan3_pickle_loads_to_identical_images(tmp_path, fake_nvlabs, config):
    c_dim = 3 if config == "r" else 0
    G = tiny_generator(16, seed=1, config=config, c_dim=c_dim)
    G_ema = tiny_generator(16, seed=2, config=config, c_dim=c_dim)
    D = tiny_discriminator(16, c_dim=c_dim)  # NVlabs' stylegan3 training uses the StyleGAN2 discriminator
    marker = tmp_path / "ran"
    src = f"open({str(marker)!r}, 'w').close()\nraise SystemExit('embedded source must never run')\n"
    snap = {"G": _persistent_of(G, _kwargs(G), src), "D": _persistent_of(D, _kwargs(D), src),
            "G_ema": _persistent_of(G_ema, _kwargs(G_ema), src),
            "training_set_kwargs": _EasyDict(path="afhq.zip", resolution=16), "augment_pipe": None}
    path = tmp_path / f"stylegan3-{config}.pkl"
    with open(path, "wb") as fh:
        pickle.dump(snap, fh, protocol=4)

    net = load_network(path)
    assert net.format == "nvlabs-pkl" and net.architecture == "stylegan3"
    assert isinstance(net.G_ema, Generator) and isinstance(net.G, Generator) and net.generator is net.G_ema
    assert torch.equal(_images(net.G_ema), _images(G_ema)) and torch.equal(_images(net.G), _images(G))
    assert not torch.equal(_images(net.G), _images(net.G_ema))  # the two generators were not mixed up
    img = torch.randn(2, 3, 16, 16)
    c = torch.eye(c_dim)[:2] if c_dim else None
    with torch.no_grad():
        assert torch.equal(net.D(img, c), D(img, c))
    assert "synthesis_kwargs" not in net.config["G_ema"] and net.config["G_ema"]["channel_base"] == G_ema.init_kwargs["channel_base"]
    if config == "r":
        assert net.config["G_ema"]["use_radial_filters"] is True and net.G_ema.synthesis.L0_36_32.down_filter.ndim == 2
    assert net.extra["training_set_kwargs"]["path"] == "afhq.zip"
    assert not marker.exists()


# ----------------------------------------------------------------------------- 4. round trips


@pytest.fixture
def loaded_pickle(tmp_path, fake_nvlabs):
    G = tiny_generator(16, seed=3, config="r")
    D = tiny_discriminator(16)
    path = tmp_path / "sg3.pkl"
    with open(path, "wb") as fh:
        pickle.dump({"G": _persistent_of(G, _kwargs(G)), "G_ema": _persistent_of(G, _kwargs(G)), "D": _persistent_of(D, _kwargs(D))}, fh)
    return G, load_network(path)


def test_safetensors_round_trip_gives_identical_images(tmp_path, loaded_pickle):
    G, net = loaded_pickle
    path = save_network(tmp_path / "sg3.safetensors", G=net.G, G_ema=net.G_ema, D=net.D)
    again = load_network(path)
    assert again.format == "stylekit" and again.architecture == "stylegan3"
    assert torch.equal(_images(again.G_ema), _images(G)) and torch.equal(_images(again.G), _images(G))
    img = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(again.D(img, None), net.D(img, None))


def test_nvlabs_state_export_round_trips_with_flat_nvlabs_kwargs(tmp_path, loaded_pickle):
    G, net = loaded_pickle
    pt = tmp_path / "sg3-G.pt"
    written = EXPORTERS["nvlabs-state"].write(net, pt)
    assert sorted(written) == sorted([pt, pt.with_suffix(".json")])
    kwargs = json.loads(pt.with_suffix(".json").read_text())
    assert "synthesis_kwargs" not in kwargs  # NVlabs stylegan3 Generator: synthesis kwargs flattened
    assert kwargs["channel_base"] == G.init_kwargs["channel_base"] and kwargs["use_radial_filters"] is True
    assert kwargs["mapping_kwargs"] == {"num_layers": 2}
    again = load_network(pt)
    assert again.format == "nvlabs-state" and again.architecture == "stylegan3"
    assert torch.equal(_images(again.generator), _images(G))
    # What NVlabs code does with the pair: Generator(**kwargs).load_state_dict(torch.load(pt, weights_only=True))
    G2 = Generator(**kwargs)
    G2.load_state_dict(torch.load(pt, weights_only=True))
    assert torch.equal(_images(G2.eval()), _images(G))


# ----------------------------------------------------------------------------- 5. bounds


@pytest.mark.parametrize(("field", "value"), [("filter_size", 100000), ("margin_size", 10**6), ("conv_kernel", 99),
                                              ("lrelu_upsampling", 1000)])
def test_out_of_bounds_kwargs_are_refused_before_building(tmp_path, fake_nvlabs, monkeypatch, field, value):
    G = tiny_generator(16)
    path = tmp_path / "hostile.pkl"
    with open(path, "wb") as fh:
        pickle.dump({"G_ema": _persistent_of(G, _kwargs(G, **{field: value}))}, fh)
    built = []

    def never(self, *args, **kwargs):
        built.append(kwargs)
        raise AssertionError("built before the bounds check")

    monkeypatch.setattr(sg3_networks.SynthesisNetwork, "__init__", never)
    with pytest.raises(BadInput, match=rf"hostile\.pkl.*G_ema\.{field}={value}\b"):
        load_network(path)
    assert built == []


# ----------------------------------------------------------------------------- 6. input transform


def _chain_terms(G: Generator) -> int:
    """Terms accumulated along the synthesis: the input's projection, then per layer its modulated conv's
    fan-in and both filter passes (with the bias, gain, slope and output-scale products)."""
    syn = G.synthesis
    total = syn.input.channels + 2
    for name in syn.layer_names:
        layer = getattr(syn, name)
        total += layer.weight[0].numel() + _terms(layer.up_filter) + _terms(layer.down_filter) + 5
    return total


def test_input_transform_matrices():
    assert torch.equal(input_transform((0, 0), 0), torch.eye(3))
    tol = 4 * eps()  # float64 inverses of exact inverses, rounded to float32
    there, back = input_transform((0.25, -0.5), 0), input_transform((-0.25, 0.5), 0)
    assert torch.allclose(there @ back, torch.eye(3), rtol=0, atol=tol)
    assert torch.allclose(input_transform((0, 0), 30) @ input_transform((0, 0), -30), torch.eye(3), rtol=0, atol=tol)
    assert torch.allclose(input_transform((0, 0), 360), torch.eye(3), rtol=0, atol=tol)
    # gen_images.py: the inverse of make_transform(translate, angle) = [[c, s, tx], [-s, c, ty], [0, 0, 1]]
    a = math.radians(30)
    m = torch.tensor([[math.cos(a), math.sin(a), 0.25], [-math.sin(a), math.cos(a), -0.5], [0, 0, 1]], dtype=torch.float64)
    assert torch.allclose(input_transform((0.25, -0.5), 30).double() @ m, torch.eye(3, dtype=torch.float64), rtol=0, atol=tol)


def _with_transform(G, ws, m):
    with torch.no_grad():
        G.synthesis.input.transform.copy_(m)
        try:
            return G.synthesis(ws)
        finally:
            G.synthesis.input.transform.copy_(torch.eye(3))


@pytest.mark.numerics
def test_translation_changes_the_image_and_moves_it_by_whole_pixels():
    G = tiny_generator(16, seed=0, config="t")
    ws = _ws(G, n=3)
    plain = _with_transform(G, ws, torch.eye(3))
    moved = _with_transform(G, ws, input_transform((0.25, 0), 0))
    tol = summation(_chain_terms(G)) * plain.abs().max().item()  # what rounding alone could change
    assert (moved - plain).abs().max().item() > 1000 * tol
    # The image spans one unit: translate 0.25 at 16 px moves the content 4 px along +x (the same integer
    # shift at every layer's sampling rate). Of all shifts, that one explains the moved image best.
    def mismatch(dx, dy):
        a = plain[..., max(-dy, 0):16 - max(dy, 0), max(-dx, 0):16 - max(dx, 0)]
        b = moved[..., max(dy, 0):16 - max(-dy, 0), max(dx, 0):16 - max(-dx, 0)]
        return (a - b).abs().mean().item()

    errors = {(dx, dy): mismatch(dx, dy) for dx in range(-6, 7) for dy in range(-6, 7)}
    assert min(errors, key=errors.get) == (4, 0)
    assert errors[(4, 0)] < 0.01 * errors[(0, 0)]


@pytest.mark.numerics
@pytest.mark.parametrize("config", ["t", "r"])
def test_a_full_turn_gives_the_same_image(config):
    G = tiny_generator(16, seed=0, config=config)
    ws = _ws(G)
    plain = _with_transform(G, ws, torch.eye(3))
    turned = _with_transform(G, ws, input_transform((0, 0), 360))
    assert torch.allclose(turned, plain, rtol=0, atol=summation(_chain_terms(G)) * plain.abs().max().item())


@pytest.mark.numerics
@pytest.mark.parametrize(("angle", "k"), [(90, 1), (180, 2), (-90, 3)])
def test_r_config_is_exactly_equivariant_to_quarter_turns(angle, k):
    """R: 1x1 convolutions, symmetric separable up filters, radial down filters and padding centred as in
    NVlabs (appendix C.3): rotating the input by 90 degrees rotates the image by 90 degrees, to rounding.
    The user transform acts after the per-sample rotation and translation, so it turns about the image
    centre. Each layer divides its input by its magnitude EMA and demodulates its weights, so activations
    stay O(1) and the rounding of the two evaluations adds up along the chain of sums."""
    G = tiny_generator(16, seed=0, config="r")
    ws = _ws(G, n=3)
    plain = _with_transform(G, ws, torch.eye(3))
    turned = _with_transform(G, ws, input_transform((0, 0), angle))
    tol = summation(_chain_terms(G)) * plain.abs().max().item()
    assert torch.allclose(turned, torch.rot90(plain, k, dims=(2, 3)), rtol=0, atol=tol)
    assert (turned - plain).abs().max().item() > 1000 * tol  # a real rotation, not a symmetric image


# ----------------------------------------------------------------------------- 7. ws and noise_mode


def test_synthesis_rejects_ws_of_the_wrong_shape():
    G = tiny_generator(16)
    num_ws, w_dim = G.synthesis.num_ws, G.w_dim
    assert num_ws == G.synthesis.num_layers + 2 == len(G.synthesis.layer_names) + 1 == G.num_ws
    expected = re.escape(f"[N, {num_ws}, {w_dim}]")
    for shape in ([2, num_ws - 1, w_dim], [2, num_ws + 1, w_dim], [2, num_ws, w_dim + 1], [2, w_dim], [num_ws, w_dim, 1, 1]):
        with pytest.raises(ValueError, match=expected):
            G.synthesis(torch.zeros(shape))
    assert G.synthesis(torch.zeros(1, num_ws, w_dim)).shape == (1, 3, 16, 16)


def test_noise_mode_is_accepted_and_changes_nothing():
    G = tiny_generator(16)
    z = torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(0))
    ws = _ws(G)
    with torch.no_grad():
        ref = G.synthesis(ws)
        for mode in NOISE_MODES:
            torch.manual_seed(NOISE_MODES.index(mode) + 7)  # a fresh RNG state: "random" has no noise to draw here
            assert torch.equal(G.synthesis(ws, noise_mode=mode), ref)
            assert torch.equal(G(z, None, truncation_psi=0.7, noise_mode=mode), ref)
        with pytest.raises(ValueError, match="noise_mode"):
            G.synthesis(ws, noise_mode="loud")


# ----------------------------------------------------------------------------- 8. layers by ws index


def test_style_affines_and_layer_of_match_what_each_ws_feeds():
    G = tiny_generator(16)
    syn = G.synthesis
    affines = syn.style_affines()
    assert sorted(affines) == list(range(syn.num_ws)) and affines[0] == []
    for i, name in enumerate(syn.layer_names):
        assert len(affines[i + 1]) == 1 and affines[i + 1][0] is getattr(syn, name).affine
        assert SynthesisNetwork.layer_of(f"synthesis.{name}.affine.weight") == (name, i + 1)
    assert syn.layer_names[3] == "L3_36_32"
    assert SynthesisNetwork.layer_of("synthesis.L3_36_32.weight") == ("L3_36_32", 4)
    assert SynthesisNetwork.layer_of("L3_36_32.bias") == ("L3_36_32", 4)  # names relative to the synthesis
    assert SynthesisNetwork.layer_of("synthesis.input.freqs") == ("input", 0)
    assert SynthesisNetwork.layer_of("synthesis.input.affine.weight") == ("input", 0)
    assert SynthesisNetwork.layer_of("mapping.fc0.weight") is None
    assert SynthesisNetwork.layer_of("mapping.w_avg") is None
    assert SynthesisNetwork.layer_of("synthesis.inputs.weight") is None
    for key in G.state_dict():  # every synthesis tensor has a layer, nothing else does
        assert (SynthesisNetwork.layer_of(key) is None) == (not key.startswith("synthesis."))

    # Behaviour: changing ws[j] leaves every module before the one layer_of names untouched and changes it.
    modules = ["input", *syn.layer_names]
    outputs: dict[str, torch.Tensor] = {}
    hooks = [getattr(syn, m).register_forward_hook(lambda mod, args, out, m=m: outputs.__setitem__(m, out)) for m in modules]
    try:
        ws = _ws(G)
        with torch.no_grad():
            syn(ws)
            base = dict(outputs)
            for j in range(syn.num_ws):
                bumped = ws.clone()
                bumped[:, j] += 1.0
                syn(bumped)
                first = next(m for m in modules if not torch.equal(outputs[m], base[m]))
                assert SynthesisNetwork.layer_of(f"synthesis.{first}.weight") == (first, j)
    finally:
        for h in hooks:
            h.remove()
