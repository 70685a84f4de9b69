"""invert --amp: the generator and the perceptual network autocast to device.amp_dtype (bf16 on a CPU
with native bf16); latents, Adam and the losses stay fp32. Run on the CPU through the real code path:
`cpu_has_native_bf16` is forced True so the bf16 path runs on any CPU (emulated where not native)."""

from __future__ import annotations

import json

import pytest
import torch
from test_invert import mixed_target, network_file, save_png, validity_generator
from typer.testing import CliRunner

from stylekit import device as dev
from stylekit.configs.edit import DEFAULT_MSE_WEIGHT
from stylekit.edit import invert as inv

pytestmark = pytest.mark.usefixtures("one_thread")
STEPS = 12


@pytest.fixture
def native_bf16(monkeypatch):
    monkeypatch.setattr(dev, "cpu_has_native_bf16", lambda: True)
    assert dev.amp_dtype("cpu") == torch.bfloat16


def _project(G, target, loss: str, amp: bool) -> inv.Projection:
    cpu = torch.device("cpu")
    w_avg, w_std = inv.w_stats(G, 200)
    obj = inv.Objective(loss, target * 2 - 1, DEFAULT_MSE_WEIGHT[loss], "random", cpu, amp=amp)
    return inv.project(G, target, obj, space="w+", steps=STEPS, initial_noise=0.0, noise_reg=0.0,
                       w_avg=w_avg, w_std=w_std, log_every=1, amp=amp)


@pytest.mark.numerics
@pytest.mark.parametrize("loss", ["lpips", "vgg"])
def test_amp_runs_bf16_lowers_the_loss_and_stays_near_fp32(native_bf16, loss):
    G = validity_generator()
    _, target = mixed_target(G)
    seen: list[torch.dtype] = []
    G.synthesis.b8.conv1.register_forward_hook(lambda m, a, out: seen.append(out.dtype))
    amp = _project(G, target, loss, amp=True)
    # every step's synthesis ran in bf16 (project deep-copies G: the hook comes along); the result is rendered in fp32
    assert seen == [torch.bfloat16] * STEPS + [torch.float32]
    seen.clear()
    fp32 = _project(G, target, loss, amp=False)
    assert seen == [torch.float32] * (STEPS + 1)
    assert amp.ws.dtype == torch.float32 and amp.image.dtype == torch.float32
    first, last = amp.curve[0]["loss"], amp.curve[-1]["loss"]
    assert last < 0.7 * first, (first, last)
    # the bf16 run follows the fp32 one: final loss within 15% of its value, PSNR within 1 dB, latents close
    assert amp.final_loss == pytest.approx(fp32.final_loss, rel=0.15)
    psnr_amp = inv.psnr(inv.quantize(amp.image)[0], target[0])
    psnr_fp32 = inv.psnr(inv.quantize(fp32.image)[0], target[0])
    assert abs(psnr_amp - psnr_fp32) < 1.0, (psnr_amp, psnr_fp32)
    image_diff = float((amp.image - fp32.image).abs().mean())  # images in [-1, 1]
    print(f"{loss}: final loss amp {amp.final_loss:.5f} fp32 {fp32.final_loss:.5f}; PSNR {psnr_amp:.2f} / {psnr_fp32:.2f} dB;"
          f" mean |image diff| {image_diff:.4f}")
    assert image_diff < 0.06


def test_objective_amp_scores_an_exact_match_zero_and_compares_in_fp32(native_bf16):
    target = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    obj = inv.Objective("lpips", target, 0.0, "random", torch.device("cpu"), amp=True)
    assert obj.target_feats.dtype == torch.float32
    total, parts = obj.per_target(target)
    assert total.dtype == torch.float32 and float(total) == 0.0
    other, _ = obj.per_target(target.flip(-1))
    assert float(other) > 0


def test_grad_scaler_only_for_fp16():
    assert not dev.grad_scaler("cpu", True).is_enabled()  # bf16 (or fp32): no loss scaling


def _invoke(args):
    from stylekit.cli.app import app

    return CliRunner().invoke(app, args)


def test_cli_amp_help_and_run(native_bf16, tmp_path):
    from stylekit.vocabulary import CONCEPTS

    res = _invoke(["invert", "--help"])
    assert res.exit_code == 0 and "--amp" in res.output and "--no-amp" in res.output
    words = " ".join(res.output.split())
    assert " ".join(CONCEPTS["amp"].help.split()[:6]) in words  # the shared wording

    G = validity_generator()
    net = network_file(tmp_path, G)
    png = save_png(mixed_target(G)[1], tmp_path / "t.png")
    base = ["invert", str(png), "--network", str(net), "--loss", "lpips", "--vgg-weights", "random", "--steps", "4",
            "--w-avg-samples", "100", "--device", "cpu", "--json"]
    res = _invoke([*base, "--out", str(tmp_path / "amp"), "--amp"])
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "amp" / "metrics.json").read_text())
    assert doc["config"]["amp"] is True and doc["psnr"] > 0
    # amp is part of the recipe: the same run is skipped, an fp32 run into that folder is refused (no mixing)
    res = _invoke([*base, "--out", str(tmp_path / "amp"), "--amp"])
    assert res.exit_code == 0 and json.loads(res.stdout)["items"][0]["status"] == "skipped", res.output
    res = _invoke([*base, "--out", str(tmp_path / "amp")])
    assert res.exit_code == 2 and "--fresh" in res.output, res.output


def test_cli_amp_without_native_bf16_warns_and_runs_fp32(monkeypatch, tmp_path):
    monkeypatch.setattr(dev, "cpu_has_native_bf16", lambda: False)
    G = validity_generator()
    net = network_file(tmp_path, G)
    png = save_png(mixed_target(G)[1], tmp_path / "t.png")
    res = _invoke(["invert", str(png), "--network", str(net), "--loss", "mse", "--steps", "2", "--w-avg-samples", "50",
                   "--device", "cpu", "--out", str(tmp_path / "o"), "--amp"])
    assert res.exit_code == 0, res.output
    assert "no native low-precision type; running in fp32" in res.output
