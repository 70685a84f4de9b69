"""`stylekit generate`: images (and their w latents) from seeds, as NVlabs generate.py does.

A seed maps to z = np.random.RandomState(seed).randn(1, z_dim), so a seed gives the image users
know from the NVlabs tools (same network, truncation and noise mode).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from stylekit.checks import check_fits, check_int, check_trunc
from stylekit.errors import BadInput
from stylekit.io.console import get_console
from stylekit.io.paths import Input, refuse_out_overlap
from stylekit.nets.stylegan2.latents import seed_to_z, seeds_to_z  # noqa: F401 - their home is nets/ (train/ uses them)
from stylekit.nets.stylegan2.networks import NOISE_MODES, Generator


@dataclass
class GenerateConfig:
    network: str
    seeds: list[int]
    out: Path
    trunc: float = 1.0
    trunc_cutoff: int | None = None
    noise_mode: str = "const"
    class_idx: int | None = None
    grid: bool = True
    device: str = "auto"
    batch: int = 8
    amp: bool = False  # autocast in the device's native low-precision dtype (stylekit.device.amp_dtype)

    def validate(self) -> None:
        """Ranges a Python caller and the CLI get the same errors for (BadInput, exit 2)."""
        check_trunc(self.trunc)
        check_int("--batch", self.batch, 1)
        check_int("--trunc-cutoff", self.trunc_cutoff, 0)
        check_noise_mode(self.noise_mode)
        if not self.seeds:
            raise BadInput("no seeds given", hint="e.g. --seeds 0-7")


@dataclass
class GenerateResult:
    out: str
    network: str
    resolution: int
    images: list[str] = field(default_factory=list)
    grid: str | None = None
    latents: str | None = None
    seconds: float = 0.0


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


def check_noise_mode(mode: str) -> str:
    if mode not in NOISE_MODES:
        raise BadInput(f"bad --noise-mode '{mode}'", hint=f"use one of {', '.join(NOISE_MODES)}")
    return mode


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


def run_generate(cfg: GenerateConfig) -> GenerateResult:
    """Write seedNNNN.png + seedNNNN.npz per seed, latents.npz for all, and grid.png (optional)."""
    from stylekit.data.images import save_grid
    from stylekit.device import resolve_device
    from stylekit.edit.latents import save_latents
    from stylekit.io.atomic import save_image_atomic
    from stylekit.io.rundir import ensure_writable_dir
    from stylekit.nets.stylegan2.load import load_network

    start = time.monotonic()
    cfg.validate()
    unique = list(dict.fromkeys(cfg.seeds))
    if len(unique) < len(cfg.seeds):
        get_console().warn(f"--seeds repeats {len(cfg.seeds) - len(unique)} seed(s); each image is generated once")
        cfg = dataclasses.replace(cfg, seeds=unique)
    out = Path(cfg.out)
    refuse_out_overlap(out, [Input("--network", cfg.network)])
    ensure_writable_dir(out)
    device = resolve_device(cfg.device)
    loaded = load_network(cfg.network, device)
    G = loaded.generator
    pixels = 3 * G.img_resolution**2 * 4 if cfg.grid else 0  # the grid keeps every image (float32)
    check_fits(f"generate: {len(cfg.seeds)} seeds at {G.img_resolution} px", len(cfg.seeds) * (pixels + G.num_ws * G.w_dim * 4),
               hint="use fewer --seeds per run, or --no-grid")
    ws = map_seeds(G, cfg.seeds, cfg.trunc, cfg.trunc_cutoff, cfg.class_idx)
    amp = check_amp(cfg.amp, device)
    result = GenerateResult(out=str(out), network=loaded.source, resolution=G.img_resolution)
    units = []
    with get_console().progress(len(cfg.seeds), "generate") as task:
        for i in range(0, len(cfg.seeds), max(1, cfg.batch)):
            chunk = cfg.seeds[i : i + cfg.batch]
            imgs = synthesize(G, ws[i : i + len(chunk)], cfg.noise_mode, chunk, cfg.batch, amp)
            for seed, pil, w in zip(chunk, to_pil(imgs), ws[i : i + len(chunk)], strict=True):
                path = out / f"seed{seed:04d}.png"
                save_image_atomic(path, pil)
                save_latents(out / f"seed{seed:04d}.npz", w[None], seeds=np.array([seed]), trunc=cfg.trunc)
                result.images.append(str(path))
            if cfg.grid:
                units.append(to_unit(imgs))
            task.advance(len(chunk))
    z = seeds_to_z(cfg.seeds, G.z_dim)
    result.latents = str(save_latents(out / "latents.npz", ws, seeds=np.array(cfg.seeds), z=z, trunc=cfg.trunc))
    if cfg.grid:
        result.grid = str(save_grid(list(torch.cat(units)), out / "grid.png"))
    result.seconds = round(time.monotonic() - start, 3)
    return result
