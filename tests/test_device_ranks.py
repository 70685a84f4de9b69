"""GPU choice under torchrun: LOCAL_RANK's own device, never a modulo that puts two processes on one GPU."""

import pytest
import torch

from stylekit.device import local_cuda_index, resolve_device
from stylekit.errors import BadInput


@pytest.fixture
def gpus(monkeypatch):
    def fake(count: int, local_world: int, visible: str | None = None) -> None:
        monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
        monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
        monkeypatch.setenv("LOCAL_WORLD_SIZE", str(local_world))
        if visible is None:
            monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
        else:
            monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    return fake


def test_each_rank_gets_its_own_gpu(gpus):
    gpus(4, 4)
    assert [local_cuda_index(r) for r in range(4)] == [0, 1, 2, 3]


def test_one_gpu_pinned_per_process_is_device_zero(gpus):
    gpus(1, 8, visible="5")
    assert local_cuda_index(5) == 0


@pytest.mark.parametrize("rank", [0, 2])  # every rank refuses, not only those past the last GPU
def test_oversubscribed_launch_is_refused_with_exit_2(gpus, monkeypatch, rank):
    gpus(2, 4)
    monkeypatch.setenv("LOCAL_RANK", str(rank))
    with pytest.raises(BadInput) as exc:
        resolve_device("cuda")
    assert exc.value.exit_code == 2
    assert "4 processes on this node but 2 visible CUDA device(s)" in exc.value.message
    assert "--nproc_per_node 2" in exc.value.hint
