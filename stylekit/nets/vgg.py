"""Named-layer VGG16/VGG19 features: the perceptual backbone of transfer, score, invert and pix2pix.

Layer names follow the Gatys / jcjohnson convention, per block b and convolution i:
`conv{b}_{i}`, `relu{b}_{i}`, and `pool{b}` after each block (pool1 ... pool5). The module keeps
torchvision's `features.N` numbering, so torchvision ImageNet state dicts load directly, and it is
built only up to the deepest requested layer (nothing after it is computed).

Inputs are RGB in [0, 1], shape [N, 3, H, W]; ImageNet mean/std normalisation happens inside
(`normalize=True`). ReLUs are not in-place, so a `conv*` output is the pre-activation even when the
following `relu*` is also requested. The network is frozen (eval, requires_grad False); gradients
still flow to the input, which is what style transfer and inversion optimise.

Precision: `precision="bf16"` runs the convolutions under bf16 autocast (CPU or CUDA) and returns
fp32 features; `"auto"` picks bf16 only where the hardware does bf16 natively (CPU flags
avx512_bf16 / amx_bf16, or a bf16-capable GPU) — on other CPUs bf16 gains little and costs accuracy.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

from stylekit.device import native_bf16
from stylekit.errors import BadInput
from stylekit.io.state_dict import read_state_dict
from stylekit.standins import is_random
from stylekit.weights import is_remote, weights_path

# Convolutions per block (torchvision configs "D" and "E"); channel widths are shared.
_BLOCKS: dict[str, tuple[int, ...]] = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
_WIDTHS = (64, 128, 256, 512, 512)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PRECISIONS = ("auto", "fp32", "bf16")


def _layer_names(arch: str) -> list[str]:
    names: list[str] = []
    for block, convs in enumerate(_BLOCKS[arch], start=1):
        for i in range(1, convs + 1):
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
        names.append(f"pool{block}")
    return names


VGG_LAYERS: dict[str, list[str]] = {arch: _layer_names(arch) for arch in _BLOCKS}
"""Every layer name per architecture, in forward order; the position is torchvision's features index."""


def _conv_indices(arch: str) -> list[int]:
    return [i for i, n in enumerate(VGG_LAYERS[arch]) if n.startswith("conv")]


def check_arch(arch: str) -> str:
    if arch not in _BLOCKS:
        raise BadInput(f"unknown VGG architecture '{arch}'", hint=f"use one of: {', '.join(_BLOCKS)}")
    return arch


def check_layers(arch: str, layers: Iterable[str], option: str = "layer") -> list[str]:
    """Validate layer names; BadInput (exit 2) lists every valid name for `arch`."""
    check_arch(arch)
    layers = [str(layer).strip() for layer in layers]
    if not layers:
        raise BadInput(f"no {option} names given", hint=f"valid {arch} names: {', '.join(VGG_LAYERS[arch])}")
    unknown = [layer for layer in layers if layer not in VGG_LAYERS[arch]]
    if unknown:
        raise BadInput(
            f"unknown {arch} {option} name(s): {', '.join(unknown)}",
            hint=f"valid {arch} names: {', '.join(VGG_LAYERS[arch])}",
        )
    return layers


def pools_before(arch: str, layer: str) -> int:
    """How many 2x poolings happen up to and including `layer` (its spatial stride is 2**this)."""
    names = VGG_LAYERS[check_arch(arch)]
    return sum(1 for n in names[: names.index(layer) + 1] if n.startswith("pool"))


def min_input_side(arch: str, layers: Iterable[str]) -> int:
    """The smallest image side for which every requested layer still has at least 1x1 pixels."""
    return 2 ** max(pools_before(arch, layer) for layer in layers)


