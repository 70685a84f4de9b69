"""`stylekit mix`: style-mixing grids (StyleGAN papers) and latent interpolation videos (GIF).

Style mixing follows NVlabs style_mixing.py: w of every row and column seed (truncated towards
w_avg), then for each (row, col) the row's w with the layers in `styles` taken from the column.
Interpolation runs between two seeds (slerp in Z, or lerp in W) or two latent files (lerp in W).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

from stylekit.checks import check_int, check_number, check_trunc
from stylekit.edit.generate import check_amp, check_noise_mode, map_seeds, synthesize, to_pil
from stylekit.errors import BadInput
from stylekit.io.console import get_console
from stylekit.io.paths import Input, refuse_out_overlap
from stylekit.nets.stylegan2.networks import Generator


@dataclass
class MixConfig:
    network: str
    rows: list[int]
    cols: list[int]
    out: Path
    styles: list[int] = field(default_factory=lambda: list(range(7)))
    trunc: float = 1.0
    noise_mode: str = "const"
    class_idx: int | None = None
    device: str = "auto"
    batch: int = 8
    amp: bool = False  # autocast in the device's native low-precision dtype

    def validate(self) -> None:
        check_trunc(self.trunc)
        check_int("--batch", self.batch, 1)
        check_noise_mode(self.noise_mode)
        if not self.rows or not self.cols:
            raise BadInput("style mixing needs --rows and --cols", hint="e.g. --rows 85,100 --cols 55,821")


@dataclass
class MixResult:
    out: str
    grid: str
    images: list[str]
    styles: list[int]
    num_ws: int
    seconds: float = 0.0


@dataclass
class InterpolateConfig:
    network: str
    out: Path
    seeds: tuple[int, int] | None = None
    latents: tuple[Path, Path] | None = None
    space: str = "z"
    frames: int = 60
    trunc: float = 1.0
    noise_mode: str = "const"
    class_idx: int | None = None
    fps: float = 20.0
    device: str = "auto"
    batch: int = 8
    amp: bool = False  # autocast in the device's native low-precision dtype

    def validate(self) -> None:
        """Checked before any frame is rendered (a bad --fps used to fail after the whole render)."""
        check_trunc(self.trunc)
        check_int("--batch", self.batch, 1)
        check_int("--frames", self.frames, 2)
        check_number("--fps", self.fps, above=0, maximum=1000, hint="GIF frame rates are 1..1000 (e.g. 20)")
        check_noise_mode(self.noise_mode)
        if self.space not in ("z", "w"):
            raise BadInput(f"bad --space '{self.space}'", hint="use z (slerp between seeds) or w (lerp)")


@dataclass
class InterpolateResult:
    out: str
    frames: list[str]
    gif: str
    space: str
    seconds: float = 0.0


def mix_styles(row_w: torch.Tensor, col_w: torch.Tensor, styles: list[int]) -> torch.Tensor:
    """Row ws [num_ws, w_dim] with the layers in `styles` replaced by the column's."""
    w = row_w.clone()
    if styles:
        w[styles] = col_w[styles]
    return w


def style_mix(
    G: Generator, rows: list[int], cols: list[int], styles: list[int], trunc: float = 1.0,
    noise_mode: str = "const", class_idx: int | None = None, batch: int = 8, amp: bool = False,
) -> tuple[dict[int, torch.Tensor], dict[tuple[int, int], torch.Tensor]]:
    """Images of every seed, and of every (row, col) mix; each image [C, R, R] in [-1, 1]."""
    bad = [s for s in styles if not 0 <= s < G.num_ws]
    if bad:
        raise BadInput(f"--styles {bad} out of range", hint=f"the network has layers 0..{G.num_ws - 1}")
    seeds = list(dict.fromkeys(rows + cols))
    ws = map_seeds(G, seeds, trunc, None, class_idx)
    w_of = dict(zip(seeds, ws, strict=True))
    singles = synthesize(G, ws, noise_mode, seeds, batch, amp)
    seed_images = dict(zip(seeds, singles, strict=True))
    pairs = [(r, c) for r in rows for c in cols]
    mixed_ws = torch.stack([mix_styles(w_of[r], w_of[c], styles) for r, c in pairs])
    mixed = synthesize(G, mixed_ws, noise_mode, [r for r, _ in pairs], batch, amp)
    return seed_images, dict(zip(pairs, mixed, strict=True))


