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
from typing import Any

import torch
from PIL import Image

from stylekit.configs.stylegan import MixConfig, Space
from stylekit.data.images import mark_composite
from stylekit.device import resolve_device
from stylekit.edit.generate import (
    check_amp,
    class_labels,
    load_generator,
    map_seeds,
    seeds_to_z,
    synthesize,
    to_pil,
)
from stylekit.edit.invert import load_noise
from stylekit.edit.latents import load_latents
from stylekit.edit.outdir import claim_out, network_identity, warn_standins
from stylekit.errors import BadInput
from stylekit.io.atomic import save_image_atomic, write_atomic
from stylekit.io.console import get_console
from stylekit.io.paths import Input, refuse_out_overlap
from stylekit.io.recipe import file_digest
from stylekit.nets.stylegan2.networks import Generator


@dataclass
class MixResult:
    out: str
    grid: str
    images: list[str]
    styles: list[int]
    num_ws: int
    up_to_date: bool = False  # a rerun of the same options into the same --out: nothing was redone
    standins: list[str] = field(default_factory=list)  # labels of random-init stand-ins used
    seconds: float = 0.0


@dataclass
class InterpolateResult:
    out: str
    frames: list[str]
    gif: str
    space: str
    up_to_date: bool = False
    standins: list[str] = field(default_factory=list)
    seconds: float = 0.0


def mix_styles(row_w: torch.Tensor, col_w: torch.Tensor, styles: list[int]) -> torch.Tensor:
    """Row ws [num_ws, w_dim] with the layers in `styles` replaced by the column's."""
    w = row_w.clone()
    if styles:
        w[styles] = col_w[styles]
    return w


def check_styles(G: Generator, styles: list[int]) -> None:
    """--styles names layers of this network's w."""
    bad = [s for s in styles if not 0 <= s < G.num_ws]
    if bad:
        raise BadInput(f"--styles {bad} out of range", hint=f"the network has layers 0..{G.num_ws - 1}")


def style_mix(
    G: Generator, rows: list[int], cols: list[int], styles: list[int], trunc: float = 1.0,
    noise_mode: str = "const", class_idx: int | None = None, batch: int = 8, amp: bool = False,
) -> tuple[dict[int, torch.Tensor], dict[tuple[int, int], torch.Tensor]]:
    """Images of every seed, and of every (row, col) mix; each image [C, R, R] in [-1, 1]."""
    check_styles(G, styles)
    seeds = list(dict.fromkeys(rows + cols))
    ws = map_seeds(G, seeds, trunc, None, class_idx)
    w_of = dict(zip(seeds, ws, strict=True))
    singles = synthesize(G, ws, noise_mode, seeds, batch, amp)
    seed_images = dict(zip(seeds, singles, strict=True))
    pairs = [(r, c) for r in rows for c in cols]
    mixed_ws = torch.stack([mix_styles(w_of[r], w_of[c], styles) for r, c in pairs])
    mixed = synthesize(G, mixed_ws, noise_mode, [r for r, _ in pairs], batch, amp)
    return seed_images, dict(zip(pairs, mixed, strict=True))


def mix_options(cfg: MixConfig, network_id: str, latent_ids: list[str]) -> dict[str, object]:
    """What shapes mix's outputs (its rerun recipe)."""
    doc = cfg.to_dict()
    for key in ("out", "device", "batch", "fresh"):
        doc.pop(key)
    return {**doc, "network": network_id, "latents": latent_ids}


def _claim(cfg: MixConfig, loaded_source: str) -> Any:

    options = mix_options(cfg, network_identity(cfg.network, loaded_source), [file_digest(p) for p in cfg.latents])
    return claim_out(Path(cfg.out), "mix", options, cfg.fresh)


