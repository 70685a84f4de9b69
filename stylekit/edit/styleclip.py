"""`stylekit styleclip`: text-driven edits by latent optimisation (StyleCLIP, Patashnik et al. 2021).

As orpatashnik/StyleCLIP optimization/run_optimization.py: a W+ latent (one w per synthesis input)
with the noise maps fixed starts at a latent file (e.g. from `stylekit invert`) or at a seed's
truncated w (psi 0.7), and Adam (lr 0.1, the projector's 5% rampup / 25% cosine rampdown, 300
steps) minimises  (1 - logit(image, text) / 100) + l2_lambda * sum((w - w0)^2)  in `edit` mode, or
the CLIP term alone in `free` mode. logit = CLIP's logit scale (100 for OpenAI CLIP) times the cosine
similarity. The image reaches the CLIP input size as in StyleCLIP: nearest upsampling by u, then
average pooling by p, with u/p = clip_size/resolution (StyleCLIP's 7 and resolution/32 for 224 px);
unlike StyleCLIP, which feeds the [-1, 1] image to CLIP unnormalised, it is mapped to [0, 1] and
normalised with CLIP's mean/std. No identity loss: stylekit has no face-recognition weights.
Several prompts are optimised together in one batch; Adam is element-wise and the loss a sum, so this
is exactly the same as one run per prompt.
"""

from __future__ import annotations

import copy
import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from stylekit.configs.edit import Mode, StyleClipConfig
from stylekit.data.grid import save_grid
from stylekit.data.images import tensor_to_pil
from stylekit.device import autocast, grad_scaler, resolve_device
from stylekit.edit.generate import check_amp, load_generator, map_seeds
from stylekit.edit.invert import apply_noise, load_noise, noise_buffers, quantize
from stylekit.edit.latents import load_latents, save_latents
from stylekit.edit.outdir import claim_out, network_identity, standin, warn_standins
from stylekit.edit.schedule import ramped_lr
from stylekit.errors import BadInput
from stylekit.io.atomic import save_image_atomic, write_atomic, write_json_atomic
from stylekit.io.console import get_console
from stylekit.io.paths import Input, refuse_out_overlap
from stylekit.io.recipe import file_digest
from stylekit.nets.clip import encode_text, load_clip
from stylekit.nets.stylegan2.networks import Generator


@dataclass
class PromptResult:
    prompt: str
    folder: str
    edited: str
    latent: str
    clip_loss: float
    similarity_before: float
    similarity_after: float
    l2: float


@dataclass
class StyleClipResult:
    out: str
    network: str
    clip_model: str
    start: str
    mode: str
    steps: int
    original: str
    grid: str
    curves: str | None
    summary: str
    prompts: list[PromptResult] = field(default_factory=list)
    up_to_date: bool = False  # a rerun of the same options into the same --out: nothing was redone
    standins: list[str] = field(default_factory=list)  # labels of random-init stand-ins used (not meaningful results)
    seconds: float = 0.0


def pool_factors(resolution: int, clip_size: int) -> tuple[int, int]:
    """(upsample u, pool p) with resolution * u / p == clip_size (StyleCLIP: 7 and resolution // 32 for 224)."""
    g = math.gcd(resolution, clip_size)
    return clip_size // g, resolution // g


