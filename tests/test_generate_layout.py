"""synthesize(amp=True) runs G channels-last on CPU (faster oneDNN bf16 path): same images as NCHW,
G left as it was; fp32 keeps NCHW."""

from __future__ import annotations

import contextlib

import pytest
import torch

from stylekit import device as device_mod
from stylekit.nets.stylegan2 import sampling
from stylekit.nets.stylegan2.sampling import synthesize
from stylekit.nets.stylegan2.tiny import tiny_generator


@pytest.mark.numerics
def test_channels_last_synthesis_gives_the_same_images_and_restores_the_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device_mod, "cpu_has_native_bf16", lambda: True)  # the --amp path on any CPU
    torch.manual_seed(0)
    G = tiny_generator(32).eval().requires_grad_(False)
    ws = G.mapping(torch.randn(3, G.z_dim), None)
    with monkeypatch.context() as m:  # the same --amp call with G left NCHW
        m.setattr(sampling, "_inference_layout", lambda *a: contextlib.nullcontext())
        plain = synthesize(G, ws, "const", batch=2, amp=True)
    layouts: list[bool] = []
    layer = next(m for m in G.modules() if type(m).__name__ == "SynthesisLayer")
    layer.register_forward_pre_hook(lambda m, _: layouts.append(m.weight.is_contiguous(memory_format=torch.channels_last)))
    with torch.no_grad():
        fp32 = synthesize(G, ws, "const", batch=3)
    assert torch.allclose(fp32, G.synthesis(ws, noise_mode="const"), atol=1e-5)
    assert layouts and not any(layouts)  # fp32 keeps NCHW
    layouts.clear()
    for mode, seeds in (("const", None), ("random", [5, 6, 7])):
        images = synthesize(G, ws, mode, seeds=seeds, batch=2, amp=True)
        assert images.shape == plain.shape
        if mode == "const":
            assert torch.allclose(images, plain, rtol=2e-2, atol=2e-2)
        else:  # per-image seeds: the same images as a second call
            assert torch.equal(images, synthesize(G, ws, mode, seeds=seeds, batch=2, amp=True))
    assert layouts and all(layouts)  # channels-last while synthesizing under --amp
    convs = [p for p in G.parameters() if p.dim() == 4]
    assert convs and all(p.is_contiguous() for p in convs)
