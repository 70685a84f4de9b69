"""train-cyclegan under torchrun: 2 CPU processes (gloo) train the same generators as 1 process.

Same global batches (make_loader) and B draws and crops seeded by (seed, epoch, index), per-sample
instance norm, no dropout and no image pool (each process keeps its own pool, whose draws differ
from one process's), so DDP's gradient averaging reproduces the one-process gradients.
"""

import json

import pytest
import torch
from device_guard import run_guarded
from typer.testing import CliRunner

from stylekit.cli.app import app
from stylekit.data.toy import generate_toy_styles

FLAGS = ["--size", "32", "--ngf", "4", "--ndf", "4", "--n-blocks", "2", "--pool-size", "0", "--batch", "2",
         "--epochs", "1", "--decay-epochs", "0", "--val-fraction", "0.25", "--samples", "1", "--device", "cpu",
         "--seed", "0", "--json"]


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_torchrun_two_processes_match_one_process(tmp_path):
    from safetensors.torch import load_file

    data = tmp_path / "toy"
    generate_toy_styles(data, size=32, per_style=8, styles=1, seed=0)
    one, two = tmp_path / "one", tmp_path / "two"
    common = [str(data / "content"), str(data / "pop")]
    p1 = CliRunner().invoke(app, ["train-cyclegan", *common, "--out", str(one), *FLAGS])
    assert p1.exit_code == 0, p1.output[-3000:]
    (p2,) = run_guarded(tmp_path, [["train-cyclegan", *common, "--out", str(two), *FLAGS]], nproc=2)
    r1, r2 = json.loads(p1.stdout), json.loads(p2["stdout"])
    assert r1["steps"] == r2["steps"] == 3  # 6 training images / global batch 2
    for direction in ("a2b", "b2a"):
        a = load_file(str(one / f"generator_{direction}.safetensors"))
        b = load_file(str(two / f"generator_{direction}.safetensors"))
        assert a.keys() == b.keys()
        # a conv bias right before a (non-affine) instance norm has a zero gradient: Adam turns its float
        # noise into lr-sized steps, so those dead parameters are not comparable
        dead = {k for k in a if k.endswith(".bias") and not k.startswith("head.")}
        assert dead and "head.1.weight" in a
        for k in a.keys() - dead:
            torch.testing.assert_close(b[k], a[k], rtol=1e-3, atol=1e-4)
    assert r2["cycle_error_a"] == pytest.approx(r1["cycle_error_a"], rel=1e-3)
