"""Key mapping between NVlabs-named StyleGAN2 generators and rosinality/stylegan2-pytorch checkpoints.

rosinality (the format StyleCLIP ships) uses the same math with different names:
  mapping.fc{i}           <-> style.{i+1}
  synthesis.b4.const      <-> input.input (leading 1)
  synthesis.b4.conv1      <-> conv1;    b{R}.conv0/conv1 <-> convs.{2k}/convs.{2k+1} (R = 2^(k+3))
  SynthesisLayer.weight   <-> conv.weight (leading 1);  affine <-> conv.modulation
  bias                    <-> activate.bias;  noise_strength [] <-> noise.weight [1]
  noise_const [R,R]       <-> noises.noise_{j} [1,1,R,R] (j counts convs from 4x4)
  torgb                   <-> to_rgb1 / to_rgbs.{k} (bias [1,3,1,1]);  w_avg <-> latent_avg
Only the generator is converted; rosinality's discriminator layout differs and is not read.
"""

from __future__ import annotations

import math
import re
from typing import Any

import torch

from stylekit.errors import BadInput
from stylekit.nets.stylegan2.ops import setup_filter

_STYLE = re.compile(r"^style\.(\d+)\.(weight|bias)$")


def _synthesis_layer_pairs(resolution: int) -> list[tuple[str, str, int, int]]:
    """(nvlabs prefix, rosinality prefix, noise index, resolution) for every modulated 3x3 conv."""
    pairs = [("synthesis.b4.conv1", "conv1", 0, 4)]
    for k, log2 in enumerate(range(3, int(math.log2(resolution)) + 1)):
        res = 2**log2
        pairs.append((f"synthesis.b{res}.conv0", f"convs.{2 * k}", 2 * k + 1, res))
        pairs.append((f"synthesis.b{res}.conv1", f"convs.{2 * k + 1}", 2 * k + 2, res))
    return pairs


def _torgb_pairs(resolution: int) -> list[tuple[str, str]]:
    pairs = [("synthesis.b4.torgb", "to_rgb1")]
    for k, log2 in enumerate(range(3, int(math.log2(resolution)) + 1)):
        pairs.append((f"synthesis.b{2**log2}.torgb", f"to_rgbs.{k}"))
    return pairs


