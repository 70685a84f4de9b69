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
from stylekit.data.grid import save_grid
from stylekit.device import amp_dtype
from stylekit.edit.latents import save_latents
from stylekit.edit.outdir import claim_out, network_identity, standin, warn_standins
from stylekit.errors import BadInput
from stylekit.io.atomic import save_image_atomic
from stylekit.io.console import get_console
from stylekit.io.paths import Input, refuse_out_overlap
from stylekit.nets.stylegan2.load import load_network
from stylekit.nets.stylegan2.sampling import (  # noqa: F401 - re-exported for the editing commands
    class_labels,
    map_seeds,
    seed_to_z,
    seeds_to_z,
    synthesize,
    to_uint8,
)
from stylekit.nets.stylegan3.networks import input_transform
from stylekit.train.distributed import agree, distributed_job, gather_rows, shard
from stylekit.train.shares import on_main, run_share

if TYPE_CHECKING:
    from stylekit.nets.stylegan2.load import LoadedNetwork
    from stylekit.train.distributed import DistInfo


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
    per_rank: list[int] = field(default_factory=list)  # under torchrun: seeds each rank generated, in rank order


def to_pil(img: torch.Tensor) -> list[Image.Image]:
    return uint8_to_pil(to_uint8(img))


def uint8_to_pil(arr: np.ndarray) -> list[Image.Image]:
    """uint8 [N, H, W, C] -> N PIL images (grey for one channel)."""
    return [Image.fromarray(a if a.shape[-1] != 1 else a[..., 0]) for a in arr]


def to_unit(img: torch.Tensor) -> torch.Tensor:
    """[-1, 1] images -> [0, 1] quantised like the PNGs (for grids)."""
    return torch.from_numpy(to_uint8(img)).permute(0, 3, 1, 2).float() / 255.0


def check_amp(amp: bool, device: torch.device) -> bool:
    """`--amp` where the device has a native low-precision type; a warning and fp32 elsewhere."""

    if amp and amp_dtype(device) is None:
        get_console().warn(f"--amp: {device} has no native low-precision type; running in fp32")
        return False
    return amp


def load_generator(spec: str, device: torch.device, option: str = "--network") -> tuple[LoadedNetwork, str | None]:
    """The network `spec` names on `device`, and its stand-in label when it is `random:RES`."""

    loaded = load_network(spec, device)
    return loaded, standin(spec, option)


def move_input(G: torch.nn.Module, translate: tuple[float, ...], rotate: float) -> None:
    """Rotate and translate the images of a StyleGAN3 generator (its input transform, as gen_images.py sets it);
    BadInput for a StyleGAN2 one, which has no input to move."""
    if G.architecture != "stylegan3":
        raise BadInput("--translate/--rotate move a StyleGAN3 network's Fourier input; this is a StyleGAN2 network",
                       hint="leave them out, or pass a StyleGAN3 network (e.g. stylegan3-t-ffhqu-256)")
    G.synthesis.input.transform.copy_(input_transform((translate[0], translate[1]), rotate))


def generate_options(cfg: GenerateConfig, network_id: str) -> dict[str, object]:
    """What shapes generate's outputs (its rerun recipe)."""
    doc = cfg.to_dict()
    for key in ("out", "device", "batch", "fresh"):
        doc.pop(key)
    return {**doc, "network": network_id}


def run_generate(cfg: GenerateConfig) -> GenerateResult:
    """Write seedNNNN.png + seedNNNN.npz per seed, latents.npz for all, and grid.png (optional).

    Under torchrun each rank generates its block of the seeds and writes their files; rank 0 writes latents.npz
    (seed order) and the grid from the gathered rows."""

    start = time.monotonic()
    out = Path(cfg.out)
    refuse_out_overlap(out, [Input("--network", cfg.network)])
    with distributed_job(cfg.device) as dist:
        return _generate(cfg, out, dist, start)


def _generate(cfg: GenerateConfig, out: Path, dist: DistInfo, start: float) -> GenerateResult:

    seeds = list(dict.fromkeys(cfg.seeds))

    def prepare() -> tuple[LoadedNetwork, str | None, torch.Tensor]:
        loaded, label = load_generator(cfg.network, dist.device)
        G = loaded.generator
        if cfg.moves_input:
            move_input(G, cfg.translate, cfg.rotate)
        grid_bytes = 3 * G.img_resolution**2 * 4 if cfg.grid else 0  # the grid keeps every image (float32)
        check_fits(f"generate: {len(seeds)} seeds at {G.img_resolution} px", len(seeds) * (grid_bytes + G.num_ws * G.w_dim * 4),
                   hint="use fewer --seeds per run, or --no-grid")
        return loaded, label, map_seeds(G, seeds, cfg.trunc, cfg.trunc_cutoff, cfg.class_idx)  # checks --trunc-cutoff and --class

    loaded, label, ws = agree(prepare, dist)
    G = loaded.generator
    result = GenerateResult(out=str(out), network=loaded.source, resolution=G.img_resolution, standins=[label] if label else [])
    with claim_out(out, "generate", generate_options(cfg, network_identity(cfg.network, loaded.source)), cfg.fresh, dist) as claim:
        warn_standins(result.standins)
        if claim.up_to_date:
            get_console().log(f"generate: {out} is up to date (same options; --fresh redoes it)")
            return _recorded_result(result, out, seeds, cfg.grid, start)
        if len(seeds) < len(cfg.seeds):
            get_console().warn(f"--seeds repeats {len(cfg.seeds) - len(seeds)} seed(s); each image is generated once")
        amp = check_amp(cfg.amp, dist.device)

        def work(block: range) -> np.ndarray:
            """This rank's seeds: their PNG and npz files; returns their uint8 images for the grid (else none)."""
            mine, pixels = seeds[block.start : block.stop], []
            with get_console().progress(len(seeds), "generate", ranks=dist.world_size) as task:
                for i in range(0, len(mine), cfg.batch):
                    chunk = mine[i : i + cfg.batch]
                    w_chunk = ws[block.start + i : block.start + i + len(chunk)]
                    imgs = to_uint8(synthesize(G, w_chunk, cfg.noise_mode, chunk, cfg.batch, amp))
                    for seed, pil, w in zip(chunk, uint8_to_pil(imgs), w_chunk, strict=True):
                        save_image_atomic(out / f"seed{seed:04d}.png", pil)
                        save_latents(out / f"seed{seed:04d}.npz", w[None], seeds=np.array([seed]), trunc=cfg.trunc)
                    if cfg.grid:
                        pixels.append(imgs)
                    task.advance(len(chunk))
            return np.concatenate(pixels) if pixels else np.zeros((0, G.img_resolution, G.img_resolution, G.img_channels), np.uint8)

        pixels, result.per_rank = run_share(len(seeds), work, dist)
        pixels, block = gather_rows(pixels, dist), shard(len(seeds), dist)
        all_ws = gather_rows(ws[block.start : block.stop].numpy(), dist)  # each rank's rows, as its seeds' files hold them
        result.images = [str(out / f"seed{seed:04d}.png") for seed in seeds]
        result.latents, result.grid = str(out / "latents.npz"), str(out / "grid.png") if cfg.grid else None

        def combine() -> None:
            save_latents(out / "latents.npz", all_ws, seeds=np.array(seeds), z=seeds_to_z(seeds, G.z_dim), trunc=cfg.trunc)
            if result.grid:
                save_grid(list(torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255.0), result.grid)
            claim.finish([*result.images, *[p.with_suffix(".npz") for p in map(Path, result.images)], result.latents,
                          *([result.grid] if result.grid else [])])

        on_main(combine, dist)
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
