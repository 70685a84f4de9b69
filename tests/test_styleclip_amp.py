"""styleclip --amp: the synthesis and CLIP's image encoder autocast to device.amp_dtype (bf16 on a CPU
with native bf16; forced here so the bf16 path runs on any CPU); latent, Adam and the loss stay fp32."""

from __future__ import annotations

import json

import pytest
import torch
from clip_tiny import make_tiny_clip_dir
from test_invert import network_file, validity_generator
from typer.testing import CliRunner

from stylekit import device as dev
from stylekit.edit import styleclip as sc

pytestmark = pytest.mark.usefixtures("one_thread")
STEPS = 10


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return make_tiny_clip_dir(tmp_path_factory.mktemp("clip") / "tiny-clip")


@pytest.fixture
def native_bf16(monkeypatch):
    monkeypatch.setattr(dev, "cpu_has_native_bf16", lambda: True)
    assert dev.amp_dtype("cpu") == torch.bfloat16


@pytest.mark.numerics
def test_amp_runs_bf16_raises_similarity_and_stays_near_fp32(native_bf16, clip_dir):
    from stylekit.edit.generate import map_seeds
    from stylekit.nets.clip import encode_text, load_clip

    G = validity_generator()
    bundle = load_clip(str(clip_dir), None, "cpu")
    bundle.model.requires_grad_(False)
    with torch.no_grad():
        text = encode_text(bundle, ["a red square"])
    w0 = map_seeds(G, [3], trunc=0.7)
    seen: list[torch.dtype] = []
    G.synthesis.b8.conv1.register_forward_hook(lambda m, a, out: seen.append(out.dtype))
    amp, curve_amp = sc.optimise(G, bundle, w0, text, steps=STEPS, l2_lambda=0.0, log_every=1, amp=True)
    assert seen == [torch.bfloat16] * STEPS
    seen.clear()
    fp32, curve_fp32 = sc.optimise(G, bundle, w0, text, steps=STEPS, l2_lambda=0.0, log_every=1)
    assert seen == [torch.float32] * STEPS and amp.dtype == torch.float32
    sim_amp, sim_fp32 = curve_amp[-1]["similarity"][0], curve_fp32[-1]["similarity"][0]
    assert sim_amp > curve_amp[0]["similarity"][0] + 0.01  # the edit moves towards the prompt
    gain_amp, gain_fp32 = sim_amp - curve_fp32[0]["similarity"][0], sim_fp32 - curve_fp32[0]["similarity"][0]
    assert gain_amp == pytest.approx(gain_fp32, rel=0.25), (gain_amp, gain_fp32)


def test_cli_amp_in_help_and_runs(native_bf16, clip_dir, tmp_path):
    from stylekit.cli.app import app

    res = CliRunner().invoke(app, ["styleclip", "--help"])
    assert res.exit_code == 0 and "--amp" in res.output and "--no-amp" in res.output
    net = network_file(tmp_path, validity_generator())
    res = CliRunner().invoke(app, ["styleclip", "--network", str(net), "--latent-seed", "3", "--prompt", "a red square",
                                   "--clip-model", str(clip_dir), "--steps", "3", "--out", str(tmp_path / "e"), "--amp", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["prompts"][0]["l2"] > 0