def to_rosinality(state: dict[str, torch.Tensor], img_resolution: int) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
    """NVlabs-named generator state dict -> (rosinality g_ema state dict, latent_avg)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        m = re.match(r"^mapping\.fc(\d+)\.(weight|bias)$", key)
        if m:
            out[f"style.{int(m.group(1)) + 1}.{m.group(2)}"] = value.clone()
    out["input.input"] = state["synthesis.b4.const"].unsqueeze(0).clone()
    blur = setup_filter() * 4
    for nv, ro, j, _ in _synthesis_layer_pairs(img_resolution):
        out[f"{ro}.conv.weight"] = state[f"{nv}.weight"].unsqueeze(0).clone()
        out[f"{ro}.conv.modulation.weight"] = state[f"{nv}.affine.weight"].clone()
        out[f"{ro}.conv.modulation.bias"] = state[f"{nv}.affine.bias"].clone()
        out[f"{ro}.activate.bias"] = state[f"{nv}.bias"].clone()
        out[f"{ro}.noise.weight"] = state[f"{nv}.noise_strength"].reshape(1).clone()
        out[f"noises.noise_{j}"] = state[f"{nv}.noise_const"][None, None].clone()
        if nv.endswith("conv0"):
            out[f"{ro}.conv.blur.kernel"] = blur.clone()
    for nv, ro in _torgb_pairs(img_resolution):
        out[f"{ro}.conv.weight"] = state[f"{nv}.weight"].unsqueeze(0).clone()
        out[f"{ro}.conv.modulation.weight"] = state[f"{nv}.affine.weight"].clone()
        out[f"{ro}.conv.modulation.bias"] = state[f"{nv}.affine.bias"].clone()
        out[f"{ro}.bias"] = state[f"{nv}.bias"].reshape(1, -1, 1, 1).clone()
        if ro != "to_rgb1":
            out[f"{ro}.upsample.kernel"] = blur.clone()
    w_avg = state.get("mapping.w_avg")
    return out, (w_avg.clone() if w_avg is not None else None)


def is_rosinality_state(state: dict[str, Any]) -> bool:
    return "input.input" in state and "conv1.conv.weight" in state and any(_STYLE.match(k) for k in state)


def rosinality_config(state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Infer NVlabs Generator init kwargs from a rosinality generator state dict."""
    styles = sorted({int(m.group(1)) for k in state if (m := _STYLE.match(k))})
    if not styles or styles != list(range(1, len(styles) + 1)):
        raise BadInput("rosinality checkpoint: mapping layers style.1..N are missing or not contiguous")
    w_dim = int(state["style.1.weight"].shape[1])
    n_torgb = len({k.split(".")[1] for k in state if k.startswith("to_rgbs.")})
    resolution = 2 ** (n_torgb + 2)
    channels = {4: int(state["conv1.conv.weight"].shape[1])}
    for k, log2 in enumerate(range(3, int(math.log2(resolution)) + 1)):
        channels[2**log2] = int(state[f"convs.{2 * k + 1}.conv.weight"].shape[1])
    channel_max = max(channels.values())
    below = [r for r in sorted(channels) if channels[r] < channel_max]
    channel_base = channels[below[0]] * below[0] if below else max(32768, channel_max * resolution)
    if any(min(channel_base // r, channel_max) != c for r, c in channels.items()):
        raise BadInput(f"rosinality checkpoint: channel counts {channels} do not follow min(base/res, max)")
    return dict(
        z_dim=w_dim, c_dim=0, w_dim=w_dim, img_resolution=resolution, img_channels=3,
        mapping_kwargs=dict(num_layers=len(styles)),
        synthesis_kwargs=dict(channel_base=channel_base, channel_max=channel_max, num_fp16_res=0, conv_clamp=None),
    )


def from_rosinality(
    state: dict[str, torch.Tensor], latent_avg: torch.Tensor | None
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """rosinality generator state dict (+ latent_avg) -> (NVlabs-named state dict, init kwargs)."""
    config = rosinality_config(state)
    res = config["img_resolution"]
    out: dict[str, torch.Tensor] = {}
    try:
        for key, value in state.items():
            m = _STYLE.match(key)
            if m:
                out[f"mapping.fc{int(m.group(1)) - 1}.{m.group(2)}"] = value
        out["synthesis.b4.const"] = state["input.input"][0]
        for nv, ro, j, r in _synthesis_layer_pairs(res):
            out[f"{nv}.weight"] = state[f"{ro}.conv.weight"][0]
            out[f"{nv}.affine.weight"] = state[f"{ro}.conv.modulation.weight"]
            out[f"{nv}.affine.bias"] = state[f"{ro}.conv.modulation.bias"]
            out[f"{nv}.bias"] = state[f"{ro}.activate.bias"]
            out[f"{nv}.noise_strength"] = state[f"{ro}.noise.weight"].reshape([])
            noise = state.get(f"noises.noise_{j}")
            out[f"{nv}.noise_const"] = noise.reshape(r, r) if noise is not None else torch.zeros(r, r, device="cpu")
        for nv, ro in _torgb_pairs(res):
            out[f"{nv}.weight"] = state[f"{ro}.conv.weight"][0]
            out[f"{nv}.affine.weight"] = state[f"{ro}.conv.modulation.weight"]
            out[f"{nv}.affine.bias"] = state[f"{ro}.conv.modulation.bias"]
            out[f"{nv}.bias"] = state[f"{ro}.bias"].reshape(-1)
    except KeyError as exc:
        raise BadInput(f"rosinality checkpoint: missing tensor {exc}") from None
    if latent_avg is not None:
        out["mapping.w_avg"] = latent_avg.reshape(-1)
    return {k: v.detach().to(torch.float32).contiguous() for k, v in out.items()}, config
