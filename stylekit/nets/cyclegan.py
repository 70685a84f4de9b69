"""CycleGAN's networks: the plain ResNet generator, an unconditional PatchGAN, and junyanz key names.

The generator is `stylekit.nets.resnet_gen.ResnetGenerator` without reference conditioning
(`style_dim=0`): junyanz's resnet_9blocks with instance norm and no dropout (the CycleGAN default),
11,378,179 parameters at ngf 64. The discriminator is `stylekit.nets.patchgan.PatchGAN` fed one image
(3 channels, no A|B concatenation): the 70x70 PatchGAN, 2,764,737 parameters at ndf 64 with n_layers 3.

junyanz's published generators (`style_monet.pth`, ...) are plain state dicts of his
`ResnetGenerator.model` Sequential: `model.1.weight` (stem conv), `model.4` and `model.7` (the two
stride-2 convs), `model.<10+i>.conv_block.{1,5}` (residual block i; `{1,6}` with dropout),
`model.<10+n>` and `model.<13+n>` (the two transposed convs), `model.<17+n>` (output conv, after
its reflection pad), n = n_blocks: `model.26` for resnet_9blocks. `junyanz_key_map` names each of
them in stylekit's module; `load_junyanz_state` loads a file with every key matched (instance-norm
running statistics that PyTorch < 0.4 wrote are unused by `track_running_stats=False` layers and
dropped, as junyanz's own loader does).
"""

from __future__ import annotations

import random
import re

import torch
from torch import nn

from stylekit.errors import BadInput
from stylekit.nets.patchgan import PatchGAN
from stylekit.nets.resnet_gen import ResnetGenerator
from stylekit.nets.unet import Norm

N_BLOCKS = 9
_NORM_STATS = ("running_mean", "running_var", "num_batches_tracked")


def cycle_generator(size: int = 256, ngf: int = 64, n_blocks: int = N_BLOCKS, norm: Norm = "instance",
                    dropout: bool = False) -> ResnetGenerator:
    """One CycleGAN generator (images in [-1, 1], any side divisible by 4; `size` only sets the check)."""
    return ResnetGenerator(size, 3, 3, ngf=ngf, norm=norm, dropout=dropout, style_dim=0, n_blocks=n_blocks)


