"""Key mapping between NVlabs-named StyleGAN2 networks and rosinality/stylegan2-pytorch checkpoints.

rosinality (the format pSp, e4e, StyleGAN-NADA and StyleCLIP read) uses the same math with other
names. One table per network (`generator_pairs`, `discriminator_pairs`) lists every tensor as
(NVlabs name, rosinality name, layout); import (`from_rosinality*`) and export (`to_rosinality*`)
both walk that table, so they are exact inverses:
  mapping.fc{i}           <-> style.{i+1}
  synthesis.b4.const      <-> input.input (leading 1)
  synthesis.b4.conv1      <-> conv1;    b{R}.conv0/conv1 <-> convs.{2k}/convs.{2k+1} (R = 2^(k+3))
  SynthesisLayer.weight   <-> conv.weight (leading 1);  affine <-> conv.modulation
  bias                    <-> activate.bias;  noise_strength [] <-> noise.weight [1]
  noise_const [R,R]       <-> noises.noise_{j} [1,1,R,R] (j counts convs from 4x4)
  torgb                   <-> to_rgb1 / to_rgbs.{k} (bias [1,3,1,1]);  w_avg <-> latent_avg
Discriminator (resnet architecture, mbstd group 4 x 1 channel, as rosinality builds it):
  b{top}.fromrgb          <-> convs.0.0 (weight) / convs.0.1 (bias)
  b{R}.conv0/conv1/skip   <-> convs.{i}.conv1.0+.1 / convs.{i}.conv2.1+.2 / convs.{i}.skip.1 (i = 1 at the top)
  b4.conv / fc / out      <-> final_conv.0+.1 / final_linear.0 / final_linear.1
rosinality also stores its blur kernels (4 * resample_filter where it upsamples, resample_filter where it
downsamples); they are constants, written on export and not read back.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import torch

from stylekit.errors import BadInput
from stylekit.nets.stylegan2.ops import setup_filter

_STYLE = re.compile(r"^style\.(\d+)\.(weight|bias)$")
_FC = re.compile(r"^mapping\.fc(\d+)\.(weight|bias)$")
_D_BLOCK = re.compile(r"^convs\.(\d+)\.conv1\.0\.weight$")

Pair = tuple[str, str, str]  # (NVlabs name, rosinality name, layout)

# layout -> (NVlabs tensor -> rosinality tensor, rosinality tensor -> NVlabs tensor)
_LAYOUTS: dict[str, tuple[Callable[[torch.Tensor], torch.Tensor], Callable[[torch.Tensor], torch.Tensor]]] = {
    "same": (lambda t: t, lambda t: t),
    "lead1": (lambda t: t.unsqueeze(0), lambda t: t[0]),  # const, modulated conv weights
    "scalar": (lambda t: t.reshape(1), lambda t: t.reshape([])),  # noise strength
    "rgb_bias": (lambda t: t.reshape(1, -1, 1, 1), lambda t: t.reshape(-1)),
    "noise": (lambda t: t[None, None], lambda t: t[0, 0]),
}


def _resolutions(resolution: int) -> list[int]:
    return [2**log2 for log2 in range(3, int(math.log2(resolution)) + 1)]


def _modulated(nv: str, ro: str) -> list[Pair]:
    return [(f"{nv}.weight", f"{ro}.conv.weight", "lead1"), (f"{nv}.affine.weight", f"{ro}.conv.modulation.weight", "same"),
            (f"{nv}.affine.bias", f"{ro}.conv.modulation.bias", "same")]


def generator_pairs(resolution: int, mapping_layers: int) -> list[Pair]:
    """Every generator tensor: (NVlabs name, rosinality name, layout). w_avg/latent_avg is outside (top level)."""
    pairs: list[Pair] = []
    for i in range(mapping_layers):
        pairs += [(f"mapping.fc{i}.weight", f"style.{i + 1}.weight", "same"), (f"mapping.fc{i}.bias", f"style.{i + 1}.bias", "same")]
    pairs.append(("synthesis.b4.const", "input.input", "lead1"))
    convs = [("synthesis.b4.conv1", "conv1")]
    torgbs = [("synthesis.b4.torgb", "to_rgb1")]
    for k, res in enumerate(_resolutions(resolution)):
        convs += [(f"synthesis.b{res}.conv0", f"convs.{2 * k}"), (f"synthesis.b{res}.conv1", f"convs.{2 * k + 1}")]
        torgbs.append((f"synthesis.b{res}.torgb", f"to_rgbs.{k}"))
    for j, (nv, ro) in enumerate(convs):
        pairs += _modulated(nv, ro)
        pairs += [(f"{nv}.bias", f"{ro}.activate.bias", "same"), (f"{nv}.noise_strength", f"{ro}.noise.weight", "scalar"),
                  (f"{nv}.noise_const", f"noises.noise_{j}", "noise")]
    for nv, ro in torgbs:
        pairs += _modulated(nv, ro) + [(f"{nv}.bias", f"{ro}.bias", "rgb_bias")]
    return pairs


def _generator_kernels(resolution: int) -> dict[str, torch.Tensor]:
    """rosinality's upsampling blur buffers (make_kernel * factor^2): not weights, but its load_state_dict wants them."""
    up = setup_filter() * 4
    out = {}
    for k, _ in enumerate(_resolutions(resolution)):
        out[f"convs.{2 * k}.conv.blur.kernel"] = up.clone()
        out[f"to_rgbs.{k}.upsample.kernel"] = up.clone()
    return out


