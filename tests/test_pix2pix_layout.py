"""train-pix2pix's layout rule: NCHW networks and images in fp32, channels-last under --amp."""

from __future__ import annotations

from pathlib import Path

import torch

from stylekit.train.distributed import DistInfo
from stylekit.train.pix2pix import Pix2PixConfig, _build, _to, memory_format


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
