"""`make gpu-check`'s driver on a machine without CUDA: exit 3 in one line; its table, exit code and
timeout helpers (scripts/gpu_check.py)."""

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SPEC = importlib.util.spec_from_file_location("gpu_check", ROOT / "scripts" / "gpu_check.py")
gpu_check = sys.modules["gpu_check"] = importlib.util.module_from_spec(SPEC)  # dataclasses look their module up
SPEC.loader.exec_module(gpu_check)


def test_without_cuda_exit_3_with_one_line(tmp_path):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHON": sys.executable}
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), str(tmp_path / "out")], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3
    assert proc.stdout == "" and len(proc.stderr.strip().splitlines()) == 1 and "no CUDA" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_rows_table_and_exit_code(tmp_path):
    c = gpu_check.Check(tmp_path, "cpu", gpus=0)
    c.record("passes", lambda: {"syncs": 0})
    c.record("skips", lambda: (_ for _ in ()).throw(gpu_check.Skip("needs 2 GPUs, this machine has 1")))
    assert [r.status for r in c.rows] == ["PASS", "SKIP"] and gpu_check.exit_code(c.rows) == 0
    c.record("fails", lambda: 1 / 0)
    assert c.rows[-1].status == "FAIL" and "ZeroDivisionError" in c.rows[-1].detail
    assert gpu_check.exit_code(c.rows) == 1
    text = gpu_check.table(c.rows).splitlines()
    assert text[0].split()[:3] == ["check", "result", "seconds"]
    assert "SKIP" in text[2] and "needs 2 GPUs, this machine has 1" in text[2]
    assert "syncs=0" in text[1] and text[-1] == "1 passed, 1 failed, 1 skipped"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def test_timeout_kills_the_whole_process_group(tmp_path):
    pidfile = tmp_path / "child.pid"
    script = f"sleep 60 & echo $! > {pidfile}; wait"  # a grandchild, as torchrun's workers are
    t0 = time.monotonic()
    with pytest.raises(TimeoutError, match="process group .* killed"):
        gpu_check.run_job(["bash", "-c", script], dict(os.environ), timeout=1.0)
    assert time.monotonic() - t0 < 10
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def test_a_job_that_finishes_returns_its_output():
    proc = gpu_check.run_job([sys.executable, "-c", "print('ok')"], dict(os.environ), timeout=30)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok"
