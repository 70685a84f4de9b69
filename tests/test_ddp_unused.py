"""Options that leave parameters without a gradient train under DDP (stylekit/train/distributed.py wrap_ddp).

`--ref-metric-weight 0.1 --ref-cls-weight 0`: the reference-code classifier head gets no gradient; the
classifier's `--loss ce` leaves its projection head out of the loss. Two CPU processes (gloo).
"""

import json

import pytest
from device_guard import run_guarded

from stylekit.data.toy import generate_toy_styles

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]
PIX2PIX = ["--refs", "1", "--size", "32", "--ngf", "4", "--ndf", "4", "--style-dim", "8", "--batch", "2", "--epochs", "1",
           "--decay-epochs", "0", "--val-fraction", "0.25", "--samples", "1", "--device", "cpu", "--seed", "0", "--json"]


def test_unreached_parameters_under_two_processes(tmp_path):
    data = tmp_path / "toy"
    generate_toy_styles(data, size=32, per_style=6, styles=2, seed=0)
    jobs = [
        ["train-pix2pix", str(data), "--out", str(tmp_path / "p2p"), *PIX2PIX, "--ref-metric-weight", "0.1", "--ref-cls-weight", "0"],
        ["train-classifier", str(data), "--out", str(tmp_path / "cls"), "--loss", "ce", "--epochs", "1", "--batch", "4",
         "--size", "32", "--workers", "0", "--device", "cpu", "--seed", "0", "--json"],
    ]
    p2p, cls = run_guarded(tmp_path, jobs, nproc=2, timeout_s=240)  # every job exits 0 on both ranks
    assert json.loads(p2p["stdout"])["steps"] > 1 and json.loads(cls["stdout"])["steps"] > 1
