"""`stylekit invert`: embed real images in a StyleGAN2 latent space by optimisation (GAN inversion).

Two published recipes, one loop:
- `--space w` (default): NVlabs stylegan2-ada-pytorch projector.py: one w (broadcast to every layer)
  starts at w_avg (10000 mapped samples), Adam(0.9, 0.999) lr 0.1 with a 5% rampup and a cosine
  rampdown over the last 25%, Gaussian noise on w of std w_std * 0.05 * max(0, 1 - t/0.75)^2, the
  per-layer noise maps optimised too with an autocorrelation penalty (weight 1e5, pyramid down to
  8x8) and renormalised to zero mean / unit variance after every step; LPIPS-VGG16 on images
  area-downsampled to at most 256 px.
- `--space w+`: Image2StyleGAN (Abdal et al. 2019) optimises one w per layer; pair it with
  `--loss vgg` (VGG16 conv1_1, conv1_2, conv3_2, conv4_2 feature MSE + pixel MSE) for their loss.
Targets are centre-cropped to a square and Lanczos-resized to the network resolution (as NVlabs).
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from stylekit.configs.edit import InvertConfig
from stylekit.data.images import list_images, load_rgb, pil_to_tensor, tensor_to_pil
from stylekit.device import autocast, grad_scaler
from stylekit.edit.generate import check_amp, load_generator
from stylekit.edit.latents import save_latents
from stylekit.edit.outdir import network_identity, standin, warn_standins
from stylekit.edit.schedule import NOISE_RAMP, ramped_lr, w_noise_scale
from stylekit.errors import BadImage, BadInput
from stylekit.io.atomic import save_image_atomic, write_atomic, write_json_atomic
from stylekit.io.console import get_console
from stylekit.io.paths import Input, open_regular, refuse_out_overlap
from stylekit.io.recipe import Recorded, file_digest, plan_outputs, recipe_digest, source_identity
from stylekit.io.rundir import LOCK_NAME
from stylekit.nets.stylegan2.networks import Generator
from stylekit.standins import is_random
from stylekit.train.distributed import agree, distributed_job, gather_lists
from stylekit.train.shares import lock_on_main, run_share

if TYPE_CHECKING:
    from stylekit.edit.align import FaceAlign
    from stylekit.nets.stylegan2.load import LoadedNetwork
    from stylekit.train.distributed import DistInfo

VGG_LAYERS = ("conv1_1", "conv1_2", "conv3_2", "conv4_2")  # Image2StyleGAN
DONE_FILE = "metrics.json"


@dataclass
class InvertItem:
    target: str
    out: str
    status: str  # done | skipped | failed
    final_loss: float | None = None
    psnr: float | None = None
    seconds: float | None = None
    reason: str | None = None


@dataclass
class InvertResult:
    out: str
    network: str
    resolution: int
    space: str
    loss: str
    steps: int
    items: list[InvertItem] = field(default_factory=list)
    standins: list[str] = field(default_factory=list)  # labels of random-init stand-ins used (not meaningful results)
    seconds: float = 0.0
    per_rank: list[int] = field(default_factory=list)  # under torchrun: targets each rank inverted (or failed), in rank order


@dataclass
class Projection:
    """What one optimisation returns (tensors on CPU)."""

    ws: torch.Tensor  # [1, num_ws, w_dim]
    noise: dict[str, torch.Tensor]  # synthesis buffer name -> noise_const map
    image: torch.Tensor  # [1, C, R, R] in [-1, 1]
    curve: list[dict[str, float]]
    frames: list[torch.Tensor]  # [C, R, R] in [-1, 1]
    final_loss: float


# ----------------------------------------------------------------------------- pieces


def preprocess_target(img: Image.Image, resolution: int) -> torch.Tensor:
    """Centre-crop to a square, Lanczos-resize to `resolution`: [1, 3, R, R] in [0, 1] (NVlabs projector)."""

    w, h = img.size
    s = min(w, h)
    img = img.crop(((w - s) // 2, (h - s) // 2, (w + s) // 2, (h + s) // 2))
    img = img.resize((resolution, resolution), Image.Resampling.LANCZOS)
    return pil_to_tensor(img)[None]


@torch.no_grad()
def w_stats(G: Generator, samples: int = 10000, seed: int = 123, batch: int = 1000) -> tuple[torch.Tensor, float]:
    """w_avg [1, 1, w_dim] and w_std (RMS distance to w_avg) from `samples` mapped z (NVlabs: RandomState(123))."""
    device = next(G.parameters()).device
    z = torch.from_numpy(np.random.RandomState(seed).randn(samples, G.z_dim)).float()
    ws = torch.cat([G.mapping(z[i : i + batch].to(device), None)[:, :1].cpu() for i in range(0, samples, batch)])
    w_avg = ws.mean(dim=0, keepdim=True)
    w_std = float(((ws - w_avg).square().sum() / samples) ** 0.5)
    return w_avg, w_std


def noise_buffers(G: Generator) -> dict[str, torch.Tensor]:
    """The synthesis network's per-layer constant noise maps (what noise_mode='const' uses)."""
    return {name: buf for name, buf in G.synthesis.named_buffers() if name.endswith("noise_const")}


