"""StyleGAN3 networks through the commands that take a generator: each works, or refuses with the reason.

(The pairwise covers in tests/cover/ also run generate, mix, invert, styleclip, directions, blend-layers and convert
on random:stylegan3:16; this file checks what those results mean.)"""

import json

import numpy as np
import pytest
import torch
from clip_tiny import make_tiny_clip_dir
from PIL import Image
from test_metric_registry import make_images, tiny_extractors
from typer.testing import CliRunner

from stylekit.cli.app import app
from stylekit.edit import invert as inv
from stylekit.edit.generate import map_seeds, synthesize
from stylekit.edit.mix import style_mix
from stylekit.metrics.ppl import PPLConfig, perceptual_path_length
from stylekit.metrics.score import ScoreConfig, score_sets
from stylekit.nets.stylegan2.load import save_network
from stylekit.nets.stylegan3.tiny import tiny_generator

pytestmark = pytest.mark.usefixtures("one_thread")
NET = "random:stylegan3:32"


def _cli(args: list[str]):
    return CliRunner().invoke(app, args)


def _png(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).astype(int)


def test_generate_translate_moves_the_image_by_whole_pixels(tmp_path):
    """--translate 0.25,0 on a 32 px network moves the picture 8 px right (T config: exactly, up to float rounding,
    while the shift stays inside the 10 px margin the layers compute around the image); --rotate changes it."""
    runs = {"still": [], "moved": ["--translate", "0.25,0"], "turned": ["--rotate", "90"]}
    images = {}
    for name, extra in runs.items():
        r = _cli(["generate", "--network", NET, "--seeds", "5", "--out", str(tmp_path / name), "--no-grid", *extra, "--json"])
        assert r.exit_code == 0, r.output
        images[name] = _png(tmp_path / name / "seed0005.png")
    still, moved = images["still"], images["moved"]
    assert np.abs(moved[:, 8:] - still[:, :-8]).max() <= 1  # 8-bit rounding of values equal to ~1e-6
    assert np.abs(moved - still).mean() > 5
    assert np.abs(images["turned"] - still).mean() > 5


def test_generate_translate_on_stylegan2_is_refused_before_any_output(tmp_path):
    r = _cli(["generate", "--network", "random:32", "--seeds", "1", "--rotate", "5", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "--translate/--rotate" in r.output and "StyleGAN2" in r.output
    assert not (tmp_path / "o").exists()


def test_finetune_refuses_a_stylegan3_source_with_the_reason(tmp_path):
    data = tmp_path / "data"
    make_images(data, "blobs", 4, size=32)
    r = _cli(["finetune-stylegan", str(data), "--network", NET, "--kimg", "1", "--batch", "2", "--out", str(tmp_path / "run")])
    assert r.exit_code == 2 and "StyleGAN3" in r.output and "trains StyleGAN2" in r.output
    assert not (tmp_path / "run").exists()


def test_style_mixing_by_layer_index():
    """Mixing layer 0 swaps only the Fourier input's placement (its rotation/translation from w)."""
    G = tiny_generator(32, seed=3)
    ws = map_seeds(G, [1, 2])  # as style_mix maps them (one batch: the same rounding)
    singles, mixed = style_mix(G, [1], [2], [0], noise_mode="const")
    expected_ws = ws[:1].clone()
    expected_ws[:, 0] = ws[1, 0]
    assert torch.equal(mixed[(1, 2)], synthesize(G, expected_ws, "const")[0])
    assert not torch.equal(mixed[(1, 2)], singles[1]) and not torch.equal(mixed[(1, 2)], singles[2])


def test_invert_w_plus_recovers_a_stylegan3_image():
    """Target = G(a known w); pixel MSE, no noise maps to optimise (StyleGAN3 has none): PSNR rises by > 8 dB."""
    G = tiny_generator(32, seed=1).requires_grad_(False)
    with torch.no_grad():
        target = inv.quantize(G.synthesis(map_seeds(G, [7]), noise_mode="const"))
    assert inv.noise_buffers(G) == {}
    w_avg, w_std = inv.w_stats(G, 2000)
    obj = inv.Objective("mse", target * 2 - 1, 1.0, None, torch.device("cpu"))
    proj = inv.project(G, target, obj, space="w+", steps=60, initial_noise=0.0, noise_reg=0.0, w_avg=w_avg, w_std=w_std,
                       log_every=10)
    first, final = proj.curve[0]["psnr"], inv.psnr(inv.quantize(proj.image)[0], target[0])
    assert final > first + 8


def test_ppl_and_fid_of_a_stylegan3_generator(tmp_path):
    G = tiny_generator(32, seed=0)
    flat = lambda img: img.flatten(1)  # noqa: E731 - an L2 "perceptual" distance
    one = perceptual_path_length(G, flat, PPLConfig(num_samples=8, batch=4, space="w", sampling="end", epsilon=1e-2))
    two = perceptual_path_length(G, flat, PPLConfig(num_samples=8, batch=4, space="w", sampling="end", epsilon=1e-2))
    assert one.value == two.value > 0 and one.kept > 0
    net = save_network(tmp_path / "g.safetensors", G_ema=G)
    ref = tmp_path / "ref"
    make_images(ref, "blobs", 12, size=32, seed=7)
    report = score_sets(ScoreConfig(network=str(net), a=str(ref), metrics=["fid"], num_gen=12, batch=6, device="cpu",
                                    extractors=tiny_extractors()))
    assert report.metrics["fid"]["value"] > 0 and report.metrics["fid"]["num_gen"] == 12


def test_styleclip_edits_a_stylegan3_latent(tmp_path):
    clip = make_tiny_clip_dir(tmp_path / "clip")
    r = _cli(["styleclip", "--network", NET, "--latent-seed", "3", "--prompt", "a red square", "--clip-model", str(clip),
              "--steps", "4", "--out", str(tmp_path / "edit"), "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    edited = _png(doc["prompts"][0]["edited"])
    assert np.abs(edited - _png(tmp_path / "edit" / "original.png")).mean() > 0


def test_sefa_on_stylegan3_reads_the_layer_affines_and_refuses_the_input_alone(tmp_path):
    r = _cli(["directions", "--network", NET, "--layers", "0", "--out", str(tmp_path / "d0")])
    assert r.exit_code == 2 and "no style affine" in r.output
    r = _cli(["directions", "--network", NET, "--layers", "1-3", "--num", "3", "--out", str(tmp_path / "d"), "--json"])
    assert r.exit_code == 0, r.output
    values = [d["eigenvalue"] for d in json.loads(r.stdout)["directions"]]
    assert len(values) == 3 and values == sorted(values, reverse=True) and values[-1] > 0


def test_convert_stylegan3_to_rosinality_is_refused_and_nvlabs_state_round_trips(tmp_path):
    r = _cli(["convert", NET, "--to", "rosinality", "--out", str(tmp_path / "r.pt")])
    assert r.exit_code == 2 and "StyleGAN2 generators only" in r.output and not (tmp_path / "r.pt").exists()
    r = _cli(["convert", NET, "--to", "nvlabs-state", "--out", str(tmp_path / "g.pt"), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["max_abs_diff"] == 0
    kwargs = json.loads((tmp_path / "g.json").read_text())
    assert "synthesis_kwargs" not in kwargs and kwargs["num_layers"] == 6  # NVlabs stylegan3's flat Generator kwargs
