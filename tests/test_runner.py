"""The training runner: DDP equivalence, kill -9 / SIGTERM resume, NaN guard, lock, EMA, sampler.

tests/ddp_tiny_train.py is a tiny trainer written against the runner exactly as real trainers are;
it runs in-process (main(argv) returns the exit code) or as a real process / under torchrun.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import ddp_tiny_train as tiny
import numpy as np
import pytest
import torch
from torch.utils.data import DistributedSampler, TensorDataset

from stylekit.errors import BadInput, Interrupted
from stylekit.io.checkpoint import CheckpointManager, load_module_tensors
from stylekit.io.rundir import RunDir
from stylekit.train import EMA, DistInfo, TrainRunner, ema_beta, make_loader, seed_everything
from stylekit.train.distributed import ShardSampler
from stylekit.train.runner import NonFiniteLoss, capture_rng, restore_rng

SCRIPT = Path(tiny.__file__)
VENV_BIN = Path(sys.executable).parent


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE")}
    env.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return env


def _popen(out: Path, *args: str) -> subprocess.Popen:
    cmd = [sys.executable, str(SCRIPT), "--out", str(out), *args]
    return subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_checkpoint(out: Path, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not (out / "checkpoints" / "latest").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.05)


def _params(out: Path, module: str = "model") -> dict[str, torch.Tensor]:
    return load_module_tensors(out, module)


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], atol: float = 0.0) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if atol:
            torch.testing.assert_close(a[key], b[key], atol=atol, rtol=0)
        else:
            assert torch.equal(a[key], b[key]), f"{key} differs by {(a[key] - b[key]).abs().max()}"


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, Path]:
    """Uninterrupted in-process runs: plain (for DDP) and with RNG-driven input noise (for resumes)."""
    root = tmp_path_factory.mktemp("ref")
    assert tiny.main(["--out", str(root / "plain")]) == 0
    assert tiny.main(["--out", str(root / "noise"), "--noise"]) == 0
    return {"plain": root / "plain", "noise": root / "noise"}


def test_single_process_run_layout(reference):
    out = reference["plain"]
    manager = CheckpointManager(out / "checkpoints")
    steps = [c.step for c in manager.list()]
    assert steps == [16, 20, 24] and manager.latest().pinned
    assert manager.latest().counters == {"epoch": 2, "batch": 8}
    records = RunDir(out).read_metrics()
    assert [r["step"] for r in records] == list(range(1, 25))
    assert {"step", "epoch", "loss", "lr", "time"} <= records[0].keys()
    assert json.loads((out / "config.json").read_text())["steps"] == 24
    assert "new run in" in (out / "log.txt").read_text()
    # The runner trained something: EMA differs from the weights, loss went down.
    assert not torch.equal(_params(out)["fc1.weight"], _params(out, "model_ema")["fc1.weight"])
    assert records[-1]["loss"] < records[0]["loss"]


@pytest.mark.numerics
@pytest.mark.slow
def test_torchrun_two_processes_match_one_process(tmp_path, reference):
    out = tmp_path / "ddp"
    cmd = [str(VENV_BIN / "torchrun"), "--standalone", "--nproc_per_node", "2", str(SCRIPT), "--out", str(out)]
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _assert_same(_params(out), _params(reference["plain"]), atol=1e-5)
    _assert_same(_params(out, "model_ema"), _params(reference["plain"], "model_ema"), atol=1e-5)
    # Rank 0 alone wrote metrics: one record per step, and the per-step mean losses agree.
    ddp_losses = [r["loss"] for r in RunDir(out).read_metrics()]
    ref_losses = [r["loss"] for r in RunDir(reference["plain"]).read_metrics()]
    np.testing.assert_allclose(ddp_losses, ref_losses, atol=1e-5)
    # Both ranks' RNG streams were saved.
    state = torch.load(out / "checkpoints" / "ckpt-000000024" / "state.pt", weights_only=True)
    assert len(state["rng"]) == 2


def test_kill9_then_rerun_resumes_and_matches(tmp_path, reference):
    out = tmp_path / "run"
    proc = _popen(out, "--noise", "--sleep", "0.05")
    _wait_for_checkpoint(out, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    killed_at = CheckpointManager(out / "checkpoints").latest().step
    assert killed_at < 24

    assert tiny.main(["--out", str(out), "--noise"]) == 0
    assert f"resuming from {out / 'checkpoints'}" in (out / "log.txt").read_text()
    _assert_same(_params(out), _params(reference["noise"]))
    _assert_same(_params(out, "model_ema"), _params(reference["noise"], "model_ema"))
    # metrics.jsonl was rewound to the checkpoint: every step exactly once.
    assert [r["step"] for r in RunDir(out).read_metrics()] == list(range(1, 25))


def test_sigterm_saves_exits_130_and_second_run_is_busy(tmp_path, reference, capsys):
    out = tmp_path / "run"
    proc = _popen(out, "--noise", "--sleep", "0.05", "--save-every", "5")
    _wait_for_checkpoint(out, proc)

    # While it runs, the same --out is locked: a second run exits 75 and changes nothing.
    before = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert tiny.main(["--out", str(out), "--noise"]) == 75
    assert "in use by pid" in capsys.readouterr().err

    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "stopped by SIGTERM at step" in err and "run the same command again to resume" in err
    latest = CheckpointManager(out / "checkpoints").latest()
    assert latest.step % 5 != 0 or latest.name not in before  # a new checkpoint at the stop step
    assert f"stopped by SIGTERM at step {latest.step};" in err

    assert tiny.main(["--out", str(out), "--noise"]) == 0
    _assert_same(_params(out), _params(reference["noise"]))


def test_stop_request_mid_epoch_resumes_exactly(tmp_path, reference, monkeypatch, capsys):
    """In-process stop at step 11 (mid-epoch, between periodic saves): resume skips the seen batches."""
    out = tmp_path / "run"
    real = TrainRunner.check_finite

    def stop_at_11(self, step, **losses):
        if step == 11:
            self.request_stop("test")
        return real(self, step, **losses)

    monkeypatch.setattr(TrainRunner, "check_finite", stop_at_11)
    assert tiny.main(["--out", str(out), "--noise"]) == 130
    monkeypatch.undo()
    latest = CheckpointManager(out / "checkpoints").latest()
    assert (latest.step, latest.counters) == (11, {"epoch": 1, "batch": 3})
    capsys.readouterr()
    assert tiny.main(["--out", str(out), "--noise"]) == 0
    err = capsys.readouterr().err
    assert "resuming from" in err and "warning" not in err  # same options, same world size: silent
    _assert_same(_params(out), _params(reference["noise"]))


def test_rerun_of_finished_run_is_a_no_op_and_fresh_starts_over(tmp_path, reference):
    out = tmp_path / "run"
    assert tiny.main(["--out", str(out)]) == 0
    first = _params(out)
    assert tiny.main(["--out", str(out)]) == 0  # cron rerun: resumes at the end, trains nothing
    _assert_same(_params(out), first)
    assert [r["step"] for r in RunDir(out).read_metrics()] == list(range(1, 25))

    (out / "notes.txt").write_text("mine")  # a user's file in the run folder
    assert tiny.main(["--out", str(out), "--fresh", "--steps", "8"]) == 0
    assert (out / "notes.txt").read_text() == "mine", "--fresh removes only what stylekit wrote"
    assert [c.step for c in CheckpointManager(out / "checkpoints").list()] == [4, 8]
    assert "resuming" not in (out / "log.txt").read_text()


def test_nan_guard_names_step_and_keeps_last_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    assert tiny.main(["--out", str(out), "--nan-at", "7"]) == 1
    err = capsys.readouterr().err
    assert "error: training diverged at step 7: loss=nan" in err
    assert "the last good checkpoint ckpt-000000004 is intact" in err
    manager = CheckpointManager(out / "checkpoints")
    assert [c.step for c in manager.list()] == [4]
    assert all(torch.isfinite(t).all() for t in _params(out).values())
    # Rerunning without the fault resumes from step 4 and finishes.
    assert tiny.main(["--out", str(out)]) == 0
    assert manager.latest().step == 24


def test_save_refuses_non_finite_weights(tmp_path):
    net = torch.nn.Linear(2, 2)
    with RunDir(tmp_path) as run_dir, TrainRunner(run_dir, handle_signals=False) as runner:
        runner.register("net", net)
        runner.save(1)
        with torch.no_grad():
            net.weight[0, 0] = float("inf")
        with pytest.raises(NonFiniteLoss, match="weights of net are not finite at step 2.*ckpt-000000001 is intact"):
            runner.save(2)
    assert CheckpointManager(tmp_path / "checkpoints").latest().step == 1


def test_resume_with_other_architecture_is_bad_input(tmp_path, capsys):
    with RunDir(tmp_path) as run_dir, TrainRunner(run_dir, config={"width": 2}, handle_signals=False) as runner:
        runner.register("net", torch.nn.Linear(2, 2))
        assert runner.resume() == {}
        runner.save(3, epoch=1)
    with RunDir(tmp_path) as run_dir, TrainRunner(run_dir, config={"width": 3}, handle_signals=False) as runner:
        runner.register("net", torch.nn.Linear(2, 3))
        with pytest.raises(BadInput, match="does not fit module 'net'.*size mismatch") as err:
            runner.resume()
        assert "--fresh" in str(err.value)
    assert "resuming with changed options (width: 2 -> 3)" in capsys.readouterr().err
    with RunDir(tmp_path) as run_dir, TrainRunner(run_dir, handle_signals=False) as runner:
        runner.register("net", torch.nn.Linear(2, 2))
        runner.register("opt", torch.optim.SGD(runner._objects["net"].parameters(), lr=0.1))
        with pytest.raises(BadInput, match="has no state 'opt'"):
            runner.resume()


def test_register_rejects_objects_without_state(tmp_path):
    with RunDir(tmp_path) as run_dir, TrainRunner(run_dir, handle_signals=False) as runner:
        with pytest.raises(TypeError, match="no state_dict"):
            runner.register("x", object())
        runner.register("net", torch.nn.Linear(1, 1))
        with pytest.raises(ValueError, match="already registered"):
            runner.register("net", torch.nn.Linear(1, 1))


def test_signal_handlers_restored_and_second_ctrl_c_is_immediate(tmp_path):
    before = signal.getsignal(signal.SIGTERM)
    with RunDir(tmp_path) as run_dir, TrainRunner(run_dir) as runner:
        os.kill(os.getpid(), signal.SIGINT)
        assert runner.should_stop()
        os.kill(os.getpid(), signal.SIGTERM)  # torchrun's forwarded SIGTERM after Ctrl-C: no escalation
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGTERM) is before


def test_rng_capture_restore_round_trip():
    import random

    seed_everything(5)
    state = capture_rng()
    a = (random.random(), np.random.rand(), torch.rand(2))
    np.random.randn()  # leaves a cached gaussian in numpy's state
    restore_rng(state)
    b = (random.random(), np.random.rand(), torch.rand(2))
    assert a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2])
    assert seed_everything(5, rank=3) == 8


def test_shard_sampler_matches_distributed_sampler_and_resumes():
    data = list(range(13))
    for world in (1, 2, 3):
        for rank in range(world):
            ours = ShardSampler(13, rank, world, shuffle=True, seed=7, drop_last=False)
            theirs = DistributedSampler(data, num_replicas=world, rank=rank, shuffle=True, seed=7)
            ours.set_epoch(2)
            theirs.set_epoch(2)
            assert list(ours) == list(theirs)
    s = ShardSampler(13, 0, 1, seed=7)
    s.set_epoch(1)
    full = list(s)
    s.set_epoch(1, start=5)
    assert list(s) == full[5:] and len(s) == 8


def test_make_loader_global_batches_and_errors():
    ds = TensorDataset(torch.arange(16).float())
    one = make_loader(ds, DistInfo(), batch_size=4, seed=3)
    ranks = [make_loader(ds, DistInfo(rank=r, world_size=2), batch_size=4, seed=3) for r in (0, 1)]
    assert one.steps_per_epoch == ranks[0].steps_per_epoch == 4
    one.set_epoch(1)
    for r in ranks:
        r.set_epoch(1)
    for (g,), (a,), (b,) in zip(one, *ranks, strict=True):
        assert sorted(g.tolist()) == sorted(a.tolist() + b.tolist())
    got = [(e, i) for e, i, _ in one.batches(epoch=0, start_batch=2, count=6)]
    assert got == [(0, 2), (0, 3), (1, 0), (1, 1), (1, 2), (1, 3)]
    assert [(e, i) for e, i, _ in one.batches(epoch=3, start_batch=4, count=1)] == [(4, 0)]
    with pytest.raises(BadInput, match="--batch 5 cannot be split over 2 processes"):
        make_loader(ds, DistInfo(rank=0, world_size=2), batch_size=5)
    with pytest.raises(BadInput, match="fewer than one batch"):
        make_loader(ds, DistInfo(), batch_size=32)


def test_ema_decay_and_half_life():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.BatchNorm1d(3))
    ema = EMA(net, decay=0.9)
    old = ema.module[0].weight.clone()
    with torch.no_grad():
        net[0].weight.add_(1.0)
    net.train()(torch.randn(8, 3))  # changes BatchNorm running stats
    assert ema.update(net) == 0.9
    torch.testing.assert_close(ema.module[0].weight, 0.9 * old + 0.1 * net[0].weight)
    assert torch.equal(ema.module[1].running_mean, net[1].running_mean)
    assert not ema.module.training and not any(p.requires_grad for p in ema.module.parameters())

    assert ema_beta(32, half_life_kimg=10) == pytest.approx(0.5 ** (32 / 10_000))
    assert ema_beta(32, half_life_kimg=10, cur_nimg=1000, rampup=0.05) == pytest.approx(0.5 ** (32 / 50))
    assert ema_beta(32, half_life_kimg=10, cur_nimg=0, rampup=0.05) == 0.0  # first step: copy
    half = EMA(net, half_life_kimg=10, rampup=0.05)
    assert half.update(net, batch_size=32, cur_nimg=1000) == pytest.approx(0.5 ** (32 / 50))
    with pytest.raises(ValueError, match="exactly one"):
        EMA(net)



@pytest.mark.numerics
def test_ema_multi_tensor_update_equals_per_parameter_lerp():
    """The foreach update gives what the former per-parameter lerp_ loop gave, buffers copied too."""
    from stylekit.nets.stylegan2.tiny import tiny_generator

    G = tiny_generator(32, seed=0)
    ema = EMA(G, half_life_kimg=0.5)
    expected = {name: p.detach().clone() for name, p in ema.module.named_parameters()}
    with torch.no_grad():
        for i, p in enumerate(G.parameters()):
            p.add_(0.01 * (i + 1))
        G.mapping.w_avg.add_(3.0)
    beta = ema.update(G, batch_size=4)
    for name, p in G.named_parameters():
        expected[name].lerp_(p.detach(), 1.0 - beta)
    for name, p_ema in ema.module.named_parameters():
        torch.testing.assert_close(p_ema, expected[name], rtol=0, atol=1e-7)
    assert torch.equal(ema.module.mapping.w_avg, G.mapping.w_avg)

def test_docs_training_example_runs_and_resumes(tmp_path):
    """The trainer in docs/training.md is real code: run it, stop it, resume it."""
    text = (Path(__file__).parents[1] / "docs" / "training.md").read_text()
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(compile(code, "docs/training.md", "exec"), namespace)
    train = namespace["train"]
    assert train(str(tmp_path / "a"), steps=40, batch=32, device="cpu") == 40
    assert [r["step"] for r in RunDir(tmp_path / "a").read_metrics()] == []  # logs every 100 steps
    assert CheckpointManager(tmp_path / "a" / "checkpoints").latest().counters == {"epoch": 1, "batch": 8}

    real = TrainRunner.check_finite

    def stop_at_13(self, step, **losses):
        if step == 13:
            self.request_stop("test")
        return real(self, step, **losses)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(TrainRunner, "check_finite", stop_at_13)
        with pytest.raises(Interrupted, match="stopped by test at step 13"):
            train(str(tmp_path / "b"), steps=40, batch=32, device="cpu")
    assert train(str(tmp_path / "b"), steps=40, batch=32, device="cpu") == 40
    _assert_same(_params(tmp_path / "b"), _params(tmp_path / "a"))


def test_disk_full_during_a_checkpoint_is_one_clear_error_and_the_previous_survives(tmp_path, monkeypatch):
    """A fake full filesystem (fsync raises ENOSPC) under TrainRunner.save: one StylekitError line naming the
    checkpoint and the fix, no traceback; the previous checkpoint stays `latest` and loads."""
    import errno
    import os

    from stylekit.errors import StylekitError
    from stylekit.io.checkpoint import read_checkpoint

    net = torch.nn.Linear(2, 2)
    with RunDir(tmp_path) as run_dir, TrainRunner(run_dir, handle_signals=False) as runner:
        runner.register("net", net)
        runner.save(1)

        def full(fd):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(os, "fsync", full)
        with pytest.raises(StylekitError) as info:
            runner.save(2)
        monkeypatch.undo()
    assert info.value.exit_code == 1
    assert f"cannot write checkpoint {tmp_path / 'checkpoints' / 'ckpt-000000002'}: No space left on device" in info.value.message
    assert "the previous checkpoint is intact" in info.value.hint
    latest = CheckpointManager(tmp_path / "checkpoints").latest()
    assert latest.step == 1 and torch.equal(read_checkpoint(latest.path).tensors["net"]["weight"], net.weight.detach())
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".")]
