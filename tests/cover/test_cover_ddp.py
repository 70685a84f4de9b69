"""The trainers' options that change what is computed, as 2-process torchrun runs on gloo.

One torchrun launch runs every row of a trainer in sequence (tests/device_guard.py: rank 0 reports, a
tensor built without its device fails the row). Each row must end in exit 0: these are combinations a
user runs on 8 GPUs, where a parameter without gradient or a rank-dependent branch hangs or crashes.
"""

from pathlib import Path

import pytest

from stylekit.configs.pix2pix import Pix2PixConfig
from stylekit.data.toy import generate_toy_styles
from tests.cover.harness import pairwise_over, to_args
from tests.device_guard import run_guarded  # noqa: I001

pytestmark = pytest.mark.slow

PIX2PIX_COMPUTE = {
    "refs": [0, 2],
    "ref_cls_weight": [0.0, 1.0],
    "ref_metric_weight": [0.0, 0.1],
    "norm": ["batch", "instance"],
    "net_g": ["unet", "resnet9"],
    "amp": [False, True],
}
PIX2PIX_TINY = {"size": 32, "ngf": 4, "ndf": 4, "style_dim": 8, "epochs": 1, "batch": 2, "samples": 1, "val_max": 2}


def _valid(row: dict) -> bool:
    return row["refs"] >= 1 or not (row["ref_cls_weight"] or row["ref_metric_weight"])


def test_pix2pix_compute_options_under_two_processes(tmp_path: Path):
    data = tmp_path / "toy"
    generate_toy_styles(data, size=32, per_style=4, styles=2, seed=0)
    rows = [r for r in pairwise_over(PIX2PIX_COMPUTE, PIX2PIX_TINY) if _valid(r)]
    rows.append(PIX2PIX_TINY | {"refs": 2, "ref_cls_weight": 0.0, "ref_metric_weight": 0.1})  # issue 22's crash
    jobs = [["train-pix2pix", str(data), *to_args(Pix2PixConfig, row | {"out": tmp_path / f"run{i}"}), "--device", "cpu"]
            for i, row in enumerate(rows)]
    # resume across world sizes and across --amp: the first row continues one more epoch in one process, with --amp
    resumed = [*jobs[0][:jobs[0].index("--epochs")], "--epochs", "2", *jobs[0][jobs[0].index("--epochs") + 2:], "--amp"]
    results = run_guarded(tmp_path, jobs, nproc=2, timeout_s=300)
    assert len(results) == len(rows) and all(r["exit_code"] == 0 for r in results)
    (again,) = run_guarded(tmp_path, [resumed], nproc=1, timeout_s=120)
    assert again["exit_code"] == 0
