"""`stylekit convert`: write any network stylekit loads in another tool's format, and check the result.

The input is anything `load_network` accepts (registry name, NVlabs .pkl, rosinality .pt, stylekit
.safetensors, an nvlabs-state .pt, a finetune-stylegan run dir, a blend-layers output). After writing,
the output is loaded back through the same loader and both generators render the same seeds with
constant noise and truncation 0.7; `max_abs_diff` is the largest pixel difference (0 for every format
on networks without conv_clamp; see docs/stylegan.md).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from stylekit.configs.convert import ConvertConfig
from stylekit.edit.generate import seeds_to_z
from stylekit.edit.outdir import standin, warn_standins
from stylekit.errors import BadInput
from stylekit.io.identify import describe
from stylekit.io.outpath import refuse_existing
from stylekit.nets.stylegan2.export import EXPORTERS
from stylekit.nets.stylegan2.load import load_network, resolve_network_path
from stylekit.nets.stylegan2.networks import Generator

if TYPE_CHECKING:
    from stylekit.nets.stylegan2.load import LoadedNetwork

VERIFY_SEEDS = (0, 1)


def check_output(cfg: ConvertConfig) -> None:
    """--out fits --to (its suffix), is not a folder and is not the input itself."""

    suffixes = EXPORTERS[cfg.to].suffixes
    if cfg.out.suffix.lower() not in suffixes:
        raise BadInput(f"--out {cfg.out}: a {cfg.to} file ends in {' or '.join(suffixes)}",
                       hint=f"e.g. --out {cfg.out.with_suffix(suffixes[0]).name}")
    if cfg.out.is_dir():
        raise BadInput(f"--out {cfg.out} is a directory", hint="give the output file name")
    source = Path(cfg.network).expanduser()
    if source.exists() and source.resolve() == cfg.out.resolve():
        raise BadInput(f"--out {cfg.out} is the input network itself", hint="write the converted network to another file")


@dataclass
class ConvertResult:
    source: str
    source_format: str
    to: str
    files: list[str]
    networks: list[str]  # which of G, G_ema, D the input held
    resolution: int
    max_abs_diff: float | None = None  # None: --no-verify
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    standins: list[str] = field(default_factory=list)  # labels of random-init stand-ins used


@torch.no_grad()
def render_seeds(G: Generator, seeds: tuple[int, ...] = VERIFY_SEEDS) -> torch.Tensor:
    """Images for `seeds` (NVlabs z, truncation 0.7, constant noise; class 0 for conditional nets)."""

    z = seeds_to_z(list(seeds), G.z_dim)
    c = torch.zeros(len(seeds), G.c_dim, device=next(G.parameters()).device) if G.c_dim else None
    if c is not None:
        c[:, 0] = 1
    return G(z, c, truncation_psi=0.7, noise_mode="const")


def _load(network: str) -> LoadedNetwork:

    try:
        net = load_network(network, device="cpu")
    except BadInput as exc:
        path = Path(network).expanduser()
        if not path.exists():
            raise
        raise BadInput(f"{exc.message} (the input is {describe(path)})",
                       hint=exc.hint or "pass a StyleGAN2 network: NVlabs .pkl, rosinality .pt, stylekit .safetensors or a finetune-stylegan run") from None
    if net.G is None and net.G_ema is None:
        what = "a discriminator only" if net.D is not None else "no network"
        raise BadInput(f"{resolve_network_path(network)}: holds {what} ({net.format} format); convert needs a generator",
                       hint="pass the file with G/G_ema (a network snapshot, not a discriminator checkpoint)")
    return net


def run_convert(cfg: ConvertConfig) -> ConvertResult:

    t0 = time.monotonic()
    check_output(cfg)
    exporter = EXPORTERS[str(cfg.to)]
    refuse_existing(exporter.files(cfg.out), replace=cfg.fresh)  # the sidecar .json too, before anything is read or written
    net = _load(cfg.network)
    label = standin(cfg.network, "NETWORK")
    warn_standins([label] if label else [])
    files = exporter.write(net, cfg.out)
    diff = None
    if cfg.verify:
        back = load_network(cfg.out, device="cpu")
        diff = float((render_seeds(back.generator) - render_seeds(net.generator)).abs().max())
    notes = []
    if net.generator.init_kwargs.get("synthesis_kwargs", {}).get("conv_clamp") and cfg.to == "rosinality":
        notes.append("conv_clamp is not part of rosinality's format: outputs match while activations stay below the clamp")
    return ConvertResult(
        source=net.source, source_format=net.format, to=str(cfg.to), files=[str(f) for f in files],
        networks=[k for k in ("G", "G_ema", "D") if getattr(net, k) is not None], resolution=net.generator.img_resolution,
        max_abs_diff=diff, seconds=round(time.monotonic() - t0, 3), notes=notes, standins=[label] if label else [],
    )