def noise_regularization(bufs: dict[str, torch.Tensor]) -> torch.Tensor:
    """Squared autocorrelation at shift 1 (x and y) over a 2x-average-pool pyramid down to 8x8 (NVlabs).

    Maps are [H, W] (one target) or [N, 1, H, W] (a batch, one map per target): returns [N], per target.
    """
    reg = torch.zeros([], device=next(iter(bufs.values())).device) if bufs else torch.zeros([])
    for buf in bufs.values():
        noise = buf if buf.dim() == 4 else buf[None, None]
        while True:
            reg = reg + (noise * torch.roll(noise, shifts=1, dims=3)).mean(dim=(1, 2, 3)) ** 2
            reg = reg + (noise * torch.roll(noise, shifts=1, dims=2)).mean(dim=(1, 2, 3)) ** 2
            if noise.shape[2] <= 8:
                break
            noise = F.avg_pool2d(noise, kernel_size=2)
    return reg


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of two images in [0, 1] (peak 1)."""
    mse = float((a.float() - b.float()).square().mean())
    return 99.0 if mse <= 1e-10 else 10.0 * math.log10(1.0 / mse)


def quantize(img: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1] exactly as the saved PNG (NVlabs' x * 127.5 + 128, clamped, truncated to uint8)."""
    return (img * 127.5 + 128).clamp(0, 255).to(torch.uint8).float() / 255.0