def run_mix(cfg: MixConfig) -> MixResult:
    """Write ROW-COL.png for every pair, SEED-SEED.png for each seed, and grid.png."""
    from stylekit.data.images import mark_composite
    from stylekit.device import resolve_device
    from stylekit.io.atomic import save_image_atomic
    from stylekit.io.rundir import ensure_writable_dir
    from stylekit.nets.stylegan2.load import load_network

    start = time.monotonic()
    cfg.validate()
    refuse_out_overlap(cfg.out, [Input("--network", cfg.network)])
    out = ensure_writable_dir(Path(cfg.out))
    G = load_network(cfg.network, resolve_device(cfg.device)).generator
    get_console().log(f"mix: {len(cfg.rows)} rows x {len(cfg.cols)} cols, styles {cfg.styles}")
    amp = check_amp(cfg.amp, next(G.parameters()).device)
    singles, mixed = style_mix(G, cfg.rows, cfg.cols, cfg.styles, cfg.trunc, cfg.noise_mode, cfg.class_idx, cfg.batch, amp)
    pil_single = {s: to_pil(img[None])[0] for s, img in singles.items()}
    pil_mixed = {k: to_pil(img[None])[0] for k, img in mixed.items()}
    images = []
    for seed, pil in pil_single.items():
        images.append(str(save_image_atomic(out / f"{seed}-{seed}.png", pil)))
    for (r, c), pil in pil_mixed.items():
        if r != c:
            images.append(str(save_image_atomic(out / f"{r}-{c}.png", pil)))
    res = G.img_resolution
    canvas = Image.new("RGB", (res * (len(cfg.cols) + 1), res * (len(cfg.rows) + 1)), "black")
    for j, c in enumerate(cfg.cols):
        canvas.paste(pil_single[c].convert("RGB"), (res * (j + 1), 0))
    for i, r in enumerate(cfg.rows):
        canvas.paste(pil_single[r].convert("RGB"), (0, res * (i + 1)))
        for j, c in enumerate(cfg.cols):
            canvas.paste(pil_mixed[(r, c)].convert("RGB"), (res * (j + 1), res * (i + 1)))
    grid = save_image_atomic(out / "grid.png", canvas)
    mark_composite(grid)
    return MixResult(out=str(out), grid=str(grid), images=images, styles=list(cfg.styles), num_ws=G.num_ws,
                     seconds=round(time.monotonic() - start, 3))


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation between a and b (along the last dim); lerp when they are parallel."""
    na, nb = a / a.norm(dim=-1, keepdim=True), b / b.norm(dim=-1, keepdim=True)
    omega = torch.acos((na * nb).sum(-1, keepdim=True).clamp(-1, 1))
    so = torch.sin(omega)
    if float(so.abs().min()) < 1e-6:
        return a + (b - a) * t
    return torch.sin((1 - t) * omega) / so * a + torch.sin(t * omega) / so * b


def _first_latent(path: str, G: Generator) -> torch.Tensor:
    from stylekit.edit.latents import load_latents

    ws = load_latents(path, G.num_ws, G.w_dim)
    if len(ws) > 1:
        get_console().warn(f"{path} holds {len(ws)} latents; interpolating from the first")
    return ws[0]


def interpolation_noise(cfg: InterpolateConfig, ts: list[float]) -> list[dict[str, torch.Tensor]] | None:
    """Per-frame noise maps when the latent files carry invert's `noise.*` maps (lerped A -> B, or the one
    file's maps throughout), so the end frames reproduce the inverted images; None otherwise."""
    from stylekit.edit.invert import load_noise

    if cfg.latents is None or cfg.noise_mode != "const":
        return None
    na, nb = (load_noise(path) for path in cfg.latents)
    if not na and not nb:
        return None
    na, nb = na or nb, nb or na
    if na.keys() != nb.keys():
        raise BadInput(f"{cfg.latents[0]} and {cfg.latents[1]} hold noise maps for different layers",
                       hint="use latent files inverted with the same network")
    return [{k: na[k] + (nb[k] - na[k]) * t for k in na} for t in ts]


