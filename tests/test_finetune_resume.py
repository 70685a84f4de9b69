"""finetune-stylegan: kill -9 at a random point and rerun == uninterrupted run; the same for 2 gloo processes."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file
from test_finetune import make_tiny_setup, tiny_cfg

from stylekit.train.stylegan import finetune_stylegan

STYLEKIT = str(Path(__file__).resolve().parents[1] / ".venv" / "bin" / "stylekit")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    return make_tiny_setup(tmp_path_factory.mktemp("ftr"))


pytestmark = pytest.mark.usefixtures("one_thread")


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "STYLEKIT_OFFLINE": "1"}


def _cmd(data: Path, src: Path, out: Path, *extra: str) -> list[str]:
    return [STYLEKIT, "finetune-stylegan", str(data), "--network", str(src), "--out", str(out), "--device", "cpu",
            "--batch", "4", "--tick-kimg", "0.008", "--snap", "1000", *extra]


def _assert_same(a: Path, b: Path, atol: float, mean_tol: float = 0.0) -> None:
    ta, tb = load_file(str(a)), load_file(str(b))
    assert set(ta) == set(tb)
    keys = [k for k in ta if ta[k].is_floating_point()]
    worst = max(float((ta[k].double() - tb[k].double()).abs().max()) for k in keys)
    total = sum(float((ta[k].double() - tb[k].double()).abs().sum()) for k in keys)
    mean = total / sum(ta[k].numel() for k in keys)
    assert worst <= atol and mean <= (mean_tol or atol), (worst, mean)


@pytest.mark.slow
def test_kill_at_random_point_then_rerun_equals_uninterrupted(setup, tmp_path):
    data, src = setup
    ref = finetune_stylegan(tiny_cfg(data, src, tmp_path / "ref", kimg=0.032, tick_kimg=0.004, ada_kimg=1.0, target=0.3))
    out = tmp_path / "killed"
    cmd = _cmd(data, src, out, "--kimg", "0.032", "--tick-kimg", "0.004", "--ada-kimg", "1", "--target", "0.3")
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    latest = out / "checkpoints" / "latest"
    deadline = time.monotonic() + 120
    while not (latest.exists() and latest.read_text().strip()) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(random.uniform(0.0, 0.5))
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    done = subprocess.run(cmd + ["--json"], env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "resuming from" in done.stderr
    _assert_same(Path(ref.network), out / "network-final.safetensors", atol=1e-6)


@pytest.mark.numerics
@pytest.mark.slow
def test_two_gloo_processes_resume_exactly(setup, tmp_path):
    """Noise is drawn per rank on the device from (seed, minibatch, phase, rank): a 2-process run that
    stops half way and is extended equals one straight 2-process run (and both ranks stay in step)."""
    data, src = setup
    opts = ("--mbstd-group", "2", "--ada-kimg", "1", "--target", "0.3", "--nproc", "2")  # 6 minibatches: Greg x2, Dreg x1, ADA x1
    straight, split = tmp_path / "straight", tmp_path / "split"
    for out, kimgs in ((straight, ["0.024"]), (split, ["0.012", "0.024"])):
        for kimg in kimgs:
            done = subprocess.run(_cmd(data, src, out, "--kimg", kimg, *opts), env=_env(), capture_output=True,
                                  text=True, timeout=300)
            assert done.returncode == 0, done.stderr[-3000:]
    assert "resuming from" in (split / "log.txt").read_text()
    _assert_same(straight / "network-final.safetensors", split / "network-final.safetensors", atol=0.0)