class Objective:
    """The image distance being minimised: lpips | vgg (+ pixel MSE) | mse, against one fixed target.

    Images are in [-1, 1]. lpips is NVlabs' sum of squared LPIPS feature differences on images
    area-downsampled to <= 256 px; vgg is Image2StyleGAN's sum over layers of the mean squared feature
    difference (ImageNet-normalised [0, 1] input); the pixel term is mean((x - y)^2) in [-1, 1] units.
    With `amp` the perceptual network runs under autocast (`stylekit.device.amp_dtype`), the target's
    features too (an exact match then scores 0), and its features are compared and summed in fp32.
    """

    def __init__(self, kind: str, target: torch.Tensor, mse_weight: float, weights: str | None, device: torch.device,
                 amp: bool = False) -> None:
        self.kind = kind
        self.mse_weight = mse_weight
        self.target = target.to(device)
        self.device, self.amp = torch.device(device), amp
        self.net: Any = None
        if kind == "lpips":
            from stylekit.nets.lpips import LPIPS, load_lpips

            self.net = LPIPS(None, None).to(device) if is_random(weights) else load_lpips(weights, device)
            with torch.no_grad():
                self.target_feats = self._lpips(self.target)
        elif kind == "vgg":
            from stylekit.nets.vgg import VGGFeatures

            w = None if is_random(weights) else (weights or "vgg16")
            self.net = VGGFeatures("vgg16", VGG_LAYERS, weights=w).to(device)
            with torch.no_grad():
                self.target_feats = self._vgg(self.target)

    @staticmethod
    def _down(img: torch.Tensor) -> torch.Tensor:
        return F.interpolate(img, size=(256, 256), mode="area") if img.shape[2] > 256 else img

    def _lpips(self, img: torch.Tensor) -> torch.Tensor:
        with autocast(self.device, self.amp):
            return self.net.features(self._down(img)).float()

    def _vgg(self, img: torch.Tensor) -> dict[str, torch.Tensor]:
        with autocast(self.device, self.amp):
            feats = self.net((img + 1) / 2)
        return {k: v.float() for k, v in feats.items()}

    def per_target(self, synth: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(weighted total, unweighted parts), each [N]: image n against target n only."""
        parts: dict[str, torch.Tensor] = {}
        if self.kind == "lpips":
            parts["lpips"] = (self._lpips(synth) - self.target_feats).square().sum(dim=1)
        elif self.kind == "vgg":
            feats = self._vgg(synth)
            parts["vgg"] = sum((feats[k] - self.target_feats[k]).square().flatten(1).mean(dim=1) for k in VGG_LAYERS)  # type: ignore[assignment]
        if self.mse_weight > 0 or self.kind == "mse":
            parts["mse"] = (synth - self.target).square().flatten(1).mean(dim=1)
        zero = torch.zeros(synth.shape[0], device=synth.device)
        total = sum((v * (self.mse_weight if k == "mse" else 1.0) for k, v in parts.items()), zero)
        return total, parts

    def __call__(self, synth: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Summed over the batch (independent targets): the scalar loss and its parts as floats."""
        total, parts = self.per_target(synth)
        return total.sum(), {k: float(v.detach().sum()) for k, v in parts.items()}


def project(G: Generator, target: torch.Tensor, objective: Objective, **options: Any) -> Projection:
    """Optimise a latent (and the noise maps) so that G(latent) matches `target` ([1, 3, R, R] in [0, 1])."""
    return project_batch(G, target, objective, **options)[0]


def project_batch(
    G: Generator,
    target: torch.Tensor,
    objective: Objective,
    *,
    space: str = "w",
    steps: int = 1000,
    lr: float = 0.1,
    initial_noise: float = 0.05,
    noise_ramp: float = NOISE_RAMP,
    noise_reg: float = 1e5,
    w_avg: torch.Tensor,
    w_std: float,
    seed: int = 303,
    log_every: int = 10,
    frame_every: int = 0,
    on_step: Callable[[int, float], None] | None = None,
    amp: bool = False,
) -> list[Projection]:
    """Project N targets ([N, 3, R, R] in [0, 1]) at once; one Projection per target.

    Each target has its own latent and its own noise maps ([N, 1, H, W] buffers broadcast over the
    channels); the random draws are those of a single run (same seed) repeated per target, and the
    loss is the sum of independent per-target losses, so with Adam (element-wise) each target follows
    its single-target run up to float rounding.

    `amp`: the synthesis runs under autocast in `stylekit.device.amp_dtype` (give the objective the same
    `amp` for its perceptual network); the latents, noise maps, Adam and the loss sums stay fp32, fp16
    gets a GradScaler, and the returned image is rendered in fp32.
    """
    device = next(G.parameters()).device
    count = target.shape[0]
    G = copy.deepcopy(G).eval().requires_grad_(False)  # its noise buffers become optimisation variables
    gen = torch.Generator(device="cpu").manual_seed(seed)
    num_ws = G.num_ws
    start = w_avg.to(device).reshape(1, 1, G.w_dim)
    w_opt = (start if space == "w" else start.repeat(1, num_ws, 1)).repeat(count, 1, 1).requires_grad_(True)
    bufs = noise_buffers(G)
    for name, buf in list(bufs.items()):
        draw = torch.randn(buf.shape, generator=gen, device="cpu").to(device)
        batched = draw.expand(count, 1, *buf.shape).clone().requires_grad_(True)
        module_name, _, attr = name.rpartition(".")
        setattr(G.synthesis.get_submodule(module_name), attr, batched)  # a buffer: the copy's own maps, per target
        bufs[name] = batched
    opt = torch.optim.Adam([w_opt, *bufs.values()], betas=(0.9, 0.999), lr=lr)
    scaler = grad_scaler(device, amp)  # enabled only for fp16 (CUDA without native bf16)
    curves: list[list[dict[str, float]]] = [[] for _ in range(count)]
    frames: list[list[torch.Tensor]] = [[] for _ in range(count)]
    loss_values = [float("nan")] * count
    target_dev = target.to(device)
    for step in range(steps):
        t = step / steps
        cur_lr = ramped_lr(t, lr)
        for group in opt.param_groups:
            group["lr"] = cur_lr
        scale = w_noise_scale(t, w_std, initial_noise, noise_ramp)
        w_noise = torch.randn((1, *w_opt.shape[1:]), generator=gen, device="cpu").to(device) * scale
        ws = w_opt + w_noise
        if space == "w":
            ws = ws.repeat(1, num_ws, 1)
        with autocast(device, amp):  # force_fp32: the network's own fp16 blocks stay off; --amp autocasts instead
            synth = G.synthesis(ws, noise_mode="const", force_fp32=True).float()
        dist, parts = objective.per_target(synth)
        reg = noise_regularization(bufs) if noise_reg > 0 and bufs else torch.zeros([], device=device)
        loss = dist + noise_reg * reg
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss.sum()).backward()
        scaler.step(opt)
        scaler.update()
        with torch.no_grad():
            for buf in bufs.values():
                buf -= buf.mean(dim=(-2, -1), keepdim=True)
                buf *= buf.square().mean(dim=(-2, -1), keepdim=True).rsqrt()
        loss_values = loss.detach().expand(count).tolist()
        if step % max(1, log_every) == 0 or step == steps - 1:
            dists, regs = dist.detach().expand(count).tolist(), reg.detach().expand(count).tolist()
            part_values = {k: v.detach().tolist() for k, v in parts.items()}
            with torch.no_grad():
                psnrs = [psnr(quantize(synth.detach()[i : i + 1]), target_dev[i : i + 1]) for i in range(count)]
            for i in range(count):
                curves[i].append({"step": step, "loss": loss_values[i], "dist": dists[i], "noise_reg": regs[i],
                                  "psnr": round(psnrs[i], 4), "lr": cur_lr, **{f"loss_{k}": v[i] for k, v in part_values.items()}})
        if frame_every and (step % frame_every == 0 or step == steps - 1):
            for i in range(count):
                frames[i].append(synth.detach()[i].cpu())
        if on_step is not None:
            on_step(step, sum(loss_values))
    with torch.no_grad():
        ws_final = w_opt.detach() if space == "w+" else w_opt.detach().repeat(1, num_ws, 1)
        image = G.synthesis(ws_final, noise_mode="const", force_fp32=True).cpu()
        if steps == 0:
            loss_values = objective.per_target(image.to(device))[0].tolist()
    return [Projection(ws=ws_final[i : i + 1].cpu(), noise={k: v.detach()[i, 0].cpu() for k, v in bufs.items()},
                       image=image[i : i + 1], curve=curves[i], frames=frames[i], final_loss=loss_values[i])
            for i in range(count)]