def clip_input(bundle: Any, images: torch.Tensor) -> torch.Tensor:
    """[N, 3, R, R] in [-1, 1] -> normalised CLIP input [N, 3, S, S] (upsample, average-pool, mean/std)."""
    u, p = pool_factors(images.shape[-1], bundle.image_size)
    x = (images.float() + 1) / 2
    if u > 1:
        x = F.interpolate(x, scale_factor=u, mode="nearest")
    if p > 1:
        x = F.avg_pool2d(x, kernel_size=p)
    mean = torch.tensor(bundle.mean, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(bundle.std, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def logit_scale(bundle: Any) -> float:
    scale = getattr(bundle.model, "logit_scale", None)
    return float(scale.exp()) if isinstance(scale, torch.Tensor) else 100.0


def clip_terms(bundle: Any, images: torch.Tensor, text_feats: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image (1 - logit/100, cosine similarity) against the matching row of `text_feats`."""
    feats = F.normalize(bundle.model.encode_image(clip_input(bundle, images)).float(), dim=-1)
    cos = (feats * text_feats).sum(dim=-1)
    return 1 - scale * cos / 100.0, cos


def slug(text: str, limit: int = 40) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return s[:limit].rstrip("-") or "prompt"


def start_latent(G: Generator, cfg: StyleClipConfig) -> tuple[torch.Tensor, dict[str, torch.Tensor], str]:
    """w0 [1, num_ws, w_dim], noise maps to fix (from an invert latent file), and a description of the start."""

    if cfg.latent is not None:
        ws = load_latents(cfg.latent, G.num_ws, G.w_dim)
        if not 0 <= cfg.latent_index < ws.shape[0]:
            raise BadInput(f"--latent-index {cfg.latent_index} is out of range: {cfg.latent} holds {ws.shape[0]} latents",
                           hint=f"use 0..{ws.shape[0] - 1}")
        return ws[cfg.latent_index : cfg.latent_index + 1], load_noise(cfg.latent), f"latent {cfg.latent}[{cfg.latent_index}]"
    if cfg.latent_seed is not None:
        return map_seeds(G, [cfg.latent_seed], trunc=cfg.trunc), {}, f"seed {cfg.latent_seed} (trunc {cfg.trunc})"
    assert cfg.mode is Mode.free  # StyleClipConfig.check: --mode edit has a start
    return G.mapping.w_avg.detach().cpu().reshape(1, 1, -1).repeat(1, G.num_ws, 1), {}, "w_avg"


def optimise(
    G: Generator,
    bundle: Any,
    w0: torch.Tensor,
    text_feats: torch.Tensor,
    *,
    steps: int = 300,
    lr: float = 0.1,
    l2_lambda: float = 0.008,
    mode: str = "edit",
    log_every: int = 10,
    on_step: Any = None,
    amp: bool = False,
) -> tuple[torch.Tensor, list[dict[str, Any]]]:
    """Optimise one W+ latent per text row from w0; returns latents [P, num_ws, w_dim] and the curve.

    `amp`: the synthesis and CLIP's image encoder run under autocast in `stylekit.device.amp_dtype`; the
    latent, Adam, the similarities and the loss stay fp32 (fp16 gets a GradScaler).
    """
    device = next(G.parameters()).device
    n = text_feats.shape[0]
    w0 = w0.to(device).expand(n, -1, -1).clone()
    latent = w0.clone().requires_grad_(True)
    opt = torch.optim.Adam([latent], lr=lr)
    scaler = grad_scaler(device, amp)  # enabled only for fp16 (CUDA without native bf16)
    scale = logit_scale(bundle)
    curve: list[dict[str, Any]] = []
    for step in range(steps):
        cur_lr = ramped_lr(step / steps, lr)
        opt.param_groups[0]["lr"] = cur_lr
        with autocast(device, amp):  # force_fp32: the network's own fp16 blocks stay off; --amp autocasts instead
            img = G.synthesis(latent, noise_mode="const", force_fp32=True)
            c_loss, cos = clip_terms(bundle, img, text_feats, scale)  # features compared in fp32
        l2 = (latent - w0).square().sum(dim=(1, 2))
        loss = c_loss.sum() + (l2_lambda * l2.sum() if mode == "edit" else 0.0)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        if step % max(1, log_every) == 0 or step == steps - 1:
            curve.append({"step": step, "lr": cur_lr, "loss": float(loss.detach()), "clip_loss": c_loss.detach().cpu().tolist(),
                          "similarity": cos.detach().cpu().tolist(), "l2": l2.detach().cpu().tolist()})
        if on_step is not None:
            on_step(step, float(loss.detach()))
    return latent.detach(), curve


def save_curves_png(path: Path, curve: list[dict[str, Any]], prompts: list[str]) -> Path:
    """CLIP cosine similarity and L2 distance to the start against step, one line per prompt."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


    steps = [c["step"] for c in curve]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.2))
    for i, prompt in enumerate(prompts):
        label = prompt if len(prompt) <= 30 else prompt[:29] + "…"
        ax1.plot(steps, [c["similarity"][i] for c in curve], label=label)
        ax2.plot(steps, [c["l2"][i] for c in curve], label=label)
    ax1.set_xlabel("step")
    ax1.set_ylabel("CLIP cosine similarity")
    ax2.set_xlabel("step")
    ax2.set_ylabel("L2: sum (w - w0)^2")
    ax1.legend(fontsize=7)
    fig.tight_layout()
    try:
        return write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    finally:
        plt.close(fig)


def styleclip_options(cfg: StyleClipConfig, network_id: str, latent_id: str | None, clip_id: str) -> dict[str, Any]:
    """What shapes styleclip's outputs (its rerun recipe)."""
    doc = cfg.to_dict()
    for key in ("out", "device", "fresh", "log_every"):
        doc.pop(key)
    return {**doc, "network": network_id, "latent": latent_id, "clip": clip_id}


def run_styleclip(cfg: StyleClipConfig) -> StyleClipResult:
    """Edit one start latent towards each prompt; write per-prompt edited.png + latent.npz, grid, curves, summary."""

    start = time.monotonic()
    prompts = [p.strip() for p in cfg.prompts]
    refuse_out_overlap(cfg.out, [Input("--latent", cfg.latent), Input("--network", cfg.network),
                                 Input("--clip-weights", cfg.clip_weights)])
    device = resolve_device(cfg.device)
    loaded, label = load_generator(cfg.network, device)
    G = copy.deepcopy(loaded.generator).eval().requires_grad_(False)
    w0, noise, start_desc = start_latent(G, cfg)
    if noise:
        apply_noise(G, noise, str(cfg.latent))
    bundle = load_clip(cfg.clip_model, cfg.clip_weights, device)
    bundle.model.requires_grad_(False)
    out = Path(cfg.out)
    options = styleclip_options(cfg, network_identity(cfg.network, loaded.source),
                                file_digest(cfg.latent) if cfg.latent is not None else None, str(bundle.weights_id))
    result = StyleClipResult(out=str(out), network=loaded.source, clip_model=f"{bundle.model_name} ({bundle.weights_id})",
                             start=start_desc, mode=str(cfg.mode), steps=cfg.steps, original=str(out / "original.png"),
                             grid=str(out / "grid.png"), curves=None, summary=str(out / "summary.json"),
                             standins=[x for x in (label, standin(cfg.clip_weights, "--clip-weights")) if x])
    with claim_out(out, "styleclip", options, cfg.fresh) as claim:
        warn_standins(result.standins)
        if claim.up_to_date:
            get_console().log(f"styleclip: {out} is up to date (same options; --fresh redoes it)")
            return _recorded_result(result, out, start)
        with torch.no_grad():
            text_feats = encode_text(bundle, prompts)
            original = G.synthesis(w0.to(device), noise_mode="const", force_fp32=True)
            _, cos_before = clip_terms(bundle, original.expand(len(prompts), -1, -1, -1), text_feats, logit_scale(bundle))
        console = get_console()
        with console.progress(cfg.steps, "styleclip") as task:
            def on_step(step: int, loss: float) -> None:
                task.advance()
                if step % 10 == 0:
                    task.update(loss=loss)

            latents, curve = optimise(G, bundle, w0, text_feats, steps=cfg.steps, lr=cfg.lr, l2_lambda=cfg.l2_lambda,
                                      mode=cfg.mode, log_every=cfg.log_every, on_step=on_step,
                                      amp=check_amp(cfg.amp, device))
        original_q = quantize(original.cpu())[0]
        save_image_atomic(out / "original.png", tensor_to_pil(original_q))
        scale = logit_scale(bundle)
        bufs = {k: v.detach().cpu() for k, v in noise_buffers(G).items()}
        tiles = [original_q]
        w0_dev = w0.to(device)
        for i, prompt in enumerate(prompts):
            with torch.no_grad():  # one image at a time: --steps 0 reproduces the original bit for bit
                img = G.synthesis(latents[i : i + 1], noise_mode="const", force_fp32=True)
                c_loss, cos = clip_terms(bundle, img, text_feats[i : i + 1], scale)
                l2 = float((latents[i : i + 1] - w0_dev).square().sum())
            folder = out / f"{i:02d}-{slug(prompt)}"
            folder.mkdir(parents=True, exist_ok=True)
            edited_q = quantize(img.cpu())[0]
            tiles.append(edited_q)
            save_image_atomic(folder / "edited.png", tensor_to_pil(edited_q))
            noise_keys = {f"noise.{k}": v.numpy().astype(np.float32) for k, v in bufs.items()}
            save_latents(folder / "latent.npz", latents[i : i + 1], network=loaded.source, prompt=prompt, **noise_keys)
            result.prompts.append(PromptResult(prompt=prompt, folder=str(folder), edited=str(folder / "edited.png"),
                                               latent=str(folder / "latent.npz"), clip_loss=float(c_loss[0]),
                                               similarity_before=float(cos_before[i]), similarity_after=float(cos[0]), l2=l2))
        save_grid(tiles, out / "grid.png", nrow=len(tiles))
        if curve:
            result.curves = str(save_curves_png(out / "curves.png", curve, prompts))
        result.seconds = round(time.monotonic() - start, 3)
        doc = {**{k: v for k, v in result.__dict__.items() if k not in ("prompts", "up_to_date")},
               "prompts": [p.__dict__ for p in result.prompts], "l2_lambda": cfg.l2_lambda, "lr": cfg.lr,
               "clip_input": f"nearest x{pool_factors(G.img_resolution, bundle.image_size)[0]}, "
                             f"avg-pool /{pool_factors(G.img_resolution, bundle.image_size)[1]} -> {bundle.image_size}px",
               "curve": curve}
        write_json_atomic(out / "summary.json", doc)
        claim.finish([out / "original.png", out / "grid.png", out / "summary.json", *([result.curves] if result.curves else []),
                      *[p.edited for p in result.prompts], *[p.latent for p in result.prompts]])
    return result


def _recorded_result(result: StyleClipResult, out: Path, start: float) -> StyleClipResult:
    """The result of an up-to-date rerun, read back from the finished run's summary.json."""

    doc = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    result.prompts = [PromptResult(**p) for p in doc["prompts"]]
    result.curves = doc.get("curves")
    result.up_to_date = True
    result.seconds = round(time.monotonic() - start, 3)
    return result
