"""generate / mix / interpolate / blend: behaviour on tiny random networks, through the library."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from stylekit.cli.common import parse_int_list
from stylekit.configs.stylegan import GenerateConfig, MixConfig
from stylekit.edit.blend import blend_generators, blend_weight, check_compatible, swap_index
from stylekit.edit.generate import map_seeds, seed_to_z, seeds_to_z, synthesize, to_pil
from stylekit.edit.latents import load_latents, save_latents
from stylekit.edit.mix import interpolation_ws, slerp, style_mix
from stylekit.errors import BadInput
from stylekit.nets.stylegan2.tiny import tiny_generator
from stylekit.nets.stylegan3.tiny import tiny_generator as tiny_stylegan3


@pytest.fixture(scope="module")
def G():
    return tiny_generator(32, seed=0)


def test_seed_ranges_parse():
    assert parse_int_list("0-3,7,10-11") == [0, 1, 2, 3, 7, 10, 11]
    assert parse_int_list("5") == [5]
    for bad in ("3-1", "a", ""):
        with pytest.raises(BadInput):
            parse_int_list(bad, "--seeds")


def test_seed_to_z_is_nvlabs_randomstate():
    z = seed_to_z(42, 512)
    assert z.shape == (1, 512)
    assert np.array_equal(z, np.random.RandomState(42).randn(1, 512))
    assert torch.equal(seeds_to_z([1, 2], 8)[1], torch.from_numpy(np.random.RandomState(2).randn(8)).float())
    for bad in ("-1", "4294967296"):  # the declaration bounds every seed to numpy's range
        with pytest.raises(BadInput, match="--seeds"):
            GenerateConfig(network="n", seeds=bad, out=Path("o"))


def test_trunc_zero_gives_the_average_image_for_every_seed(G):
    imgs = synthesize(G, map_seeds(G, [0, 1, 7, 99], trunc=0.0), "const")
    avg = synthesize(G, G.mapping.w_avg.detach().reshape(1, 1, -1).repeat(1, G.num_ws, 1), "const")
    assert all(torch.allclose(img, avg[0], atol=1e-4) for img in imgs)
    assert not torch.allclose(synthesize(G, map_seeds(G, [0, 1], 1.0), "const")[0], avg[0])


def test_mixing_all_styles_gives_column_and_none_gives_row(G):
    all_layers = list(range(G.num_ws))
    singles, mixed = style_mix(G, [3, 4], [5], all_layers)
    assert torch.allclose(mixed[(3, 5)], singles[5], atol=1e-4) and torch.allclose(mixed[(4, 5)], singles[5], atol=1e-4)
    singles, mixed = style_mix(G, [3], [5], [])
    assert torch.allclose(mixed[(3, 5)], singles[3], atol=1e-4)
    singles, mixed = style_mix(G, [3], [5], [0, 1, 2])
    assert not torch.allclose(mixed[(3, 5)], singles[3]) and not torch.allclose(mixed[(3, 5)], singles[5])
    with pytest.raises(BadInput, match="out of range"):
        style_mix(G, [3], [5], [G.num_ws])


def test_interpolation_endpoints_and_slerp(G, tmp_path):
    a, b = torch.randn(8), torch.randn(8)
    assert torch.allclose(slerp(a, b, 0.0), a, atol=1e-6) and torch.allclose(slerp(a, b, 1.0), b, atol=1e-5)
    mid = slerp(a, b, 0.5)
    assert abs(mid.norm() - (a.norm() + b.norm()) / 2) < 0.2 * a.norm()  # stays near the sphere, unlike lerp
    for space in ("z", "w"):
        ws = interpolation_ws(G, MixConfig(network="-", out=tmp_path, interpolate=(1, 2), space=space, frames=5))
        assert ws.shape == (5, G.num_ws, G.w_dim)
        assert torch.allclose(ws[0], map_seeds(G, [1])[0], atol=1e-5) and torch.allclose(ws[-1], map_seeds(G, [2])[0], atol=1e-4)
    save_latents(tmp_path / "a.npz", map_seeds(G, [1]))
    save_latents(tmp_path / "b.npz", map_seeds(G, [2])[:, 0])  # [1, w_dim] broadcast form
    ws = interpolation_ws(G, MixConfig(network="-", out=tmp_path, latents=(tmp_path / "a.npz", tmp_path / "b.npz"), space="w", frames=3))
    assert torch.allclose(ws[1], (map_seeds(G, [1])[0] + map_seeds(G, [2])[0, 0]) / 2, atol=1e-5)
    with pytest.raises(BadInput, match="space z"):  # the declaration refuses it: latent files hold w
        MixConfig(network="-", out=tmp_path, latents=(tmp_path / "a.npz", tmp_path / "b.npz"), space="z")


def test_latent_file_format(tmp_path, G):
    w = map_seeds(G, [0, 1])
    save_latents(tmp_path / "w.npz", w, seeds=np.array([0, 1]))
    with np.load(tmp_path / "w.npz") as data:
        assert data["w"].shape == (2, G.num_ws, G.w_dim) and data["w"].dtype == np.float32
    assert torch.allclose(load_latents(tmp_path / "w.npz", G.num_ws, G.w_dim), w)
    with pytest.raises(BadInput, match="shape"):
        load_latents(tmp_path / "w.npz", G.num_ws + 2, G.w_dim)
    np.savez(tmp_path / "nok.npz", x=np.zeros(3))
    with pytest.raises(BadInput, match="no 'w'"):
        load_latents(tmp_path / "nok.npz", G.num_ws, G.w_dim)
    with pytest.raises(BadInput, match="does not exist"):
        load_latents(tmp_path / "missing.npz", G.num_ws, G.w_dim)


def _img(G, seeds=(0, 1)):
    return synthesize(G, map_seeds(G, list(seeds), 0.7), "const")


def _at(G, res):
    """The layer index of --swap-res `res` (StyleGAN2)."""
    return swap_index(G, res, by_layer=False)


def test_blend_swap_above_top_is_structure_and_at_4_is_other():
    structure, other = tiny_generator(32, seed=1), tiny_generator(32, seed=2)
    top, _ = blend_generators(structure, other, _at(structure, 64))
    assert torch.equal(_img(top), _img(structure))
    low, weights = blend_generators(structure, other, _at(structure, 4))
    assert set(weights.values()) == {1.0}
    # Every synthesis weight from `other`; mapping, w_avg and noise maps from `structure`.
    expected = tiny_generator(32, seed=2)
    sd = expected.state_dict()
    for k, v in structure.state_dict().items():
        if not k.startswith("synthesis.") or k.endswith("noise_const"):
            sd[k] = v
    expected.load_state_dict(sd)
    assert torch.equal(_img(low), _img(expected))
    mid, weights = blend_generators(structure, other, _at(structure, 16))
    assert weights["b8.conv1"] == 0.0 and weights["b16.conv0"] == 1.0 and weights["b32.torgb"] == 1.0
    assert torch.equal(mid.synthesis.b8.conv1.weight, structure.synthesis.b8.conv1.weight)
    assert torch.equal(mid.synthesis.b16.conv0.weight, other.synthesis.b16.conv0.weight)


def test_smooth_blend_weights_are_monotone_and_centred():
    order = [2 * int(math.log2(r)) - 4 + lvl for r in (4, 8, 16, 32, 64, 128) for lvl in (0, 1)]  # StyleGAN2 levels
    swap = _at(tiny_generator(16), 32)
    assert swap == 6
    for width in (0.5, 1.0, 3.0):
        ys = [blend_weight(i, swap, width) for i in order]
        assert all(a < b for a, b in zip(ys, ys[1:], strict=False))
        assert ys[0] < 0.5 < ys[-1]
        assert abs(blend_weight(5, swap, width) + blend_weight(6, swap, width) - 1) < 1e-9  # symmetric at the swap
    assert [blend_weight(i, swap, None) for i in order] == [0.0] * 6 + [1.0] * 6


def test_stylegan3_blend_by_layer_index():
    """StyleGAN3 layers are swapped by index (0 = Fourier input, i+1 = L{i}); --swap-res is refused with the reason."""
    structure, other = tiny_stylegan3(16, seed=1), tiny_stylegan3(16, seed=2)
    top, _ = blend_generators(structure, other, structure.num_ws)
    assert torch.equal(_img(top), _img(structure))
    mid, weights = blend_generators(structure, other, 3)
    names = structure.synthesis.layer_names
    assert weights["input"] == 0.0 and weights[names[1]] == 0.0 and weights[names[2]] == 1.0 and weights[names[-1]] == 1.0
    assert torch.equal(mid.synthesis.get_submodule(names[1]).weight, structure.synthesis.get_submodule(names[1]).weight)
    assert torch.equal(mid.synthesis.get_submodule(names[2]).weight, other.synthesis.get_submodule(names[2]).weight)
    assert torch.equal(mid.mapping.fc0.weight, structure.mapping.fc0.weight)
    assert not torch.equal(_img(mid), _img(structure)) and not torch.equal(_img(mid), _img(other))
    with pytest.raises(BadInput, match="--swap-layer"):
        swap_index(structure, 8, by_layer=False)


def test_smooth_blend_interpolates_parameters():
    a, b = tiny_generator(16, seed=1), tiny_generator(16, seed=2)
    out, weights = blend_generators(a, b, _at(a, 8), blend_width=1.0)
    y = weights["b8.conv1"]
    assert 0 < y < 1
    assert torch.allclose(out.synthesis.b8.conv1.weight, a.synthesis.b8.conv1.weight.lerp(b.synthesis.b8.conv1.weight, y))


def test_incompatible_networks_name_the_layers():
    with pytest.raises(BadInput, match=r"synthesis\.b32") as err:
        check_compatible(tiny_generator(16), tiny_generator(32))
    assert "only in finetuned" in str(err.value)
    with pytest.raises(BadInput, match="different shapes"):
        check_compatible(tiny_generator(16, channel_max=32), tiny_generator(16, channel_max=64))


def test_interpolating_inverted_latents_uses_their_noise_maps(tmp_path):
    """Latent files from invert carry noise.* maps: the end frames must reproduce those images exactly."""
    from PIL import Image

    from stylekit.edit.invert import apply_noise, noise_buffers
    from stylekit.edit.mix import run_interpolate
    from stylekit.nets.stylegan2.load import save_network

    G = tiny_generator(32, seed=0)
    net = tmp_path / "g.safetensors"
    save_network(net, G=G)
    ws = map_seeds(G, [1, 2], 1.0)
    gen = torch.Generator().manual_seed(0)
    noises = [{k: torch.randn(v.shape, generator=gen) for k, v in noise_buffers(G).items()} for _ in range(2)]
    for name, w, noise in zip("ab", ws, noises, strict=True):
        save_latents(tmp_path / f"{name}.npz", w[None], **{f"noise.{k}": v for k, v in noise.items()})
    run_interpolate(MixConfig(network=str(net), out=tmp_path / "out", latents=(str(tmp_path / "a.npz"), str(tmp_path / "b.npz")),
                              space="w", frames=3, device="cpu"))
    for index, w, noise in ((0, ws[0], noises[0]), (2, ws[1], noises[1])):
        apply_noise(G, noise)
        expected = np.asarray(to_pil(synthesize(G, w[None], "const", [0]))[0])
        frame = np.asarray(Image.open(tmp_path / "out" / "frames" / f"frame{index:04d}.png"))
        assert np.array_equal(frame, expected)
    apply_noise(G, {k: torch.zeros_like(v) for k, v in noises[0].items()})  # other noise -> another image
    frame0 = np.asarray(Image.open(tmp_path / "out" / "frames" / "frame0000.png"))
    assert not np.array_equal(np.asarray(to_pil(synthesize(G, ws[0][None], "const", [0]))[0]), frame0)
