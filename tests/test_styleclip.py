"""stylekit styleclip: CLIP loss falls, L2 keeps the latent near the start, --steps 0 is the identity, bad inputs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from clip_tiny import make_tiny_clip_dir
from PIL import Image
from test_invert import mixed_target, network_file, save_png, validity_generator
from typer.testing import CliRunner

from stylekit.edit import styleclip as sc

STYLEKIT = Path(sys.executable).parent / "stylekit"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return make_tiny_clip_dir(tmp_path_factory.mktemp("clip") / "tiny-clip")


@pytest.fixture(scope="module")
def setup(clip_dir):
    from stylekit.edit.generate import map_seeds
    from stylekit.nets.clip import encode_text, load_clip

    G = validity_generator()
    bundle = load_clip(str(clip_dir), None, "cpu")
    bundle.model.requires_grad_(False)
    with torch.no_grad():
        text = encode_text(bundle, ["a red square", "a blue circle"])
    return G, bundle, text, map_seeds(G, [3], trunc=0.7)


def _run(args):
    from stylekit.cli.app import app

    return CliRunner().invoke(app, args)


def test_pool_factors_follow_styleclip():
    assert sc.pool_factors(1024, 224) == (7, 32)
    assert sc.pool_factors(256, 224) == (7, 8)
    assert sc.pool_factors(32, 32) == (1, 1)
    assert sc.pool_factors(64, 224) == (7, 2)


def test_clip_loss_falls_and_l2_holds_the_latent(setup):
    G, bundle, text, w0 = setup
    scale = sc.logit_scale(bundle)
    with torch.no_grad():
        before, _ = sc.clip_terms(bundle, G.synthesis(w0.expand(2, -1, -1), noise_mode="const"), text, scale)
    free, curve = sc.optimise(G, bundle, w0, text, steps=25, l2_lambda=0.0, log_every=24)
    with torch.no_grad():
        after, _ = sc.clip_terms(bundle, G.synthesis(free, noise_mode="const"), text, scale)
    assert (after < before - 1e-3).all()  # for both prompts
    assert curve[-1]["similarity"][0] > curve[0]["similarity"][0]
    held, _ = sc.optimise(G, bundle, w0, text, steps=25, l2_lambda=50.0, log_every=24)
    l2_free = (free - w0).square().sum(dim=(1, 2))
    l2_held = (held - w0).square().sum(dim=(1, 2))
    assert (l2_held < 0.1 * l2_free).all()


@pytest.mark.numerics
def test_batched_prompts_equal_separate_runs(setup):
    """Batched and single synthesis + CLIP sum in other orders (K terms, K * eps32 relative per
    gradient); Adam (lr 0.1, ramped, 4 steps) bounds the drift of w (tests/numerics.py)."""
    from numerics import longest_reduction, optimised

    from stylekit.edit.schedule import ramped_lr

    G, bundle, text, w0 = setup
    both, _ = sc.optimise(G, bundle, w0, text, steps=4)
    one, _ = sc.optimise(G, bundle, w0, text[1:], steps=4)
    bound = optimised([ramped_lr(step / 4, 0.1) for step in range(4)], longest_reduction(G, bundle.model))
    assert float((both[1:] - one).abs().max()) <= bound
    assert float((both[0] - one[0]).abs().max()) > 10 * bound  # the other prompt's latent is elsewhere


def test_cli_prompts_outputs_and_steps_zero_identity(tmp_path, clip_dir):
    G = validity_generator()
    net = network_file(tmp_path, G)
    out = tmp_path / "edit"
    res = _run(["styleclip", "--network", str(net), "--latent-seed", "3", "--prompt", "a red square", "--prompt", "a blue circle",
                "--clip-model", str(clip_dir), "--steps", "6", "--log-every", "2", "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert [Path(p["folder"]).name for p in doc["prompts"]] == ["00-a-red-square", "01-a-blue-circle"]
    for p in doc["prompts"]:
        assert Path(p["edited"]).is_file() and Path(p["latent"]).is_file() and p["l2"] > 0
    assert Image.open(out / "grid.png").size[0] > 3 * 32
    assert (out / "curves.png").is_file()
    summary = json.loads((out / "summary.json").read_text())
    assert [c["step"] for c in summary["curve"]] == [0, 2, 4, 5]

    # --steps 0 from an edited latent file returns exactly that latent's image
    latent = Path(doc["prompts"][0]["latent"])
    res = _run(["styleclip", "--network", str(net), "--latent", str(latent), "--prompt", "anything",
                "--clip-model", str(clip_dir), "--steps", "0", "--out", str(tmp_path / "zero"), "--json"])
    assert res.exit_code == 0, res.output
    zero = json.loads(res.stdout)["prompts"][0]
    assert zero["l2"] == 0.0
    a = np.asarray(Image.open(zero["edited"]))
    assert np.array_equal(a, np.asarray(Image.open(doc["prompts"][0]["edited"])))
    assert np.array_equal(a, np.asarray(Image.open(tmp_path / "zero" / "original.png")))


def test_starts_from_an_inverted_latent_with_its_noise(tmp_path, clip_dir):
    G = validity_generator(noise_strength=0.2)
    net = network_file(tmp_path, G)
    target = save_png(mixed_target(G)[1], tmp_path / "t.png")
    res = _run(["invert", str(target), "--network", str(net), "--out", str(tmp_path / "inv"), "--loss", "mse",
                "--steps", "3", "--w-avg-samples", "100"])
    assert res.exit_code == 0, res.output
    res = _run(["styleclip", "--network", str(net), "--latent", str(tmp_path / "inv" / "latent.npz"), "--prompt", "x",
                "--clip-model", str(clip_dir), "--steps", "0", "--out", str(tmp_path / "e"), "--json"])
    assert res.exit_code == 0, res.output
    edited = np.asarray(Image.open(json.loads(res.stdout)["prompts"][0]["edited"]))
    assert np.array_equal(edited, np.asarray(Image.open(tmp_path / "inv" / "projected.png")))


def test_bad_inputs(tmp_path, clip_dir):
    net = network_file(tmp_path)
    base = ["styleclip", "--network", str(net), "--clip-model", str(clip_dir), "--steps", "1"]
    res = _run([*base, "--latent-seed", "1", "--prompt", "  ", "--out", str(tmp_path / "a")])
    assert res.exit_code == 2 and "empty" in res.output
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, w=np.zeros((1, 3, 7), np.float32))
    res = _run([*base, "--latent", str(wrong), "--prompt", "x", "--out", str(tmp_path / "b")])
    assert res.exit_code == 2 and "[1, 3, 7]" in res.output and "[N, 8, 32]" in res.output
    picture, array = tmp_path / "face.png", tmp_path / "w.npy"
    Image.new("RGB", (8, 8)).save(picture)
    np.save(array, np.zeros((1, 32), np.float32))
    for path, kind in ((picture, "a PNG image"), (array, "a single .npy array")):
        res = _run([*base, "--latent", str(path), "--prompt", "x", "--out", str(tmp_path / "b")])
        assert res.exit_code == 2 and f"is {kind}: not a latent file" in res.output and "invert" in res.output
        assert "pickle" not in res.output.lower()
    res = _run([*base, "--latent", str(wrong), "--latent-seed", "1", "--prompt", "x", "--out", str(tmp_path / "c")])
    assert res.exit_code == 2
    res = _run([*base, "--prompt", "x", "--out", str(tmp_path / "d")])
    assert res.exit_code == 2 and "--latent" in res.output
    res = _run([*base, "--seed", "3", "--prompt", "x", "--out", str(tmp_path / "d")])  # the start is --latent-seed
    assert res.exit_code == 2 and "--seed" in res.output
    for name in "abcd":  # every refusal came before --out was created
        assert not (tmp_path / name).exists()
    # registry CLIP weights not cached, offline -> exit 3 with the download command
    res = _run(["styleclip", "--network", str(net), "--latent-seed", "1", "--prompt", "x", "--clip-model", "ViT-B-32",
                "--out", str(tmp_path / "e")])
    assert res.exit_code == 3 and "stylekit download clip-vit-b-32" in res.output


def test_real_subprocess(tmp_path, clip_dir):
    net = network_file(tmp_path)
    env = {**os.environ, "STYLEKIT_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([str(STYLEKIT), "styleclip", "--network", str(net), "--latent-seed", "5", "--prompt", "a cat",
                           "--clip-model", str(clip_dir), "--steps", "2", "--out", str(tmp_path / "o"), "--json"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["prompts"][0]["prompt"] == "a cat"


def test_rerun_rule_and_random_network(tmp_path, clip_dir):
    """Same options into the same --out: up to date; other options: exit 2 with --fresh; random:RES labelled."""
    out = tmp_path / "edit"
    args = ["styleclip", "--network", "random:16", "--latent-seed", "2", "--prompt", "a cat", "--clip-model", str(clip_dir),
            "--steps", "2", "--out", str(out), "--json"]
    res = _run(args)
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["standins"] and "stand-in" in res.stderr and doc["up_to_date"] is False
    mtime = (out / "grid.png").stat().st_mtime_ns
    again = _run(args)
    assert again.exit_code == 0 and json.loads(again.stdout)["up_to_date"] is True
    assert json.loads(again.stdout)["prompts"] == doc["prompts"] and (out / "grid.png").stat().st_mtime_ns == mtime
    other = _run([*args, "--prompt", "a dog"])
    assert other.exit_code == 2 and "--prompts" in other.output and "--fresh" in other.output
    assert not (out / "01-a-dog").exists()
    fresh = _run([*args, "--prompt", "a dog", "--fresh"])
    assert fresh.exit_code == 0 and (out / "01-a-dog" / "edited.png").is_file()