def discriminator_pairs(resolution: int) -> list[Pair]:
    """Every resnet discriminator tensor: (NVlabs name, rosinality name, layout)."""
    pairs: list[Pair] = [(f"b{resolution}.fromrgb.weight", "convs.0.0.weight", "same"),
                         (f"b{resolution}.fromrgb.bias", "convs.0.1.bias", "same")]
    for i, res in enumerate(reversed(_resolutions(resolution)), start=1):
        pairs += [(f"b{res}.conv0.weight", f"convs.{i}.conv1.0.weight", "same"), (f"b{res}.conv0.bias", f"convs.{i}.conv1.1.bias", "same"),
                  (f"b{res}.conv1.weight", f"convs.{i}.conv2.1.weight", "same"), (f"b{res}.conv1.bias", f"convs.{i}.conv2.2.bias", "same"),
                  (f"b{res}.skip.weight", f"convs.{i}.skip.1.weight", "same")]
    pairs += [("b4.conv.weight", "final_conv.0.weight", "same"), ("b4.conv.bias", "final_conv.1.bias", "same"),
              ("b4.fc.weight", "final_linear.0.weight", "same"), ("b4.fc.bias", "final_linear.0.bias", "same"),
              ("b4.out.weight", "final_linear.1.weight", "same"), ("b4.out.bias", "final_linear.1.bias", "same")]
    return pairs


def _discriminator_kernels(resolution: int) -> dict[str, torch.Tensor]:
    down = setup_filter()
    out = {}
    for i in range(1, len(_resolutions(resolution)) + 1):
        out[f"convs.{i}.conv2.0.kernel"] = down.clone()
        out[f"convs.{i}.skip.0.kernel"] = down.clone()
    return out


def _export(state: dict[str, torch.Tensor], pairs: list[Pair], what: str) -> dict[str, torch.Tensor]:
    try:
        return {ro: _LAYOUTS[layout][0](state[nv]).detach().to("cpu", torch.float32).clone().contiguous() for nv, ro, layout in pairs}
    except KeyError as exc:
        raise BadInput(f"{what} has no tensor {exc}: not a network rosinality's layout can hold") from None


def _import(state: dict[str, torch.Tensor], pairs: list[Pair], what: str, optional: frozenset[str] = frozenset()) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for nv, ro, layout in pairs:
        if ro not in state:
            if ro in optional:
                continue
            raise BadInput(f"rosinality checkpoint: {what} lacks tensor '{ro}'")
        out[nv] = _LAYOUTS[layout][1](state[ro])
    return {k: v.detach().to(torch.float32).contiguous() for k, v in out.items()}


# ----------------------------------------------------------------------------- what fits rosinality


def _config_problems(config: dict[str, Any], kind: str) -> list[str]:
    """Reasons a stylekit/NVlabs network config has no rosinality equivalent ([] when it has one)."""
    problems = []
    if config.get("c_dim", 0):
        problems.append("it is class-conditional (c_dim > 0)")
    if config.get("img_channels", 3) != 3:
        problems.append(f"it has {config.get('img_channels')} image channels")
    if kind == "G":
        if config.get("z_dim") != config.get("w_dim"):
            problems.append("z_dim differs from w_dim")
        if config.get("synthesis_kwargs", {}).get("architecture", "skip") != "skip":
            problems.append("its synthesis architecture is not 'skip'")
    else:
        if config.get("architecture", "resnet") != "resnet":
            problems.append("its architecture is not 'resnet'")
        epilogue = config.get("epilogue_kwargs", {})
        if epilogue.get("mbstd_group_size", 4) != 4 or epilogue.get("mbstd_num_channels", 1) != 1:
            problems.append("its minibatch-stddev layer is not group 4 x 1 channel")
    return problems


def check_rosinality_compatible(config: dict[str, Any], kind: str, source: str) -> None:
    problems = _config_problems(config, kind)
    if problems:
        raise BadInput(f"{source}: this {kind} cannot be written in rosinality's format: {'; '.join(problems)}",
                       hint="use --to safetensors or --to nvlabs-state, which keep every StyleGAN2 variant")


def rosinality_channel_note(config: dict[str, Any]) -> str | None:
    """rosinality's classes hard-code channel_max 512 and channel_base 16384 * channel_multiplier."""
    synth = config.get("synthesis_kwargs", config)
    base, cmax = int(synth.get("channel_base", 32768)), int(synth.get("channel_max", 512))
    if cmax == 512 and base % 16384 == 0:
        return None
    return (f"channel_base {base} / channel_max {cmax} differs from rosinality's built-in channel table "
            "(max 512, base 16384 x channel_multiplier): its Generator/Discriminator classes need that table edited to load it")