def interpolation_ws(G: Generator, cfg: InterpolateConfig) -> torch.Tensor:
    """ws [frames, num_ws, w_dim] along the path from A to B."""
    from stylekit.edit.generate import class_labels, seeds_to_z

    if cfg.frames < 2:
        raise BadInput(f"--frames {cfg.frames}: need at least 2 frames")
    if cfg.space not in ("z", "w"):
        raise BadInput(f"bad --space '{cfg.space}'", hint="use z (slerp between seeds) or w (lerp)")
    ts = [i / (cfg.frames - 1) for i in range(cfg.frames)]
    if cfg.latents is not None:
        if cfg.space == "z":
            raise BadInput("--space z needs seeds: latent files hold w", hint="use --space w with --latents")
        wa, wb = (_first_latent(path, G) for path in cfg.latents)
        return torch.stack([wa + (wb - wa) * t for t in ts])
    if cfg.seeds is None:
        raise BadInput("interpolation needs --interpolate A,B (two seeds) or --latents a.npz b.npz")
    if cfg.space == "w":
        wa, wb = map_seeds(G, list(cfg.seeds), cfg.trunc, None, cfg.class_idx)
        return torch.stack([wa + (wb - wa) * t for t in ts])
    za, zb = seeds_to_z(list(cfg.seeds), G.z_dim)
    z = torch.stack([slerp(za, zb, t) for t in ts])
    c = class_labels(G, cfg.class_idx, len(ts))
    device = next(G.parameters()).device
    with torch.no_grad():
        return G.mapping(z.to(device), c.to(device) if c is not None else None, truncation_psi=cfg.trunc).cpu()


def run_interpolate(cfg: InterpolateConfig) -> InterpolateResult:
    """Write frames/frameNNNN.png and interpolation.gif."""
    from stylekit.device import resolve_device
    from stylekit.io.atomic import save_image_atomic, write_atomic
    from stylekit.io.rundir import ensure_writable_dir
    from stylekit.nets.stylegan2.load import load_network

    start = time.monotonic()
    cfg.validate()
    refuse_out_overlap(cfg.out, [Input("--network", cfg.network), *(Input("--latents", p) for p in cfg.latents or ())])
    out = ensure_writable_dir(Path(cfg.out))
    G = load_network(cfg.network, resolve_device(cfg.device)).generator
    amp = check_amp(cfg.amp, next(G.parameters()).device)
    ws = interpolation_ws(G, cfg)
    frames_dir = out / "frames"
    frames_dir.mkdir(exist_ok=True)
    pils: list[Image.Image] = []
    paths = []
    noise = interpolation_noise(cfg, [i / (len(ws) - 1) for i in range(len(ws))])
    chunk = 1 if noise else cfg.batch  # per-frame noise maps live in G's buffers: one frame at a time
    with get_console().progress(len(ws), "interpolate") as task:
        for i in range(0, len(ws), chunk):
            if noise:
                from stylekit.edit.invert import apply_noise

                apply_noise(G, noise[i], str(cfg.latents[0]))
            # Constant noise seed for every frame, so only the latent moves.
            imgs = synthesize(G, ws[i : i + chunk], cfg.noise_mode, [0] * len(ws[i : i + chunk]), amp=amp)
            for pil in to_pil(imgs):
                paths.append(str(save_image_atomic(frames_dir / f"frame{len(pils):04d}.png", pil)))
                pils.append(pil.convert("RGB"))
            task.advance(len(imgs))
    duration = max(1, int(math.floor(1000 / cfg.fps)))
    gif = write_atomic(out / "interpolation.gif", lambda tmp: pils[0].save(
        tmp, format="GIF", save_all=True, append_images=pils[1:], duration=duration, loop=0))
    return InterpolateResult(out=str(out), frames=paths, gif=str(gif), space=cfg.space,
                             seconds=round(time.monotonic() - start, 3))