# ----------------------------------------------------------------------------- outputs


def save_latent_file(path: Path, proj: Projection, **extra: Any) -> Path:
    """latent.npz in the shared format (stylekit.edit.latents), plus `noise.<buffer>` maps."""

    noise = {f"noise.{name}": t.numpy().astype(np.float32) for name, t in proj.noise.items()}
    return save_latents(path, proj.ws, **extra, **noise)


def load_noise(path: str | Path) -> dict[str, torch.Tensor]:
    """The `noise.<buffer>` maps of a latent file written by invert (empty for other latent files)."""
    with open_regular(path, "latent file") as fh, np.load(fh, allow_pickle=False) as data:
        return {k[len("noise."):]: torch.from_numpy(np.asarray(data[k], dtype=np.float32))
                for k in data.files if k.startswith("noise.")}


def apply_noise(G: Generator, noise: dict[str, torch.Tensor], source: str = "latent file") -> None:
    """Copy saved noise maps into G's noise_const buffers (BadInput when they do not fit this network)."""
    bufs = noise_buffers(G)
    for name, value in noise.items():
        if name not in bufs or tuple(bufs[name].shape) != tuple(value.shape):
            want = tuple(bufs[name].shape) if name in bufs else "no such layer"
            raise BadInput(f"{source}: noise map '{name}' has shape {tuple(value.shape)}, the network has {want}",
                           hint="use a latent file made for this network")
    with torch.no_grad():
        for name, value in noise.items():
            bufs[name].copy_(value.to(bufs[name].device))


