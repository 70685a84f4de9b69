"""train-classifier under torchrun: 2 CPU processes (gloo) train the same model as 1 process.

Same global batches (sampling.py), per-sample GroupNorm in small-cnn, SupCon over the gathered
global batch with the DDP rescaling (losses.py): the weights agree up to float summation order
(the one-process run takes the same path as `stylekit train-classifier` without torchrun: the CLI, in
this process with one thread). The main test's torchrun job runs under tests/device_guard.py, so it also
proves the DDP path creates no device-less tensor.
"""

import os
import subprocess
from pathlib import Path

import pytest
import torch
from device_guard import run_guarded
from typer.testing import CliRunner

from stylekit.cli.app import app
from stylekit.data.toy import generate_toy_styles

VENV_BIN = Path(__file__).resolve().parents[1] / ".venv" / "bin"
FLAGS = ["--epochs", "2", "--batch", "8", "--size", "32", "--seed", "0", "--workers", "0", "--device", "cpu", "--json"]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE")}
    env.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return env


pytestmark = pytest.mark.usefixtures("one_thread")  # the one-process runs, like the torchrun ranks (OMP_NUM_THREADS=1)


def _one_process(data: Path, out: Path, flags: list[str]) -> None:
    result = CliRunner().invoke(app, ["train-classifier", str(data), "--out", str(out), *flags])
    assert result.exit_code == 0, result.output[-3000:]


def _one_and_two_processes(data: Path, tmp_path: Path, flags: list[str]) -> tuple[Path, Path]:
    """Train on `data` as one process and under `torchrun -m stylekit` with two; returns the two run directories."""
    one, two = tmp_path / "one", tmp_path / "two"
    _one_process(data, one, flags)
    p2 = subprocess.run([str(VENV_BIN / "torchrun"), "--standalone", "--nproc_per_node", "2", "-m", "stylekit",
                         "train-classifier", str(data), "--out", str(two), *flags],
                        env=_env(), capture_output=True, text=True, timeout=300)
    assert p2.returncode == 0, p2.stderr[-3000:]
    return one, two


@pytest.mark.numerics
@pytest.mark.slow
def test_torchrun_two_processes_match_one_process(tmp_path):
    from safetensors.torch import load_file

    data = tmp_path / "toy"
    generate_toy_styles(data, size=32, per_style=12, styles=3, seed=0)
    one, two = tmp_path / "one", tmp_path / "two"
    _one_process(data, one, FLAGS)
    run_guarded(tmp_path, [["train-classifier", str(data), "--out", str(two), *FLAGS]], nproc=2)
    a, b = load_file(str(one / "style_model.safetensors")), load_file(str(two / "style_model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:  # Adam divides by sqrt(v): near-zero gradients magnify summation-order noise in a few elements
        diff = (b[k] - a[k]).abs()
        assert diff.max() <= 2e-3 and diff.mean() <= 1e-5, (k, float(diff.max()), float(diff.mean()))
    first_epoch = load_file(str(sorted((one / "checkpoints").glob("ckpt-*"))[0] / "model.safetensors"))
    assert sum(not torch.equal(first_epoch[k], a[k]) for k in a) > 0  # epoch 2 trained something
    import json

    m1 = [json.loads(x) for x in (one / "metrics.jsonl").read_text().splitlines()]
    m2 = [json.loads(x) for x in (two / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in m1] == [r["step"] for r in m2] == [3, 6]
    assert m2[-1]["train_loss"] == pytest.approx(m1[-1]["train_loss"], rel=1e-4)
    assert json.loads((two / "config.json").read_text())["world_size"] == 2


@pytest.mark.slow
def test_batchnorm_backbone_two_processes_match_one_within_tolerance(tmp_path):
    """A BatchNorm backbone under torchrun: each rank gets an interleaved share of the P x K batch, so
    its BatchNorm statistics cover every class of the batch (on CUDA, SyncBatchNorm makes them global;
    gloo on the CPU has no SyncBatchNorm, so they are per process here). The first epoch's training
    loss (forward passes before and after each update) agrees within 12%: per-process statistics over
    half the batch are noisy (--loss ce with shuffled batches: the figures below were measured so; the
    --classes-per-batch 2 --per-class 8 it used to pass were ignored under --loss ce), and the gap depends on the split (measured 1.8% with the split this test was
    written on, 8.6% with the one split function prepare and train-classifier now share; the old
    contiguous class-major shares gave 3.2% on the first). The run is seeded, so the figure is the
    same on every run: the bound is not a coin toss."""
    data = tmp_path / "toy"
    generate_toy_styles(data, size=32, per_style=16, styles=3, seed=0)
    flags = ["--backbone", "resnet18", "--no-pretrained", "--epochs", "1", "--batch", "64", "--no-balanced-sampler",
             "--size", "32", "--seed", "0", "--workers", "0", "--device", "cpu", "--loss", "ce", "--json"]
    one, two = _one_and_two_processes(data, tmp_path, flags)
    import json

    loss1, loss2 = (json.loads((d / "metrics.jsonl").read_text().splitlines()[-1])["train_loss"] for d in (one, two))
    assert abs(loss2 - loss1) <= 0.12 * loss1, (loss1, loss2)
