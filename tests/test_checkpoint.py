"""Checkpoint folders: atomic writes, the `latest` pointer, pruning, weights_only loading, damage."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

import stylekit.io.checkpoint as ckpt_mod
from stylekit.errors import BadInput
from stylekit.io.checkpoint import (
    CheckpointManager,
    checkpoint_name,
    find_checkpoint,
    load_module_tensors,
    read_checkpoint,
)


def _net(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))


def _save(manager: CheckpointManager, step: int, seed: int = 0, pinned: bool = False):
    net = _net(seed)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    net(torch.randn(5, 4)).sum().backward()
    opt.step()
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    states = {"opt": opt.state_dict(), "sched": sched.state_dict(), "scaler": scaler.state_dict()}
    info = manager.save(step, {"net": net.state_dict()}, states, {"counters": {"epoch": step // 10}}, pinned=pinned)
    return info, net


def test_layout_and_round_trip(tmp_path):
    manager = CheckpointManager(tmp_path / "checkpoints")
    info, net = _save(manager, 120)
    assert info.name == "ckpt-000000120" == checkpoint_name(120)
    files = sorted(p.name for p in info.path.iterdir())
    assert files == ["meta.json", "net.safetensors", "state.pt"]
    assert (tmp_path / "checkpoints" / "latest").read_text().strip() == "ckpt-000000120"
    meta = json.loads((info.path / "meta.json").read_text())
    assert meta["format"] == "stylekit-checkpoint" and meta["step"] == 120 and meta["counters"] == {"epoch": 12}
    assert meta["modules"] == ["net"] and meta["states"] == ["opt", "scaler", "sched"]

    # state.pt holds only weights_only-safe types.
    states = torch.load(info.path / "state.pt", weights_only=True)
    assert states["scaler"]["scale"] == 1024.0
    loaded = read_checkpoint(info.path)
    for key, value in net.state_dict().items():
        assert torch.equal(loaded.tensors["net"][key], value)
    fresh = _net(99)
    fresh.load_state_dict(loaded.tensors["net"])
    opt = torch.optim.Adam(fresh.parameters(), lr=1e-3)
    opt.load_state_dict(loaded.states["opt"])
    assert opt.state_dict()["state"][0]["step"].item() == 1.0
    # Other tools read one module from a run directory.
    assert torch.equal(load_module_tensors(tmp_path, "net")["0.weight"], net.state_dict()["0.weight"])
    assert find_checkpoint(tmp_path) == info.path == find_checkpoint(info.path)
    with pytest.raises(BadInput, match="no module 'G_ema'.*net"):
        load_module_tensors(tmp_path, "G_ema")


def test_tied_and_non_contiguous_tensors_are_saved(tmp_path):
    w = torch.randn(3, 4)
    tensors = {"a": w, "b": w, "t": w.t()}
    info = CheckpointManager(tmp_path).save(1, {"m": tensors}, {})
    loaded = read_checkpoint(info.path).tensors["m"]
    assert torch.equal(loaded["a"], w) and torch.equal(loaded["b"], w) and torch.equal(loaded["t"], w.t())


def test_prune_keeps_newest_and_pinned(tmp_path):
    manager = CheckpointManager(tmp_path, keep=2)
    _save(manager, 10, pinned=True)
    for step in (20, 30, 40, 50):
        _save(manager, step)
    assert [c.step for c in manager.list()] == [10, 40, 50]
    assert manager.latest().step == 50
    with pytest.raises(BadInput, match="--keep 0"):
        CheckpointManager(tmp_path, keep=0)


def test_same_step_is_replaced(tmp_path):
    manager = CheckpointManager(tmp_path)
    _save(manager, 10, seed=1)
    _, net = _save(manager, 10, seed=2, pinned=True)
    [only] = manager.list()
    assert only.pinned
    assert torch.equal(read_checkpoint(only.path).tensors["net"]["0.weight"], net.state_dict()["0.weight"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt-000000010", "latest"]


@pytest.mark.parametrize("victim", ["safetensors", "torch.save", "meta", "rename", "fsync", "write"])
def test_write_interrupted_half_way_keeps_previous(tmp_path, monkeypatch, victim):
    """Disk full at each step of a save (a fake filesystem: writes/fsync raise ENOSPC): the previous one intact and latest."""
    manager = CheckpointManager(tmp_path)
    _, net = _save(manager, 10, seed=1)

    def boom(*args, **kwargs):
        raise OSError(28, "No space left on device")

    if victim == "safetensors":
        import safetensors.torch

        real = safetensors.torch.save_file

        def half(tensors, filename, metadata=None):  # writes a torn file, then dies
            real(tensors, filename, metadata=metadata)
            with open(filename, "r+b") as fh:
                fh.truncate(os.path.getsize(filename) // 2)
            boom()

        monkeypatch.setattr(safetensors.torch, "save_file", half)
    elif victim == "torch.save":
        monkeypatch.setattr(ckpt_mod.torch, "save", boom)
    elif victim == "meta":
        monkeypatch.setattr(ckpt_mod.json, "dumps", boom)
    elif victim == "fsync":
        monkeypatch.setattr(ckpt_mod.os, "fsync", boom)
    elif victim == "write":
        monkeypatch.setattr(ckpt_mod.os, "write", boom)  # torch.save / safetensors write through their own code:
        monkeypatch.setattr(ckpt_mod.torch, "save", boom)  # the fake filesystem fails every write path
    else:
        monkeypatch.setattr(ckpt_mod.os, "replace", boom)
    with pytest.raises(OSError, match="No space left on device"):  # TrainRunner.save turns it into one clear line
        _save(manager, 20, seed=2)
    monkeypatch.undo()

    latest = manager.latest()
    assert latest is not None and latest.step == 10
    assert [c.step for c in manager.list()] == [10]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temp folder left behind"
    assert torch.equal(read_checkpoint(latest.path).tensors["net"]["0.weight"], net.state_dict()["0.weight"])


def test_kill_mid_write_leftovers_are_ignored_then_cleaned(tmp_path):
    """A SIGKILL leaves a .tmp folder (mid-write) or, mid-replace, `latest` naming a moved folder."""
    manager = CheckpointManager(tmp_path)
    _save(manager, 10)
    tmp = tmp_path / ".tmp-ckpt-000000020-4242"
    tmp.mkdir()
    (tmp / "net.safetensors").write_bytes(b"\x00" * 10)
    (tmp_path / "ckpt-000000030").mkdir()  # a folder without meta.json is not a checkpoint
    assert manager.latest().step == 10
    assert [c.step for c in manager.list()] == [10]

    (tmp_path / "latest").write_text("ckpt-000000020\n")  # pointer ahead of a folder that never landed
    assert manager.latest().step == 10
    _save(manager, 40)
    assert not tmp.exists()
    assert manager.latest().step == 40


def test_damaged_checkpoint_is_a_clear_error(tmp_path):
    manager = CheckpointManager(tmp_path)
    info, _ = _save(manager, 10)
    (info.path / "state.pt").write_bytes(b"not a torch file")
    with pytest.raises(BadInput, match="damaged.*(delete|--fresh)"):
        read_checkpoint(info.path)
    with pytest.raises(BadInput, match="not a stylekit checkpoint"):
        read_checkpoint(tmp_path)
    with pytest.raises(BadInput, match="no checkpoint found"):
        find_checkpoint(tmp_path / "nothing")


def test_pickled_code_in_state_is_refused(tmp_path):
    """state.pt is read with weights_only=True: an object that would run code on load is rejected."""
    manager = CheckpointManager(tmp_path)
    info, _ = _save(manager, 10)

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    torch.save({"opt": Evil()}, info.path / "state.pt")
    with pytest.raises(BadInput, match="damaged"):
        read_checkpoint(info.path)


@pytest.mark.parametrize("victim", ["safetensors", "torch.save", "meta", "latest"])
def test_kill9_during_a_save_then_the_rerun_resumes_from_the_previous(tmp_path, victim):
    """kill -9 in the middle of each write of a save; the next process never takes the half-written
    checkpoint (or pointer) for a finished one, and its next save clears the leftovers."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(f"""
        import os, signal, torch, safetensors.torch
        import stylekit.io.checkpoint as ckpt_mod
        from stylekit.io.checkpoint import CheckpointManager
        manager = CheckpointManager({str(tmp_path)!r})
        manager.save(10, {{"net": {{"w": torch.ones(3)}}}}, {{"opt": {{"lr": 1.0}}}}, {{}})
        def die(path):
            with open(path, "wb") as fh:
                fh.write(b"half")
            os.kill(os.getpid(), signal.SIGKILL)
        victim = {victim!r}
        if victim == "safetensors":
            safetensors.torch.save_file = lambda tensors, filename, metadata=None: die(filename)
        elif victim == "torch.save":
            ckpt_mod.torch.save = lambda obj, path: die(path)
        elif victim == "meta":
            ckpt_mod.Path.write_text = lambda self, *a, **k: die(self)
        else:
            from stylekit.io.atomic import write_atomic
            ckpt_mod.write_text_atomic = lambda path, text: write_atomic(path, die)
        manager.save(20, {{"net": {{"w": torch.zeros(3)}}}}, {{"opt": {{"lr": 2.0}}}}, {{}})
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    assert proc.returncode == -9, proc.stderr
    manager = CheckpointManager(tmp_path)
    latest = manager.latest()
    assert latest.step == 10  # killed while replacing `latest`: the old pointer is whole and still names ckpt-10
    loaded = read_checkpoint(latest.path)
    assert torch.equal(loaded.tensors["net"]["w"], torch.ones(3)) and loaded.states["opt"] == {"lr": 1.0}
    assert [c.step for c in manager.list()] == ([10, 20] if victim == "latest" else [10])  # ckpt-20: complete folder
    manager.save(30, {"net": {"w": torch.ones(3)}}, {"opt": {}}, {})
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "leftovers of the killed save"
