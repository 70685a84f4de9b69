"""train-pix2pix's layout rule: NCHW networks and images in fp32, channels-last under --amp."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from stylekit.data.toy import generate_toy_styles
from stylekit.train.distributed import DistInfo
from stylekit.train.pix2pix import Pix2PixConfig, _build, _to, memory_format, train_pix2pix


def _conv_weights_layout(net: torch.nn.Module, layout: torch.memory_format) -> bool:
    convs = [m.weight for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    return bool(convs) and all(w.is_contiguous(memory_format=layout) for w in convs)


def test_fp32_builds_nchw_and_amp_builds_channels_last(tmp_path: Path) -> None:
    cfg = Pix2PixConfig(data=tmp_path, out=tmp_path / "run", size=32, ngf=4, ndf=4, device="cpu")
    batch = {"a": torch.rand(2, 3, 32, 32), "label": "not a tensor"}
    for amp, layout in ((False, torch.contiguous_format), (True, torch.channels_last)):
        assert memory_format(amp) == layout
        g, d = _build(cfg, DistInfo(), memory_format(amp))
        assert _conv_weights_layout(g, layout) and _conv_weights_layout(d, layout)
        a = _to(batch, torch.device("cpu"), "a", memory_format(amp))
        assert a is not None and a.is_contiguous(memory_format=layout)
        assert _to(batch, torch.device("cpu"), "label", layout) is None
    # channels-last vs NCHW weights of a [O, I, 4, 4] conv differ in strides: the check can fail
    g, _ = _build(cfg, DistInfo(), torch.contiguous_format)
    assert not _conv_weights_layout(g, torch.channels_last)



def test_amp_training_runs_bf16_channels_last_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The --amp path on any CPU (bf16 forced native): trains channels-last in bf16, evaluates, no NaN."""
    from stylekit import device as device_mod
    from stylekit.nets import unet

    monkeypatch.setattr(device_mod, "cpu_has_native_bf16", lambda: True)
    generate_toy_styles(tmp_path / "toy", size=32, per_style=6, styles=2, seed=0)
    seen: list[tuple[torch.dtype, bool]] = []
    original = unet.Down.forward

    def spy(self: unet.Down, x: torch.Tensor) -> torch.Tensor:  # each encoder block's output dtype and weight layout
        out = original(self, x)
        seen.append((out.dtype, self.conv.weight.is_contiguous(memory_format=torch.channels_last)))
        return out

    monkeypatch.setattr(unet.Down, "forward", spy)
    cfg = Pix2PixConfig(data=tmp_path / "toy", out=tmp_path / "run", size=32, ngf=4, ndf=4, style_dim=8, refs=1,
                        batch=4, epochs=1, decay_epochs=0, device="cpu", seed=0, val_fraction=0.25, samples=1, amp=True)
    result = train_pix2pix(cfg)
    assert result.steps >= 1 and result.val_l1 is not None and 0 < result.val_l1 < 2
    assert seen and all(channels_last for _, channels_last in seen)
    assert any(dtype == torch.bfloat16 for dtype, _ in seen)
    last = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert all(math.isfinite(v) for v in last.values() if isinstance(v, float))
