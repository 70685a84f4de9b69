"""`stylekit generate`: images (and their w latents) from seeds, as NVlabs generate.py does.

A seed maps to z = np.random.RandomState(seed).randn(1, z_dim), so a seed gives the image users
know from the NVlabs tools (same network, truncation and noise mode).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from stylekit.checks import check_fits
from stylekit.configs.stylegan import GenerateConfig
from stylekit.errors import BadInput
from stylekit.io.console import get_console
from stylekit.io.paths import Input, refuse_out_overlap
from stylekit.nets.stylegan2.networks import Generator

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


def seed_to_z(seed: int, z_dim: int) -> np.ndarray:
    """NVlabs generate.py: np.random.RandomState(seed).randn(1, z_dim)."""
    return np.random.RandomState(seed).randn(1, z_dim)


def seeds_to_z(seeds: list[int], z_dim: int) -> torch.Tensor:
    return torch.from_numpy(np.concatenate([seed_to_z(s, z_dim) for s in seeds])).float()


def class_labels(G: Generator, class_idx: int | None, n: int) -> torch.Tensor | None:
    """One-hot labels for a conditional network (BadInput when missing/out of range), None otherwise."""
    if G.c_dim == 0:
        if class_idx is not None:
            get_console().warn("--class ignored: the network is not conditional")
        return None
    if class_idx is None:
        raise BadInput(f"the network is conditional ({G.c_dim} classes): pass --class K", hint=f"K in 0..{G.c_dim - 1}")
    if not 0 <= class_idx < G.c_dim:
        raise BadInput(f"--class {class_idx} is out of range", hint=f"the network has classes 0..{G.c_dim - 1}")
    c = torch.zeros(n, G.c_dim, device="cpu")  # moved with z by the caller
    c[:, class_idx] = 1
    return c


def to_uint8(img: torch.Tensor) -> np.ndarray:
    """[N, C, H, W] in [-1, 1] -> uint8 [N, H, W, C], exactly NVlabs' (x * 127.5 + 128).clamp(0, 255)."""
    return (img.permute(0, 2, 3, 1) * 127.5 + 128).clamp(0, 255).to(torch.uint8).cpu().numpy()


def to_pil(img: torch.Tensor) -> list[Image.Image]:
    arr = to_uint8(img)
    return [Image.fromarray(a if a.shape[-1] != 1 else a[..., 0]) for a in arr]


def to_unit(img: torch.Tensor) -> torch.Tensor:
    """[-1, 1] images -> [0, 1] quantised like the PNGs (for grids)."""
    return torch.from_numpy(to_uint8(img)).permute(0, 3, 1, 2).float() / 255.0


def synthesize(
    G: Generator, ws: torch.Tensor, noise_mode: str, seeds: list[int] | None = None, batch: int = 8, amp: bool = False
) -> torch.Tensor:
    """ws [N, num_ws, w_dim] -> fp32 images [N, C, R, R] on CPU; random noise is seeded per image.

    `amp`: the convolutions autocast to the device's native low-precision dtype (bf16 on AVX512-BF16 /
    AMX CPUs and recent GPUs; no-op elsewhere): ~4x the matmul rate, images within a few 1/255 steps.
    """
    from stylekit.device import autocast

    device = next(G.parameters()).device
    out = []
    with torch.no_grad(), autocast(device, amp), _inference_layout(G, device, amp):
        if noise_mode == "random":
            for i in range(ws.shape[0]):
                with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                    torch.manual_seed(seeds[i] if seeds else i)
                    out.append(G.synthesis(ws[i : i + 1].to(device), noise_mode=noise_mode).float().cpu())
        else:
            for i in range(0, ws.shape[0], batch):
                out.append(G.synthesis(ws[i : i + batch].to(device), noise_mode=noise_mode).float().cpu())
    return torch.cat(out)


@contextlib.contextmanager
def _inference_layout(G: Generator, device: torch.device, amp: bool) -> Iterator[None]:
    """Under --amp on CPU, G's convolution weights channels-last for the duration (restored after):
    oneDNN then keeps the bf16 activations NHWC and skips a reorder around every convolution. Measured
    interleaved (docs/performance.md): 1.18x at 64 px, 1.05x at 128, 1.8x at 256 px; same images. In fp32
    it was mixed (1.05x / 0.89x / 1.11x), so fp32 keeps NCHW."""
    from stylekit.device import amp_dtype

    if device.type != "cpu" or not amp or amp_dtype(device) is None:
        yield
        return
    G.to(memory_format=torch.channels_last)
    try:
        yield
    finally:
        G.to(memory_format=torch.contiguous_format)


def check_amp(amp: bool, device: torch.device) -> bool:
    """`--amp` where the device has a native low-precision type; a warning and fp32 elsewhere."""
    from stylekit.device import amp_dtype

    if amp and amp_dtype(device) is None:
        get_console().warn(f"--amp: {device} has no native low-precision type; running in fp32")
        return False
    return amp


def map_seeds(
    G: Generator, seeds: list[int], trunc: float = 1.0, trunc_cutoff: int | None = None, class_idx: int | None = None
) -> torch.Tensor:
    """seeds -> ws [N, num_ws, w_dim] (CPU), truncated as NVlabs' mapping does."""
    if trunc_cutoff is not None and not 0 <= trunc_cutoff <= G.num_ws:
        raise BadInput(f"--trunc-cutoff {trunc_cutoff} is out of range", hint=f"the network has {G.num_ws} layers of w")
    device = next(G.parameters()).device
    z = seeds_to_z(seeds, G.z_dim).to(device)
    c = class_labels(G, class_idx, len(seeds))
    with torch.no_grad():
        return G.mapping(z, c.to(device) if c is not None else None, truncation_psi=trunc, truncation_cutoff=trunc_cutoff).cpu()


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
    from stylekit.data.images import save_grid
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