def gram_matrix(feat: torch.Tensor) -> torch.Tensor:
    """Gram matrix of [N, C, H, W] (or [C, H, W]) features, divided by C*H*W (as jcjohnson/neural-style).

    The result is [N, C, C] in fp32. Dividing by the element count makes the value independent of
    image size, so one style weight works at every resolution.
    """
    if feat.dim() == 3:
        feat = feat.unsqueeze(0)
    n, c, h, w = feat.shape
    f = feat.float().reshape(n, c, h * w)
    return torch.bmm(f, f.transpose(1, 2)).div_(c * h * w)


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """'auto' -> 'bf16' where bf16 is native (stylekit.device.native_bf16: no emulation), else 'fp32'. Others pass through."""
    if precision not in PRECISIONS:
        raise BadInput(f"unknown precision '{precision}'", hint=f"use one of: {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    return "bf16" if native_bf16(device) else "fp32"


def _resolve_weights_file(weights: str | os.PathLike[str], arch: str) -> Path:
    """A local file is used as is; anything else goes to the weights registry (exit 3 when missing)."""
    text = str(weights)
    if text == "auto":
        text = arch

    if is_remote(text):
        return weights_path(text)
    path = Path(text).expanduser()
    if path.is_file():
        return path
    if path.suffix or os.sep in text or "/" in text:
        if path.exists():
            raise BadInput(f"VGG weights {path} is not a file", hint="pass a .pth or .safetensors state dict")
        raise BadInput(f"VGG weights file {path} does not exist", hint=f"check the path, or use the registry name '{arch}'")
    return weights_path(text)


def locate_weights(weights: str | os.PathLike[str], arch: str) -> str:
    """Where `weights` come from, checked without loading them: `random` (the stand-in), or the file (BadInput
    for a missing path, exit 3 for registry weights not to be had)."""
    return str(weights) if is_random(str(weights)) else str(_resolve_weights_file(weights, arch))


def _features_only(data: dict[str, torch.Tensor]) -> dict[int, dict[str, torch.Tensor]]:
    """Map 'features.N.weight' / 'module.features.N.weight' / bare 'N.weight' to {N: {weight, bias}}."""
    out: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in data.items():
        parts = key.split(".")
        if parts and parts[0] == "module":
            parts = parts[1:]
        if parts and parts[0] == "features":
            parts = parts[1:]
        if len(parts) == 2 and parts[0].isdigit() and parts[1] in ("weight", "bias"):
            out.setdefault(int(parts[0]), {})[parts[1]] = value
    return out


def load_vgg_weights(path: Path, arch: str, n_layers: int) -> dict[str, torch.Tensor]:
    """The conv weights of the first `n_layers` layers as a state dict for `VGGFeatures.body`."""
    convs = _features_only(read_state_dict(path, "VGG state dict", "pass a torchvision VGG state dict (.pth) or a .safetensors file with features.N.weight keys"))
    hint = f"pass a torchvision {arch} state dict (features.N.weight keys), e.g. from 'stylekit download {arch}'"
    if not convs:
        raise BadInput(f"{path} is not a VGG state dict: no features.N.weight keys", hint=hint)
    present = sorted(convs)
    for other in _BLOCKS:
        if other != arch and present == _conv_indices(other):
            raise BadInput(f"{path} holds {other} weights but --arch is {arch}", hint=f"use --arch {other} or {arch} weights")
    names = VGG_LAYERS[arch]
    out: dict[str, torch.Tensor] = {}
    c_in = 3
    for index, name in enumerate(names[:n_layers]):
        if not name.startswith("conv"):
            continue
        c_out = _WIDTHS[int(name[4]) - 1]
        entry = convs.get(index, {})
        for kind, shape in (("weight", (c_out, c_in, 3, 3)), ("bias", (c_out,))):
            tensor = entry.get(kind)
            if tensor is None:
                raise BadInput(f"{path} is not a {arch} state dict: features.{index}.{kind} ({name}) is missing", hint=hint)
            if tuple(tensor.shape) != shape:
                raise BadInput(
                    f"{path} is not a {arch} state dict: features.{index}.{kind} ({name}) has shape "
                    f"{tuple(tensor.shape)}, expected {shape}",
                    hint=hint,
                )
            out[f"{index}.{kind}"] = tensor.float()
        c_in = c_out
    return out


class VGGFeatures(nn.Module):
    """Frozen VGG16/VGG19 returning a dict of named intermediate features.

    Args:
        arch: "vgg19" or "vgg16".
        layers: names to return (see `VGG_LAYERS[arch]`); the network stops after the deepest one.
        weights: "auto" (the registry entry named like `arch`), a registry name ("vgg19"), a local
            .pth/.safetensors path, or None for seeded random init (tests, timing).
        pooling: "max" (as trained) or "avg" (Gatys et al. found smoother results with it).
        normalize: apply ImageNet mean/std inside; inputs are then RGB in [0, 1].
        precision: "fp32", "bf16" (autocast) or "auto" (bf16 only on bf16-native hardware).
        channels_last: run convolutions in NHWC (faster on CPU oneDNN and on tensor cores); the input
            is converted inside `forward`, so callers keep ordinary contiguous tensors.
        seed: random-init seed when `weights is None`.
    """

    def __init__(
        self,
        arch: str = "vgg19",
        layers: Iterable[str] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"),
        weights: str | os.PathLike[str] | None = "auto",
        pooling: str = "max",
        normalize: bool = True,
        precision: str = "fp32",
        channels_last: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.arch = check_arch(arch)
        self.layers = check_layers(arch, layers)
        if pooling not in ("max", "avg"):
            raise BadInput(f"unknown pooling '{pooling}'", hint="use max or avg")
        if precision not in PRECISIONS:
            raise BadInput(f"unknown precision '{precision}'", hint=f"use one of: {', '.join(PRECISIONS)}")
        self.pooling = pooling
        self.precision = precision
        self.channels_last = channels_last
        self.normalize = normalize
        names = VGG_LAYERS[arch]
        depth = max(names.index(layer) for layer in self.layers) + 1
        self.names = names[:depth]

        modules: list[nn.Module] = []
        c_in = 3
        for name in self.names:
            if name.startswith("conv"):
                c_out = _WIDTHS[int(name[4]) - 1]
                modules.append(nn.Conv2d(c_in, c_out, kernel_size=3, padding=1))
                c_in = c_out
            elif name.startswith("relu"):
                modules.append(nn.ReLU(inplace=False))
            else:
                modules.append(nn.MaxPool2d(2, 2) if pooling == "max" else nn.AvgPool2d(2, 2))
        self.body = nn.Sequential(*modules)

        if weights is None or is_random(weights):  # `random`: the stand-in by name (stylekit/standins.py)
            generator = torch.Generator().manual_seed(seed)
            for module in self.body:
                if isinstance(module, nn.Conv2d):
                    nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu", generator=generator)
                    nn.init.zeros_(module.bias)
            self.weights_source = f"random(seed={seed})"
        else:
            path = _resolve_weights_file(weights, arch)
            self.body.load_state_dict(load_vgg_weights(path, arch, depth), strict=True)
            self.weights_source = str(path)

        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        if channels_last:
            self.body.to(memory_format=torch.channels_last)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGGFeatures:
        """Always eval: the extractor is frozen (kept for API compatibility with nn.Module)."""
        return super().train(False)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if x.dim() != 4 or x.shape[1] != 3:
            raise BadInput(f"VGGFeatures expects [N, 3, H, W] RGB input, got shape {tuple(x.shape)}")
        if self.normalize:
            x = (x - self.mean) / self.std
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        precision = resolve_precision(self.precision, x.device)
        wanted = set(self.layers)
        out: dict[str, torch.Tensor] = {}
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            for name, module in zip(self.names, self.body, strict=True):
                x = module(x)
                if name in wanted:
                    out[name] = x
        return {name: out[name].float() for name in self.layers}