class PatchDiscriminator(nn.Module):
    """The PatchGAN on a single image: [N, 3, H, W] -> [N, 1, h, w] real/fake logits."""

    def __init__(self, ndf: int = 64, n_layers: int = 3, norm: Norm = "instance") -> None:
        super().__init__()
        self.patch = PatchGAN(3, ndf, n_layers, norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.patch.net(x)


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ------------------------------------------------------------------------------ junyanz state dicts
def junyanz_key_map(n_blocks: int = N_BLOCKS, dropout: bool = False) -> dict[str, str]:
    """junyanz `ResnetGenerator` parameter name -> stylekit `cycle_generator` parameter name."""
    second = 6 if dropout else 5
    pairs = {1: "stem.1", 4: "stem.4", 7: "stem.7", 10 + n_blocks: "ups.0.conv", 13 + n_blocks: "ups.1.conv",
             17 + n_blocks: "head.1"}
    out: dict[str, str] = {}
    for index, ours in pairs.items():
        for what in ("weight", "bias"):
            out[f"model.{index}.{what}"] = f"{ours}.{what}"
    for i in range(n_blocks):
        for theirs, ours in ((1, 1), (second, second)):
            for what in ("weight", "bias"):
                out[f"model.{10 + i}.conv_block.{theirs}.{what}"] = f"blocks.{i}.body.{ours}.{what}"
    return out


def _norm_stat_keys(n_blocks: int, dropout: bool) -> set[str]:
    """Names junyanz's instance-norm layers had when PyTorch < 0.4 gave them running statistics."""
    norms = [2, 5, 8, 11 + n_blocks, 14 + n_blocks]
    names = [f"model.{i}" for i in norms]
    names += [f"model.{10 + i}.conv_block.{k}" for i in range(n_blocks) for k in (2, 7 if dropout else 6)]
    return {f"{name}.{stat}" for name in names for stat in _NORM_STATS}


def infer_junyanz_arch(state: dict[str, torch.Tensor]) -> tuple[int, int, bool]:
    """(ngf, n_blocks, dropout) of a junyanz ResnetGenerator state dict, from its key names and shapes."""
    blocks = {int(m.group(1)) for k in state if (m := re.fullmatch(r"model\.(\d+)\.conv_block\.\d+\.weight", k))}
    stem = state.get("model.1.weight")
    if not blocks or stem is None or stem.dim() != 4:
        raise BadInput("not a junyanz ResnetGenerator state dict (no model.1.weight / model.N.conv_block keys)",
                       hint="pass a CycleGAN generator .pth (e.g. style_monet) or a train-cyclegan run directory")
    n_blocks = len(blocks)
    dropout = any(re.fullmatch(r"model\.\d+\.conv_block\.6\.weight", k) for k in state)
    return int(stem.shape[0]), n_blocks, dropout


def load_junyanz_state(generator: ResnetGenerator, state: dict[str, torch.Tensor], n_blocks: int, dropout: bool,
                       source: str) -> None:
    """Load a junyanz state dict into `generator`; BadInput naming the first unmatched or misshapen key."""
    mapping = junyanz_key_map(n_blocks, dropout)
    ignorable = _norm_stat_keys(n_blocks, dropout)
    unexpected = sorted(k for k in state if k not in mapping and k not in ignorable)
    missing = sorted(k for k in mapping if k not in state)
    hint = "pass a junyanz CycleGAN ResnetGenerator .pth (e.g. `stylekit download style_monet`)"
    if unexpected or missing:
        detail = (f"unexpected keys {unexpected[:3]}" if unexpected else "") + \
                 ("; " if unexpected and missing else "") + (f"missing keys {missing[:3]}" if missing else "")
        raise BadInput(f"{source}: does not match a {n_blocks}-block ResNet generator: {detail}", hint=hint)
    ours = generator.state_dict()
    converted: dict[str, torch.Tensor] = {}
    for theirs, name in mapping.items():
        if ours[name].shape != state[theirs].shape:
            raise BadInput(f"{source}: {theirs} has shape {tuple(state[theirs].shape)}, expected {tuple(ours[name].shape)}",
                           hint=hint)
        converted[name] = state[theirs]
    generator.load_state_dict(converted, strict=True)


def to_junyanz_state(generator: ResnetGenerator, n_blocks: int, dropout: bool) -> dict[str, torch.Tensor]:
    """The generator's weights under junyanz's names (the inverse of `load_junyanz_state`)."""
    ours = generator.state_dict()
    return {theirs: ours[name] for theirs, name in junyanz_key_map(n_blocks, dropout).items()}


# ------------------------------------------------------------------------------------- image pool
class ImagePool(nn.Module):
    """junyanz's history of generated images (Shrivastava et al. 2017), as module buffers so a
    checkpoint carries it: until `capacity` images are stored, each new image is stored and returned;
    after that, with probability 1/2 a stored image is returned and replaced by the new one, otherwise
    the new one is returned. The coin flips and slots come from Python's `random` (restored on resume);
    no value is read from the device."""

    def __init__(self, capacity: int, size: int) -> None:
        super().__init__()
        self.capacity = capacity
        self.register_buffer("images", torch.zeros(capacity, 3, size, size, device="cpu"))
        self.register_buffer("count", torch.zeros((), dtype=torch.int64, device="cpu"))
        self._count = 0  # host copy of `count`; synced in `load_state_dict`

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        key = prefix + "count"
        if key in state_dict:
            self._count = int(state_dict[key])

    @torch.no_grad()
    def query(self, batch: torch.Tensor) -> torch.Tensor:

        batch = batch.detach()  # the discriminator step never backpropagates into the generators
        if self.capacity == 0:
            return batch
        picked = []
        for image in batch:
            if self._count < self.capacity:
                self.images[self._count].copy_(image)
                self._count += 1
                picked.append(image)
            elif random.random() > 0.5:
                slot = random.randrange(self.capacity)
                picked.append(self.images[slot].to(batch.dtype, copy=True))
                self.images[slot].copy_(image)
            else:
                picked.append(image)
        self.count.fill_(self._count)
        return torch.stack(picked)
