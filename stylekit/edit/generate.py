"""`stylekit generate`: images (and their w latents) from seeds, as NVlabs generate.py does.

A seed maps to z = np.random.RandomState(seed).randn(1, z_dim), so a seed gives the image users
know from the NVlabs tools (same network, truncation and noise mode).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from stylekit.checks import check_fits
from stylekit.configs.stylegan import GenerateConfig
from stylekit.io.console import get_console
from stylekit.io.paths import Input, refuse_out_overlap
from stylekit.nets.stylegan2.sampling import (  # noqa: F401 - re-exported for the editing commands
    class_labels,
    map_seeds,
    seed_to_z,
    seeds_to_z,
    synthesize,
    to_uint8,
)

if TYPE_CHECKING:
    from stylekit.nets.stylegan2.load import LoadedNetwork


@dataclass
class GenerateResult:
    out: str
    network: str
    resolution: int
    images: list[str] = field(default_factory=list)
    grid: str | None = None
    latents: str | None = None
    up_to_date: bool = False  # a rerun of the same options into the same --out: nothing was redone
    standins: list[str] = field(default_factory=list)  # labels of random-init stand-ins used (not meaningful results)
    seconds: float = 0.0




def to_pil(img: torch.Tensor) -> list[Image.Image]:
    arr = to_uint8(img)
    return [Image.fromarray(a if a.shape[-1] != 1 else a[..., 0]) for a in arr]


def to_unit(img: torch.Tensor) -> torch.Tensor:
    """[-1, 1] images -> [0, 1] quantised like the PNGs (for grids)."""
    return torch.from_numpy(to_uint8(img)).permute(0, 3, 1, 2).float() / 255.0


def check_amp(amp: bool, device: torch.device) -> bool:
    """`--amp` where the device has a native low-precision type; a warning and fp32 elsewhere."""
    from stylekit.device import amp_dtype

    if amp and amp_dtype(device) is None:
        get_console().warn(f"--amp: {device} has no native low-precision type; running in fp32")
        return False
    return amp


def load_generator(spec: str, device: torch.device, option: str = "--network") -> tuple[LoadedNetwork, str | None]:
    """The network `spec` names on `device`, and its stand-in label when it is `random:RES`."""
    from stylekit.edit.outdir import standin
    from stylekit.nets.stylegan2.load import load_network

    loaded = load_network(spec, device)
    return loaded, standin(spec, option)


def generate_options(cfg: GenerateConfig, network_id: str) -> dict[str, object]:
    """What shapes generate's outputs (its rerun recipe)."""
    doc = cfg.to_dict()
    for key in ("out", "device", "batch", "fresh"):
        doc.pop(key)
    return {**doc, "network": network_id}


def run_generate(cfg: GenerateConfig) -> GenerateResult:
    """Write seedNNNN.png + seedNNNN.npz per seed, latents.npz for all, and grid.png (optional)."""
    from stylekit.data.grid import save_grid
    from stylekit.device import resolve_device
    from stylekit.edit.latents import save_latents
    from stylekit.edit.outdir import claim_out, network_identity, warn_standins
    from stylekit.io.atomic import save_image_atomic

    start = time.monotonic()
    seeds = list(dict.fromkeys(cfg.seeds))
    out = Path(cfg.out)
    refuse_out_overlap(out, [Input("--network", cfg.network)])
    device = resolve_device(cfg.device)
    loaded, label = load_generator(cfg.network, device)
    G = loaded.generator
    pixels = 3 * G.img_resolution**2 * 4 if cfg.grid else 0  # the grid keeps every image (float32)
    check_fits(f"generate: {len(seeds)} seeds at {G.img_resolution} px", len(seeds) * (pixels + G.num_ws * G.w_dim * 4),
               hint="use fewer --seeds per run, or --no-grid")
    ws = map_seeds(G, seeds, cfg.trunc, cfg.trunc_cutoff, cfg.class_idx)  # checks --trunc-cutoff and --class
    result = GenerateResult(out=str(out), network=loaded.source, resolution=G.img_resolution, standins=[label] if label else [])
    with claim_out(out, "generate", generate_options(cfg, network_identity(cfg.network, loaded.source)), cfg.fresh) as claim:
        warn_standins(result.standins)
        if claim.up_to_date:
            get_console().log(f"generate: {out} is up to date (same options; --fresh redoes it)")
            return _recorded_result(result, out, seeds, cfg.grid, start)
        if len(seeds) < len(cfg.seeds):
            get_console().warn(f"--seeds repeats {len(cfg.seeds) - len(seeds)} seed(s); each image is generated once")
        amp = check_amp(cfg.amp, device)
        units = []
        with get_console().progress(len(seeds), "generate") as task:
            for i in range(0, len(seeds), cfg.batch):
                chunk = seeds[i : i + cfg.batch]
                imgs = synthesize(G, ws[i : i + len(chunk)], cfg.noise_mode, chunk, cfg.batch, amp)
                for seed, pil, w in zip(chunk, to_pil(imgs), ws[i : i + len(chunk)], strict=True):
                    path = out / f"seed{seed:04d}.png"
                    save_image_atomic(path, pil)
                    save_latents(out / f"seed{seed:04d}.npz", w[None], seeds=np.array([seed]), trunc=cfg.trunc)
                    result.images.append(str(path))
                if cfg.grid:
                    units.append(to_unit(imgs))
                task.advance(len(chunk))
        z = seeds_to_z(seeds, G.z_dim)
        result.latents = str(save_latents(out / "latents.npz", ws, seeds=np.array(seeds), z=z, trunc=cfg.trunc))
        if cfg.grid:
            result.grid = str(save_grid(list(torch.cat(units)), out / "grid.png"))
        claim.finish([*result.images, *[p.with_suffix(".npz") for p in map(Path, result.images)], result.latents,
                      *([result.grid] if result.grid else [])])
    result.seconds = round(time.monotonic() - start, 3)
    return result


def _recorded_result(result: GenerateResult, out: Path, seeds: list[int], grid: bool, start: float) -> GenerateResult:
    """The result of an up-to-date rerun: the files the finished run wrote."""
    result.images = [str(out / f"seed{seed:04d}.png") for seed in seeds]
    result.latents = str(out / "latents.npz")
    result.grid = str(out / "grid.png") if grid else None
    result.up_to_date = True
    result.seconds = round(time.monotonic() - start, 3)
    return result