def run_mix(cfg: MixConfig) -> MixResult:
    """Write ROW-COL.png for every pair, SEED-SEED.png for each seed, and grid.png."""

    start = time.monotonic()
    assert cfg.rows is not None and cfg.cols is not None  # MixConfig.check: style mixing has both
    rows, cols = list(cfg.rows), list(cfg.cols)
    refuse_out_overlap(cfg.out, [Input("--network", cfg.network)])
    device = resolve_device(cfg.device)
    loaded, label = load_generator(cfg.network, device)
    G = loaded.generator
    check_styles(G, list(cfg.styles))
    out = Path(cfg.out)
    result = MixResult(out=str(out), grid=str(out / "grid.png"), images=[], styles=list(cfg.styles), num_ws=G.num_ws,
                       standins=[label] if label else [])
    with _claim(cfg, loaded.source) as claim:
        warn_standins(result.standins)
        if claim.up_to_date:
            get_console().log(f"mix: {out} is up to date (same options; --fresh redoes it)")
            result.images = [str(out / f) for f in claim.files if f != "grid.png"]
            result.up_to_date = True
            result.seconds = round(time.monotonic() - start, 3)
            return result
        get_console().log(f"mix: {len(rows)} rows x {len(cols)} cols, styles {list(cfg.styles)}")
        amp = check_amp(cfg.amp, device)
        singles, mixed = style_mix(G, rows, cols, list(cfg.styles), cfg.trunc, cfg.noise_mode, cfg.class_idx, cfg.batch, amp)
        pil_single = {s: to_pil(img[None])[0] for s, img in singles.items()}
        pil_mixed = {k: to_pil(img[None])[0] for k, img in mixed.items()}
        for seed, pil in pil_single.items():
            result.images.append(str(save_image_atomic(out / f"{seed}-{seed}.png", pil)))
        for (r, c), pil in pil_mixed.items():
            if r != c:
                result.images.append(str(save_image_atomic(out / f"{r}-{c}.png", pil)))
        res = G.img_resolution
        canvas = Image.new("RGB", (res * (len(cols) + 1), res * (len(rows) + 1)), "black")
        for j, c in enumerate(cols):
            canvas.paste(pil_single[c].convert("RGB"), (res * (j + 1), 0))
        for i, r in enumerate(rows):
            canvas.paste(pil_single[r].convert("RGB"), (0, res * (i + 1)))
            for j, c in enumerate(cols):
                canvas.paste(pil_mixed[(r, c)].convert("RGB"), (res * (j + 1), res * (i + 1)))
        grid = save_image_atomic(out / "grid.png", canvas)
        mark_composite(grid)
        claim.finish([*result.images, grid])
    result.seconds = round(time.monotonic() - start, 3)
    return result


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation between a and b (along the last dim); lerp when they are parallel."""
    na, nb = a / a.norm(dim=-1, keepdim=True), b / b.norm(dim=-1, keepdim=True)
    omega = torch.acos((na * nb).sum(-1, keepdim=True).clamp(-1, 1))
    so = torch.sin(omega)
    if float(so.abs().min()) < 1e-6:
        return a + (b - a) * t
    return torch.sin((1 - t) * omega) / so * a + torch.sin(t * omega) / so * b


def _first_latent(path: str, G: Generator) -> torch.Tensor:

    ws = load_latents(path, G.num_ws, G.w_dim)
    if len(ws) > 1:
        get_console().warn(f"{path} holds {len(ws)} latents; interpolating from the first")
    return ws[0]


def interpolation_noise(cfg: MixConfig, ts: list[float]) -> list[dict[str, torch.Tensor]] | None:
    """Per-frame noise maps when the latent files carry invert's `noise.*` maps (lerped A -> B, or the one
    file's maps throughout), so the end frames reproduce the inverted images; None otherwise."""

    if not cfg.latents or cfg.noise_mode != "const":
        return None
    na, nb = (load_noise(path) for path in cfg.latents)
    if not na and not nb:
        return None
    na, nb = na or nb, nb or na
    if na.keys() != nb.keys():
        raise BadInput(f"{cfg.latents[0]} and {cfg.latents[1]} hold noise maps for different layers",
                       hint="use latent files inverted with the same network")
    return [{k: na[k] + (nb[k] - na[k]) * t for k in na} for t in ts]


