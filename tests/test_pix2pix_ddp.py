"""train-pix2pix under torchrun: 2 CPU processes (gloo) train the same networks as 1 process.

Same global batches (make_loader), crops and references seeded by (seed, epoch, index), no dropout, and
either per-sample instance norm or batch norm over the global batch (stylekit/train/sync_norm.py), so
DDP's gradient averaging reproduces the one-process gradients.
"""

import json

import pytest
import torch
from device_guard import run_guarded
from typer.testing import CliRunner

from stylekit.cli.app import app
from stylekit.data.toy import generate_toy_styles

FLAGS = ["--refs", "1", "--size", "32", "--ngf", "8", "--ndf", "8", "--style-dim", "16",
         "--no-dropout", "--batch", "2", "--epochs", "1", "--decay-epochs", "0", "--val-fraction", "0.25",
         "--samples", "1", "--device", "cpu", "--seed", "0", "--json"]


def _model(norm: str):
    from stylekit.nets.unet import GeneratorConfig, RefUNet

    return RefUNet(GeneratorConfig(size=32, ngf=8, norm=norm, dropout=False, refs=1, style_dim=16, ref_size=32))


@pytest.mark.slow
@pytest.mark.numerics
@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("norm", ["instance", "batch"])
def test_torchrun_two_processes_match_one_process(tmp_path, norm):
    from safetensors.torch import load_file

    data = tmp_path / "toy"
    generate_toy_styles(data, size=32, per_style=8, styles=2, seed=0)
    one, two = tmp_path / "one", tmp_path / "two"
    flags = [*FLAGS, "--norm", norm]
    p1 = CliRunner().invoke(app, ["train-pix2pix", str(data), "--out", str(one), *flags])
    assert p1.exit_code == 0, p1.output[-3000:]
    (p2,) = run_guarded(tmp_path, [["train-pix2pix", str(data), "--out", str(two), *flags]], nproc=2)
    r1, r2 = json.loads(p1.stdout), json.loads(p2["stdout"])
    assert r1["steps"] == r2["steps"] == 6  # 12 training pairs / global batch 2
    a, b = load_file(str(one / "generator.safetensors")), load_file(str(two / "generator.safetensors"))
    assert a.keys() == b.keys()
    # A conv bias right before a norm layer has a mathematically zero gradient: Adam turns its float
    # noise into lr-sized steps, so those dead parameters are not comparable.
    norms = (torch.nn.InstanceNorm2d, torch.nn.BatchNorm2d)
    dead = {f"unet.{part}.{i}.conv.bias" for part in ("downs", "ups") for i, block in enumerate(getattr(_model(norm).unet, part))
            if isinstance(block.norm, norms) and block.conv.bias is not None}
    assert all(k in a for k in dead) and (dead or norm == "batch")  # batch norm: junyanz's convs have no bias
    for k in a.keys() - dead:  # everything else: equal up to float summation order
        torch.testing.assert_close(b[k], a[k], rtol=1e-3, atol=1e-4)
    assert r2["val_l1"] == pytest.approx(r1["val_l1"], rel=1e-3)
    assert r2["val_l1_wrong_refs"] == pytest.approx(r1["val_l1_wrong_refs"], rel=1e-3)