# ----------------------------------------------------------------------------- export


def to_rosinality(state: dict[str, torch.Tensor], img_resolution: int) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
    """NVlabs-named generator state dict -> (rosinality generator state dict, latent_avg)."""
    layers = len({m.group(1) for k in state if (m := _FC.match(k))})
    out = _export(state, generator_pairs(img_resolution, layers), "generator")
    out.update(_generator_kernels(img_resolution))
    w_avg = state.get("mapping.w_avg")
    return out, (w_avg.detach().to("cpu", torch.float32).clone() if w_avg is not None else None)


def to_rosinality_discriminator(state: dict[str, torch.Tensor], img_resolution: int) -> dict[str, torch.Tensor]:
    """NVlabs-named resnet discriminator state dict -> rosinality Discriminator state dict."""
    return {**_export(state, discriminator_pairs(img_resolution), "discriminator"), **_discriminator_kernels(img_resolution)}


# ----------------------------------------------------------------------------- import


def is_rosinality_state(state: dict[str, Any]) -> bool:
    return "input.input" in state and "conv1.conv.weight" in state and any(_STYLE.match(k) for k in state)


def is_rosinality_discriminator(state: dict[str, Any]) -> bool:
    return "convs.0.0.weight" in state and "final_conv.0.weight" in state and "final_linear.1.weight" in state


def _channel_config(channels: dict[int, int], what: str) -> tuple[int, int]:
    """(channel_base, channel_max) reproducing channels[res] = min(base // res, max) for every res."""
    resolution = max(channels)
    channel_max = max(channels.values())
    below = [r for r in sorted(channels) if channels[r] < channel_max]
    channel_base = channels[below[0]] * below[0] if below else max(32768, channel_max * resolution)
    if any(min(channel_base // r, channel_max) != c for r, c in channels.items()):
        raise BadInput(f"rosinality checkpoint: {what} channel counts {channels} do not follow min(base/res, max)")
    return channel_base, channel_max


def rosinality_config(state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Infer NVlabs Generator init kwargs from a rosinality generator state dict."""
    styles = sorted({int(m.group(1)) for k in state if (m := _STYLE.match(k))})
    if not styles or styles != list(range(1, len(styles) + 1)):
        raise BadInput("rosinality checkpoint: mapping layers style.1..N are missing or not contiguous")
    w_dim = int(state["style.1.weight"].shape[1])
    n_torgb = len({k.split(".")[1] for k in state if k.startswith("to_rgbs.")})
    resolution = 2 ** (n_torgb + 2)
    try:
        channels = {4: int(state["conv1.conv.weight"].shape[1])}
        for k, res in enumerate(_resolutions(resolution)):
            channels[res] = int(state[f"convs.{2 * k + 1}.conv.weight"].shape[1])
    except KeyError as exc:
        raise BadInput(f"rosinality checkpoint: generator lacks tensor {exc}") from None
    channel_base, channel_max = _channel_config(channels, "generator")
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
    pairs = generator_pairs(res, config["mapping_kwargs"]["num_layers"])
    noises = frozenset(ro for _, ro, layout in pairs if layout == "noise")
    out = _import(state, pairs, "generator", optional=noises)
    for nv, _ro, layout in pairs:  # checkpoints saved without noise buffers: NVlabs' const noise is then zero
        if layout == "noise" and nv not in out:
            r = int(nv.split(".")[1][1:])
            out[nv] = torch.zeros(r, r, device="cpu")
    if latent_avg is not None:
        out["mapping.w_avg"] = latent_avg.detach().to(torch.float32).reshape(-1).clone()  # its own copy per network
    return out, config


def from_rosinality_discriminator(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """rosinality Discriminator state dict -> (NVlabs-named state dict, init kwargs)."""
    blocks = sorted(int(m.group(1)) for k in state if (m := _D_BLOCK.match(k)))
    if not blocks or blocks != list(range(1, len(blocks) + 1)):
        raise BadInput("rosinality checkpoint: discriminator blocks convs.1..N are missing or not contiguous")
    resolution = 2 ** (len(blocks) + 2)
    channels = {4: int(state["final_conv.0.weight"].shape[0])}
    for i, res in enumerate(reversed(_resolutions(resolution)), start=1):
        channels[res] = int(state[f"convs.{i}.conv1.0.weight"].shape[0])
    channel_base, channel_max = _channel_config(channels, "discriminator")
    config = dict(c_dim=0, img_resolution=resolution, img_channels=3, architecture="resnet", channel_base=channel_base,
                  channel_max=channel_max, num_fp16_res=0, conv_clamp=None, cmap_dim=None, block_kwargs={},
                  mapping_kwargs={}, epilogue_kwargs=dict(mbstd_group_size=4, mbstd_num_channels=1))
    return _import(state, discriminator_pairs(resolution), "discriminator"), config