def _to_pil(img01: torch.Tensor) -> Image.Image:

    return tensor_to_pil(img01)


def _side_by_side(a01: torch.Tensor, b01: torch.Tensor) -> Image.Image:
    return _to_pil(torch.cat([a01, b01], dim=2))


def save_curve_png(path: Path, curve: list[dict[str, float]], title: str) -> Path:
    """Loss (log scale) and PSNR against step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


    steps = [c["step"] for c in curve]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.2))
    ax1.plot(steps, [max(c["loss"], 1e-12) for c in curve])
    ax1.set_yscale("log")
    ax1.set_xlabel("step")
    ax1.set_ylabel("loss")
    ax2.plot(steps, [c["psnr"] for c in curve], color="tab:green")
    ax2.set_xlabel("step")
    ax2.set_ylabel("PSNR (dB)")
    fig.suptitle(title)
    fig.tight_layout()
    try:
        return write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    finally:
        plt.close(fig)


def _save_gif(path: Path, target01: torch.Tensor, frames: list[torch.Tensor]) -> Path:

    pils = [_side_by_side(target01, quantize(f[None])[0]) for f in frames]
    if pils[0].width > 512:
        size = (512, 512 * pils[0].height // pils[0].width)
        pils = [p.resize(size, Image.Resampling.LANCZOS) for p in pils]
    return write_atomic(path, lambda tmp: pils[0].save(tmp, format="GIF", save_all=True, append_images=pils[1:],
                                                       duration=80, loop=0))


# ----------------------------------------------------------------------------- entry point


def _targets(target: Path) -> tuple[list[tuple[Path, str]], bool]:
    """(image path, output sub-folder) pairs; a single file writes into --out itself."""

    if not target.exists():
        raise BadInput(f"target {target} does not exist", hint="give an image file or a folder of images")
    if target.is_file():
        return [(target, "")], True
    paths = list_images(target)
    if not paths:
        raise BadInput(f"target folder {target} holds no images", hint="supported: png, jpg, jpeg, webp, bmp, ...")
    out: list[tuple[Path, str]] = []
    used: set[str] = set()
    for p in paths:
        name = "__".join(p.relative_to(target).with_suffix("").parts)
        if name in used:
            name = f"{name}-{p.suffix.lstrip('.').lower()}"
        used.add(name)
        out.append((p, name))
    return out, False


def _recipe(cfg: InvertConfig, mse_weight: float, network_file: str) -> dict[str, Any]:
    """What shapes an inversion (io/recipe.py): the options, the network's and perceptual weights' bytes."""

    weights = cfg.vgg_weights
    shaping = {k: v for k, v in cfg.to_dict().items() if k not in ("target", "network", "out", "device", "log_every", "fresh", "batch")}
    shaping["perceptual_weights"] = shaping.pop("vgg_weights")  # the name recorded before the option was renamed
    if not shaping["amp"]:  # fp32 results recorded before --amp existed stay current
        del shaping["amp"]
    return {**shaping, "mse_weight": mse_weight, "network": network_identity(network_file, network_file),
            "perceptual_weights": file_digest(weights) if weights and Path(weights).expanduser().is_file() else weights}


OUTPUT_FILES = frozenset({"latent.npz", "projected.png", "target.png", "compare.png", "progress.gif", "curve.png", DONE_FILE})


def _recorded(folders: list[Path]) -> dict[Path, Recorded | None]:
    """For each finished output folder (its metrics.json exists): the recipe and source it records; None for a
    folder holding files invert does not write and no record (another command's output: never mixed into)."""

    found: dict[Path, Recorded | None] = {}
    for folder in folders:
        done = folder / DONE_FILE
        if not done.is_file():
            if folder.is_dir() and any(p.is_file() and p.name not in OUTPUT_FILES | {LOCK_NAME} for p in folder.iterdir()):
                found[folder] = None
            continue
        try:
            doc = json.loads(done.read_text(encoding="utf-8"))
            found[folder] = Recorded(str(doc["recipe"]), str(doc["source"]))
        except (OSError, ValueError, KeyError, TypeError):
            found[folder] = None
    return found


def run_invert(cfg: InvertConfig) -> InvertResult:
    """Invert one image (outputs in --out) or every image of a folder (--out/<name>/); done ones are skipped.

    Under torchrun each rank inverts its block of the targets left to do and writes their folders; rank 0 holds
    the lock and reports every rank's items."""

    start = time.monotonic()
    refuse_out_overlap(cfg.out, [Input("TARGET", cfg.target, data_folder=True), Input("--network", cfg.network),
                                 Input("--vgg-weights", cfg.vgg_weights)])
    targets, single = _targets(Path(cfg.target))
    if single:  # an unreadable single target is a usage error (exit 2) before anything loads
        load_rgb(targets[0][0])
    with distributed_job(cfg.device) as dist:
        result = _invert(cfg, targets, single, dist)
    result.seconds = round(time.monotonic() - start, 3)
    return result


def _load_checked(cfg: InvertConfig, device: torch.device) -> tuple[LoadedNetwork, str | None, FaceAlign | None]:
    """(loaded network, its stand-in label, the face aligner or None); BadInput for networks invert cannot use."""

    loaded, label = load_generator(cfg.network, device)
    G = loaded.generator.eval().requires_grad_(False)
    if G.c_dim > 0:
        raise BadInput("invert does not support conditional networks", hint="use an unconditional network")
    if G.img_channels != 3:
        raise BadInput(f"invert needs an RGB network, this one has {G.img_channels} channels")
    aligner = None
    if cfg.align is not None:
        from stylekit.edit.align import FaceAlign

        aligner = FaceAlign(cfg.align, G.img_resolution, cfg.face_detector).load()
    return loaded, label, aligner


def _invert(cfg: InvertConfig, targets: list[tuple[Path, str]], single: bool, dist: DistInfo) -> InvertResult:

    device = dist.device
    loaded, label, aligner = agree(lambda: _load_checked(cfg, device), dist)
    G = loaded.generator
    mse_weight = cfg.mse
    recipe = recipe_digest(_recipe(cfg, mse_weight, loaded.source))
    out = Path(cfg.out)
    jobs = [(path, out / name if name else out) for path, name in targets]
    standins = [x for x in (label, standin(cfg.vgg_weights, "--vgg-weights") if cfg.loss != "mse" else None) if x]
    lock = lock_on_main(out, dist)
    try:
        plan = agree(lambda: plan_outputs(jobs, _recorded([folder for _, folder in jobs]), recipe, out, cfg.fresh), dist)
        warn_standins(standins)
        amp = check_amp(cfg.amp, device)
        result = InvertResult(out=str(out), network=loaded.source, resolution=G.img_resolution, space=str(cfg.space),
                              loss=str(cfg.loss), steps=cfg.steps, standins=standins)
        console = get_console()
        for path, folder in plan.current:
            console.log(f"invert: skipping {path} (up to date: {folder / DONE_FILE}; --fresh redoes it)")
            result.items.append(InvertItem(str(path), str(folder), "skipped"))
        todo = plan.todo
        mine: list[InvertItem] = []  # this rank's targets
        stats: list[tuple[torch.Tensor, float]] = []  # w_avg, w_std: computed once, when a target first needs them

        def run_batch(batch: list[tuple[Path, Path, torch.Tensor]]) -> None:
            """Project the prepared targets of `batch` together, then write each one's outputs."""
            t0 = time.monotonic()
            if not stats:
                stats.append(w_stats(G, cfg.w_avg_samples))
            w_avg, w_std = stats[0]
            targets = torch.cat([target for _, _, target in batch])
            objective = Objective(cfg.loss, targets * 2 - 1, mse_weight, cfg.vgg_weights, device, amp)
            frame_every = max(1, cfg.steps // 50) if cfg.save_video else 0
            with console.progress(cfg.steps, f"invert {', '.join(p.name for p, _, _ in batch)}") as task:
                def on_step(step: int, loss: float, task: Any = task) -> None:
                    task.advance()
                    if step % 10 == 0:
                        task.update(loss=loss)

                projections = project_batch(
                    G, targets, objective, space=cfg.space, steps=cfg.steps, lr=cfg.lr, initial_noise=cfg.initial_noise,
                    noise_reg=cfg.noise_reg, w_avg=w_avg, w_std=float(w_std), seed=cfg.seed,
                    log_every=cfg.log_every, frame_every=frame_every, on_step=on_step, amp=amp)
            share = (time.monotonic() - t0) / len(batch)  # each target is charged its share of the batch
            for (path, folder, target), proj in zip(batch, projections, strict=True):
                t1 = time.monotonic()
                folder.mkdir(parents=True, exist_ok=True)
                projected01 = quantize(proj.image)[0]
                target01 = target[0]
                final_psnr = psnr(projected01, target01)
                save_latent_file(folder / "latent.npz", proj, network=loaded.source, space=str(cfg.space), target=str(path))
                save_image_atomic(folder / "projected.png", _to_pil(projected01))
                save_image_atomic(folder / "target.png", _to_pil(target01))
                save_image_atomic(folder / "compare.png", _side_by_side(target01, projected01))
                files = ["latent.npz", "projected.png", "target.png", "compare.png"]  # (OUTPUT_FILES)
                if cfg.save_video and proj.frames:
                    _save_gif(folder / "progress.gif", target01, proj.frames)
                    files.append("progress.gif")
                if proj.curve:
                    save_curve_png(folder / "curve.png", proj.curve, f"{path.name}: {cfg.loss}, {cfg.space}")
                    files.append("curve.png")
                seconds = round(share + time.monotonic() - t1, 3)
                doc = {
                    "target": str(path), "network": loaded.source, "resolution": G.img_resolution,
                    "preprocessing": (f"{cfg.align}-aligned face crop at {G.img_resolution}x{G.img_resolution}" if cfg.align else
                                      f"centre crop to a square, Lanczos resize to {G.img_resolution}x{G.img_resolution}"),
                    "space": str(cfg.space), "loss": str(cfg.loss), "mse_weight": mse_weight, "steps": cfg.steps,
                    "final_loss": proj.final_loss, "psnr": round(final_psnr, 4), "seconds": seconds,
                    "w_std": w_std, "files": files, "curve": proj.curve,
                    "config": cfg.to_dict(),
                    "recipe": recipe, "source": source_identity(path),
                }
                write_json_atomic(folder / DONE_FILE, doc)  # written last: marks this target done
                console.log(f"invert: {path.name}: loss {proj.final_loss:.4g}, PSNR {final_psnr:.2f} dB, {seconds:.1f}s")
                mine.append(InvertItem(str(path), str(folder), "done", proj.final_loss, round(final_psnr, 4), seconds))

        def work(block: range) -> list[InvertItem]:
            """Load, prepare and invert this rank's targets in batches of --batch."""
            ready: list[tuple[Path, Path, torch.Tensor]] = []
            for path, folder in todo[block.start : block.stop]:
                try:
                    image = load_rgb(path)
                    if aligner is not None:
                        image = aligner(image)
                    target = preprocess_target(image, G.img_resolution)
                except (BadImage, ValueError) as exc:
                    reason = exc.reason if isinstance(exc, BadImage) else str(exc)
                    if single and isinstance(exc, BadImage):
                        raise
                    if single:
                        raise BadInput(f"cannot invert {path}: {reason}", hint="give a photo with a visible frontal face, or drop --align") from None
                    console.warn(f"invert: skipping {path}: {reason}")
                    mine.append(InvertItem(str(path), str(folder), "failed", reason=reason))
                    continue
                ready.append((path, folder, target))
                if len(ready) == cfg.batch:
                    run_batch(ready)
                    ready = []
            if ready:
                run_batch(ready)
            return mine

        items, result.per_rank = run_share(len(todo), work, dist)
        result.items += gather_lists(items, dist)
    finally:
        if lock is not None:
            lock.release()
    return result
