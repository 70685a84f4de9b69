"""Write a loaded StyleGAN2 network in the formats other tools read (the inverse of load.py).

    safetensors    stylekit's own format (G, G_ema, D + init kwargs in the metadata): `save_network`
    rosinality     torch.save({"g_ema", "g", "d", "latent_avg"}): what rosinality/stylegan2-pytorch, pSp,
                   e4e, StyleGAN-NADA and StyleCLIP read; tensors only, so weights_only=True loads it
    nvlabs-state   torch.save(G_ema.state_dict()) with NVlabs parameter names + the Generator init
                   kwargs as JSON next to it; NVlabs code loads it with
                   `Generator(**json.load(f)).load_state_dict(torch.load(pt, weights_only=True))`
                   (training/networks.py's Generator for StyleGAN2, networks_stylegan3.py's for StyleGAN3)

Every writer is atomic and returns the files it wrote. `EXPORTERS` is the registry the CLI lists.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from stylekit.errors import BadInput
from stylekit.io.atomic import write_atomic, write_text_atomic
from stylekit.io.console import get_console
from stylekit.nets.stylegan2.load import LoadedNetwork, nvlabs_state_config_path, save_network
from stylekit.nets.stylegan2.rosinality import (
    check_rosinality_compatible,
    rosinality_channel_note,
    to_rosinality,
    to_rosinality_discriminator,
)


def _just(path: Path) -> list[Path]:
    return [path]


@dataclass(frozen=True)
class Exporter:
    write: Callable[[LoadedNetwork, Path], list[Path]]
    suffixes: tuple[str, ...]
    summary: str
    files: Callable[[Path], list[Path]] = _just  # every file `write(net, path)` writes, known before writing


def _cpu_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").clone().contiguous() for k, v in module.state_dict().items()}


def _torch_save(obj: object, path: Path) -> Path:
    return write_atomic(path, lambda tmp: torch.save(obj, tmp))


def write_safetensors(net: LoadedNetwork, path: Path) -> list[Path]:
    extra = {**net.extra, "converted_from": net.source, "source_format": net.format}
    return [save_network(path, G=net.G, G_ema=net.G_ema, D=net.D, extra=extra)]


def write_rosinality(net: LoadedNetwork, path: Path) -> list[Path]:

    G = net.generator
    if net.architecture != "stylegan2":
        raise BadInput(f"--to rosinality: {net.source} is a {net.architecture.replace('stylegan', 'StyleGAN')} network, and "
                       "rosinality's format holds StyleGAN2 generators only",
                       hint="convert it --to safetensors or --to nvlabs-state")
    check_rosinality_compatible(G.init_kwargs, "G", net.source)
    res = G.img_resolution
    g_ema, latent_avg = to_rosinality(_cpu_state(G), res)
    ckpt: dict[str, object] = {"g_ema": g_ema}
    if latent_avg is not None:
        ckpt["latent_avg"] = latent_avg
    if net.G is not None and net.G_ema is not None:
        ckpt["g"] = to_rosinality(_cpu_state(net.G), res)[0]
    if net.D is not None:
        try:
            check_rosinality_compatible(net.D.init_kwargs, "D", net.source)
            ckpt["d"] = to_rosinality_discriminator(_cpu_state(net.D), res)
        except BadInput as exc:
            get_console().warn(f"{exc.message}; writing the generator only")
    note = rosinality_channel_note(G.init_kwargs)
    if note:
        get_console().warn(f"{path.name}: {note}")
    return [_torch_save(ckpt, path)]


def write_nvlabs_state(net: LoadedNetwork, path: Path) -> list[Path]:
    G = net.generator
    config_path = nvlabs_state_config_path(path)
    kwargs = json.dumps(G.init_kwargs, indent=2) + "\n"
    return [_torch_save(_cpu_state(G), path), write_text_atomic(config_path, kwargs)]


EXPORTERS: dict[str, Exporter] = {
    "safetensors": Exporter(write_safetensors, (".safetensors",), "stylekit's own format (G, G_ema, D)"),
    "rosinality": Exporter(write_rosinality, (".pt", ".pth"), "rosinality/stylegan2-pytorch .pt (g_ema, g, d, latent_avg)"),
    "nvlabs-state": Exporter(write_nvlabs_state, (".pt", ".pth"), "NVlabs-named G state dict .pt + init kwargs .json",
                             lambda path: [path, nvlabs_state_config_path(path)]),
}
