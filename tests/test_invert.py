"""stylekit invert: schedule, recovery of a known latent (validity), outputs, skip-on-rerun, bad inputs."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from stylekit.configs.edit import DEFAULT_MSE_WEIGHT
from stylekit.edit import invert as inv
from stylekit.edit.schedule import ramped_lr, w_noise_scale

STYLEKIT = Path(sys.executable).parent / "stylekit"


pytestmark = pytest.mark.usefixtures("one_thread")


def validity_generator(resolution: int = 32, noise_strength: float = 0.0):
    """Tiny random G whose images stay inside [-1, 1] (toRGB scaled by 0.3), so a PNG of its output is
    reachable exactly; noise strength 0 makes the image a function of the latent alone."""
    from stylekit.nets.stylegan2.tiny import randomize_, tiny_generator

    G = randomize_(tiny_generator(resolution, seed=0), 0, noise_strength=noise_strength)
    with torch.no_grad():
        for name, p in G.named_parameters():
            if ".torgb." in name and "affine" not in name:
                p.mul_(0.3)
    return G.eval().requires_grad_(False)


def mixed_target(G, seeds=(7, 11), cut: int = 4):
    """A known W+ latent (seed A's w for layers < cut, seed B's after) and its image as a [0, 1] PNG tensor."""
    from stylekit.edit.generate import map_seeds

    ws = map_seeds(G, [seeds[0]]).clone()
    ws[:, cut:] = map_seeds(G, [seeds[1]])[:, cut:]
    with torch.no_grad():
        img = G.synthesis(ws, noise_mode="const")
    return ws, inv.quantize(img)


def network_file(tmp_path: Path, G=None) -> Path:
    from stylekit.nets.stylegan2.load import save_network

    return save_network(tmp_path / "tiny.safetensors", G=G if G is not None else validity_generator())


def save_png(t01: torch.Tensor, path: Path) -> Path:
    from stylekit.data.images import tensor_to_pil

    tensor_to_pil(t01[0] if t01.dim() == 4 else t01).save(path)
    return path


def test_schedule_matches_the_projector_formulas():
    assert ramped_lr(0.0, 0.1) == 0.0
    assert ramped_lr(0.05, 0.1) == pytest.approx(0.1)
    assert ramped_lr(0.5, 0.1) == pytest.approx(0.1)
    assert ramped_lr(0.875, 0.1) == pytest.approx(0.05)  # halfway down the cosine
    assert ramped_lr(0.999, 0.1) < 1e-5
    assert w_noise_scale(0.0, 2.0) == pytest.approx(0.1)
    assert w_noise_scale(0.375, 2.0) == pytest.approx(0.1 * 0.25)
    assert w_noise_scale(0.8, 2.0) == 0.0


def test_noise_regularisation_penalises_correlated_noise():
    g = torch.Generator().manual_seed(0)
    white = {"a": torch.randn(64, 64, generator=g)}
    smooth = torch.nn.functional.avg_pool2d(torch.randn(1, 1, 68, 68, generator=g), 5, 1)[0, 0]
    smooth = {"a": (smooth - smooth.mean()) / smooth.std()}  # unit variance, as the projector keeps it
    assert inv.noise_regularization(smooth) > 100 * inv.noise_regularization(white)


def test_preprocessing_centre_crops_then_resizes():
    img = Image.new("RGB", (60, 30), (255, 0, 0))
    img.paste((0, 0, 255), (0, 0, 15, 30))  # left quarter blue: cropped away
    t = inv.preprocess_target(img, 16)
    assert t.shape == (1, 3, 16, 16)
    assert t[0, 0].min() > 0.99 and t[0, 2].max() < 0.01


def test_validity_wplus_recovers_a_known_latent_and_w_reaches_less():
    """Target = G(known W+ latent mixing two seeds). Pixel MSE, no w noise: W+ >= 30 dB, W clearly lower."""
    G = validity_generator()
    _, target = mixed_target(G)
    w_avg, w_std = inv.w_stats(G, 2000)
    results = {}
    for space in ("w+", "w"):
        obj = inv.Objective("mse", target * 2 - 1, 1.0, None, torch.device("cpu"))
        proj = inv.project(G, target, obj, space=space, steps=100, initial_noise=0.0, noise_reg=0.0,
                           w_avg=w_avg, w_std=w_std, log_every=10)
        final = inv.psnr(inv.quantize(proj.image)[0], target[0])
        results[space] = (proj.curve[0]["psnr"], final)
    assert results["w+"][1] >= 30.0
    assert results["w"][1] < results["w+"][1] - 3
    for first, final in results.values():
        assert final > first + 8  # both improve


@pytest.mark.parametrize("loss", ["lpips", "vgg"])
def test_perceptual_losses_fall_with_random_weights(loss):
    G = validity_generator()
    _, target = mixed_target(G)
    w_avg, w_std = inv.w_stats(G, 1000)
    obj = inv.Objective(loss, target * 2 - 1, DEFAULT_MSE_WEIGHT[loss], "random", torch.device("cpu"))
    proj = inv.project(G, target, obj, space="w+", steps=30, noise_reg=0.0, initial_noise=0.0, w_avg=w_avg, w_std=w_std,
                       log_every=29)
    assert proj.curve[-1]["dist"] < 0.5 * proj.curve[0]["dist"]
    assert proj.curve[-1]["psnr"] > proj.curve[0]["psnr"]


def _run(args):
    from stylekit.cli.app import app

    return CliRunner().invoke(app, args)


def test_cli_folder_outputs_skip_on_rerun_and_latent_reload(tmp_path):
    G = validity_generator()
    net = network_file(tmp_path, G)
    _, target = mixed_target(G)
    folder = tmp_path / "targets"
    (folder / "sub").mkdir(parents=True)
    save_png(target, folder / "a.png")
    save_png(target.flip(-1), folder / "sub" / "b.png")
    (folder / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "inv"
    args = ["invert", str(folder), "--network", str(net), "--out", str(out), "--loss", "mse", "--steps", "6",
            "--log-every", "2", "--w-avg-samples", "500", "--save-video", "--space", "w+", "--json"]
    res = _run(args)
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    status = {Path(i["target"]).name: i["status"] for i in doc["items"]}
    assert status == {"a.png": "done", "broken.png": "failed", "b.png": "done"}
    a = out / "a"
    for name in ("latent.npz", "projected.png", "target.png", "compare.png", "progress.gif", "curve.png", "metrics.json"):
        assert (a / name).is_file(), name
    assert (out / "sub__b" / "metrics.json").is_file()
    metrics = json.loads((a / "metrics.json").read_text())
    assert [c["step"] for c in metrics["curve"]] == [0, 2, 4, 5]
    assert math.isfinite(metrics["final_loss"]) and metrics["psnr"] > 5 and metrics["seconds"] > 0
    assert "centre crop" in metrics["preprocessing"]
    assert Image.open(a / "compare.png").size == (64, 32)

    # latent.npz: the shared format (w [1, num_ws, w_dim]) + noise maps that reproduce projected.png exactly
    from stylekit.edit.latents import load_latents
    from stylekit.nets.stylegan2.load import load_network

    G2 = load_network(net).generator
    ws = load_latents(a / "latent.npz", G2.num_ws, G2.w_dim)
    assert ws.shape == (1, G2.num_ws, G2.w_dim)
    inv.apply_noise(G2, inv.load_noise(a / "latent.npz"))
    with torch.no_grad():
        img = inv.quantize(G2.synthesis(ws, noise_mode="const"))[0]
    from stylekit.data.images import load_tensor

    assert torch.equal((img * 255).round(), (load_tensor(a / "projected.png") * 255).round())

    # rerun: done targets are skipped, nothing rewritten
    mtime = (a / "metrics.json").stat().st_mtime_ns
    res = _run(args)
    assert res.exit_code == 0, res.output
    status = {Path(i["target"]).name: i["status"] for i in json.loads(res.stdout)["items"]}
    assert status["a.png"] == "skipped" and status["b.png"] == "skipped"
    assert (a / "metrics.json").stat().st_mtime_ns == mtime

    # rerun with other options: the finished folders are not silently kept; --fresh redoes them
    other = [x if x != "6" else "5" for x in args]  # --steps 5
    res = _run(other)
    assert res.exit_code == 2 and "--fresh" in res.output and (a / "metrics.json").stat().st_mtime_ns == mtime
    res = _run([*other, "--fresh"])
    assert res.exit_code == 0, res.output
    assert json.loads((a / "metrics.json").read_text())["steps"] == 5


def test_cli_bad_inputs(tmp_path, monkeypatch):
    net = network_file(tmp_path)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG broken")
    res = _run(["invert", str(bad), "--network", str(net), "--out", str(tmp_path / "o1"), "--loss", "mse"])
    assert res.exit_code == 2 and "bad.png" in res.output
    res = _run(["invert", str(tmp_path / "nope.png"), "--network", str(net), "--out", str(tmp_path / "o2")])
    assert res.exit_code == 2 and "does not exist" in res.output
    good = save_png(torch.rand(1, 3, 40, 40), tmp_path / "good.png")
    res = _run(["invert", str(good), "--network", str(net), "--out", str(tmp_path / "o3"), "--space", "z"])
    assert res.exit_code == 2 and "--space" in res.output
    # lpips weights absent offline: exit 3 with the command that fetches them
    from stylekit.nets import lpips as lp

    monkeypatch.setattr(lp, "packaged_lin_path", lambda: None)
    res = _run(["invert", str(good), "--network", str(net), "--out", str(tmp_path / "o4"), "--steps", "1",
                "--w-avg-samples", "10"])
    assert res.exit_code == 3 and lp.LIN_FETCH_COMMAND in res.output
    res = _run(["invert", str(good), "--network", str(net), "--out", str(tmp_path / "o5"), "--steps", "1", "--loss", "vgg",
                "--w-avg-samples", "10"])
    assert res.exit_code == 3 and "stylekit download vgg16" in res.output


def test_real_subprocess(tmp_path):
    G = validity_generator()
    net = network_file(tmp_path, G)
    target = save_png(mixed_target(G)[1], tmp_path / "t.png")
    env = {**os.environ, "STYLEKIT_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([str(STYLEKIT), "invert", str(target), "--network", str(net), "--out", str(tmp_path / "o"),
                           "--loss", "lpips", "--vgg-weights", "random", "--steps", "3", "--w-avg-samples", "100",
                           "--json", "--device", "cpu"], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["items"][0]["status"] == "done"
    with np.load(tmp_path / "o" / "latent.npz") as data:
        assert data["w"].shape == (1, G.num_ws, G.w_dim)
        assert any(k.startswith("noise.") for k in data.files)
        assert str(data["space"]) == "w"


def test_refused_runs_leave_no_out_and_stand_ins_are_labelled(tmp_path):
    good = save_png(torch.rand(1, 3, 40, 40), tmp_path / "good.png")
    for extra in (["--steps", "-1"], ["--space", "z"], ["--network", "random:15"], ["--batch", "0"], ["--lr", "0"]):
        res = _run(["invert", str(good), "--network", "random:16", "--out", str(tmp_path / "never"), *extra])
        assert res.exit_code == 2, (extra, res.output)
        assert not (tmp_path / "never").exists()
    res = _run(["invert", str(good), "--network", "random:16", "--vgg-weights", "random", "--steps", "2",
                "--w-avg-samples", "50", "--out", str(tmp_path / "inv"), "--json"])
    assert res.exit_code == 0, res.output
    labels = json.loads(res.stdout)["standins"]
    assert len(labels) == 2 and "random:16" in labels[0] and "--vgg-weights random" in labels[1]


def test_invert_into_another_commands_folder_is_refused(tmp_path):
    gen = tmp_path / "gen"
    assert _run(["generate", "--network", "random:16", "--seeds", "1", "--out", str(gen)]).exit_code == 0
    target = tmp_path / "t.png"
    target.write_bytes((gen / "seed0001.png").read_bytes())
    args = ["invert", str(target), "--network", "random:16", "--loss", "mse", "--steps", "1",
            "--w-avg-samples", "20", "--out", str(gen)]
    res = _run(args)
    assert res.exit_code == 2 and "--fresh" in res.output and not (gen / "latent.npz").exists()
    assert _run([*args, "--fresh"]).exit_code == 0 and (gen / "latent.npz").is_file()