def interpolation_ws(G: Generator, cfg: MixConfig) -> torch.Tensor:
    """ws [frames, num_ws, w_dim] along the path from A to B."""

    ts = [i / (cfg.frames - 1) for i in range(cfg.frames)]
    if cfg.latents:
        wa, wb = (_first_latent(str(path), G) for path in cfg.latents)
        return torch.stack([wa + (wb - wa) * t for t in ts])
    assert cfg.interpolate is not None  # MixConfig.check: --interpolate or --latents
    if cfg.space is Space.w:
        wa, wb = map_seeds(G, list(cfg.interpolate), cfg.trunc, None, cfg.class_idx)
        return torch.stack([wa + (wb - wa) * t for t in ts])
    za, zb = seeds_to_z(list(cfg.interpolate), G.z_dim)
    z = torch.stack([slerp(za, zb, t) for t in ts])
    c = class_labels(G, cfg.class_idx, len(ts))
    device = next(G.parameters()).device
    with torch.no_grad():
        return G.mapping(z.to(device), c.to(device) if c is not None else None, truncation_psi=cfg.trunc).cpu()


def run_interpolate(cfg: MixConfig) -> InterpolateResult:
    """Write frames/frameNNNN.png and interpolation.gif."""

    start = time.monotonic()
    refuse_out_overlap(cfg.out, [Input("--network", cfg.network), *(Input("--latents", p) for p in cfg.latents)])
    device = resolve_device(cfg.device)
    loaded, label = load_generator(cfg.network, device)
    G = loaded.generator
    ws = interpolation_ws(G, cfg)  # reads and checks the latent files before --out is touched
    noise = interpolation_noise(cfg, [i / (len(ws) - 1) for i in range(len(ws))])
    out = Path(cfg.out)
    frames_dir = out / "frames"
    result = InterpolateResult(out=str(out), frames=[], gif=str(out / "interpolation.gif"), space=str(cfg.space),
                               standins=[label] if label else [])
    with _claim(cfg, loaded.source) as claim:
        warn_standins(result.standins)
        if claim.up_to_date:
            get_console().log(f"mix: {out} is up to date (same options; --fresh redoes it)")
            result.frames = [str(frames_dir / f"frame{i:04d}.png") for i in range(len(ws))]
            result.up_to_date = True
            result.seconds = round(time.monotonic() - start, 3)
            return result
        amp = check_amp(cfg.amp, device)
        frames_dir.mkdir(exist_ok=True)
        pils: list[Image.Image] = []
        chunk = 1 if noise else cfg.batch  # per-frame noise maps live in G's buffers: one frame at a time
        with get_console().progress(len(ws), "interpolate") as task:
            for i in range(0, len(ws), chunk):
                if noise:
                    from stylekit.edit.invert import apply_noise

                    apply_noise(G, noise[i], str(cfg.latents[0]))
                # Constant noise seed for every frame, so only the latent moves.
                imgs = synthesize(G, ws[i : i + chunk], cfg.noise_mode, [0] * len(ws[i : i + chunk]), amp=amp)
                for pil in to_pil(imgs):
                    result.frames.append(str(save_image_atomic(frames_dir / f"frame{len(pils):04d}.png", pil)))
                    pils.append(pil.convert("RGB"))
                task.advance(len(imgs))
        duration = max(1, int(math.floor(1000 / cfg.fps)))
        gif = write_atomic(out / "interpolation.gif", lambda tmp: pils[0].save(
            tmp, format="GIF", save_all=True, append_images=pils[1:], duration=duration, loop=0))
        claim.finish([*result.frames, gif])
    result.seconds = round(time.monotonic() - start, 3)
    return result
