"""train-pix2pix: pix2pix whose UNet decoder reads K style reference images.

Loop (per batch): G(A, refs) -> fake B; D step on (A, real B) vs (A, fake B) with loss
0.5 * (real + fake); G step with GAN + lambda_l1 * L1 (+ lambda_vgg * VGG perceptual). Adam 2e-4,
betas (0.5, 0.999); `epochs` in total: the LR is constant, then decays linearly to zero over the last
`decay_epochs` (junyanz's schedule; his n_epochs + n_epochs_decay is our epochs). The shared runner
(stylekit.train.runner) gives checkpoints of networks, optimizers,
schedulers, scaler, RNG and epoch/batch counters, auto-resume, SIGTERM/SIGINT -> save + exit 130,
and the NaN guard. Under torchrun: DDP, sharded data, global-batch BatchNorm for --norm batch (sync_norm.py).

Every epoch: held-out L1 with references of the right style (`val_l1`) and of a wrong style
(`val_l1_wrong_refs`) — if style flows from the references, the first is clearly lower —, a
samples grid (A | refs | fake B | real B), loss curves, and the generator export
(OUT/generator.safetensors + OUT/generator.json) that `stylekit transfer --method pix2pix` reads.
With references, the reference encoder is also exported as a style model (OUT/style_model.*); with
--ref-cls-weight/--ref-metric-weight its code is trained as a style embedding too (pix2pix_style.py).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from stylekit.configs.pix2pix import Pix2PixConfig
from stylekit.data.grid import save_labelled_grid
from stylekit.data.pairs import PairData, PairDataset, build_pair_data
from stylekit.device import amp_dtype, autocast, configure_backends, grad_scaler
from stylekit.io.atomic import write_atomic, write_json_atomic
from stylekit.io.console import get_console
from stylekit.io.paths import Input, refuse_out_overlap
from stylekit.io.rundir import RunDir
from stylekit.nets.patchgan import PatchGAN
from stylekit.nets.unet import GeneratorConfig, RefUNet, inference_mode
from stylekit.nets.vgg import VGGFeatures
from stylekit.train.distributed import (
    DistInfo,
    all_reduce_mean,
    distributed_job,
    make_loader,
    unwrap,
    wrap_ddp,
)
from stylekit.train.pix2pix_style import (
    GeneratorWithStyleHead,
    RefStyleLossConfig,
    code_batch,
    export_ref_style_model,
    ref_style_loss,
)
from stylekit.train.plan import log_plan
from stylekit.train.runner import TrainRunner, reapply_schedule, seed_everything
from stylekit.train.stats import RunningMeans
from stylekit.train.sync_norm import global_batchnorm

GENERATOR_FILE = "generator.safetensors"
GENERATOR_JSON = "generator.json"


def generator_config(cfg: Pix2PixConfig) -> GeneratorConfig:
    return GeneratorConfig(size=cfg.size, ngf=cfg.ngf, norm=cfg.norm, dropout=cfg.dropout, refs=cfg.refs,
                           ref_inject=cfg.ref_inject, ref_encoder=cfg.ref_encoder, style_dim=cfg.style_dim,
                           ref_size=cfg.ref_size or min(cfg.size, 128), vgg_weights=cfg.vgg_weights,
                           direction=cfg.direction, net_g=cfg.net_g)


def ref_style(cfg: Pix2PixConfig) -> RefStyleLossConfig:
    return RefStyleLossConfig(cfg.ref_cls_weight, cfg.ref_metric_weight)


@dataclass
class Pix2PixResult:
    out: str
    data_format: str
    train_pairs: int
    val_pairs: int
    styles: int
    refs: int
    epochs: int
    steps: int
    seconds: float
    params_g: int
    params_d: int
    val_l1: float | None
    val_l1_wrong_refs: float | None
    generator: str
    resumed_from_step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ratio(self) -> float | None:
        if self.val_l1 is None or not self.val_l1_wrong_refs:
            return None
        return self.val_l1 / self.val_l1_wrong_refs


def _shown(values: dict[str, float]) -> dict[str, float]:
    """What the progress bar shows of the logged means."""
    return {"l1": values["loss_G_L1"], "d": values["loss_D_real"] + values["loss_D_fake"]}


def gan_loss(pred: torch.Tensor, real: bool, mode: str) -> torch.Tensor:
    """vanilla: BCE with logits; lsgan: least squares. Targets 1 (real) / 0 (fake). Computed in fp32
    (pred is cast before the target is built from it: under autocast it arrives in bf16/fp16)."""
    pred = pred.float()
    target = torch.ones_like(pred) if real else torch.zeros_like(pred)
    if mode == "lsgan":
        return F.mse_loss(pred, target)
    return F.binary_cross_entropy_with_logits(pred, target)


class DiscriminatorPair(nn.Module):
    """D on (A, fake) and (A, real) in one forward, so DDP sees one forward per backward while the
    two batches keep separate batch-norm statistics (as junyanz computes them)."""

    def __init__(self, d: PatchGAN) -> None:
        super().__init__()
        self.d = d

    def forward(self, a: torch.Tensor, fake: torch.Tensor, real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.d(a, fake), self.d(a, real)


class PerceptualLoss(nn.Module):
    """Mean L1 between frozen VGG19 features (relu1_1..relu4_1) of two images in [-1, 1]."""

    def __init__(self, weights: str) -> None:
        super().__init__()

        self.vgg = VGGFeatures("vgg19", layers=("relu1_1", "relu2_1", "relu3_1", "relu4_1"), weights=weights)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        fx, fy = self.vgg((x.float() + 1) / 2), self.vgg((y.float() + 1) / 2)
        return sum(F.l1_loss(fx[k], fy[k].detach()) for k in fx) / len(fx)


def linear_decay(epochs: int, decay_epochs: int):  # noqa: ANN201 - returns a LambdaLR factor function
    """junyanz 'linear' policy inside `epochs` in total: factor 1, then linearly towards 0 over the last
    `decay_epochs`."""
    constant = epochs - decay_epochs

    def factor(epoch: int) -> float:
        return 1.0 - max(0, epoch + 1 - constant) / float(decay_epochs + 1)

    return factor


def memory_format(amp: bool) -> torch.memory_format:
    """The networks' and images' layout: channels-last (NHWC) under low-precision autocast, where oneDNN
    and cuDNN run these convolutions fastest; NCHW in fp32, where channels-last measured 12% (256 px)
    and 9% (512 px) slower per CPU step (docs/performance.md)."""
    return torch.channels_last if amp else torch.contiguous_format


def _to(batch: dict[str, Any], device: torch.device, key: str, layout: torch.memory_format) -> torch.Tensor | None:
    value = batch.get(key)
    if not isinstance(value, torch.Tensor):
        return None
    value = value.to(device, non_blocking=True)
    return value.contiguous(memory_format=layout) if value.dim() == 4 else value


def adam(params: list[nn.Parameter], lr: float, beta1: float, device: torch.device) -> torch.optim.Adam:
    """pix2pix's Adam(lr, (beta1, 0.999)), fused into one kernel per step where torch has that for the
    device (CPU, CUDA): the per-tensor loop costs ~5% of a 256 px batch-1 step on CPU."""
    return torch.optim.Adam(params, lr=lr, betas=(beta1, 0.999), fused=device.type in ("cpu", "cuda"))


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


# ------------------------------------------------------------------------------------- evaluation
@torch.no_grad()
def evaluate(g: RefUNet, val: PairDataset, dist: DistInfo, limit: int, amp: bool) -> dict[str, float | None]:
    """Held-out L1 (mean |fake - real| in [0, 1] pixel units) with right-style and wrong-style refs.

    Each rank takes every world_size-th image; sums are reduced over ranks. One image at a time,
    in inference mode (dropout off, per-image normalisation statistics).
    """
    device = dist.device
    n = min(len(val), limit) if limit > 0 else len(val)
    sums = torch.zeros(3, device=device, dtype=torch.float64)
    with inference_mode(g):
        for j in range(dist.rank, n, dist.world_size):
            item = val[j * len(val) // n]  # evenly spread: the val set is grouped by style
            a, b = item["a"][None].to(device), item["b"][None].to(device)
            refs = item["refs"][None].to(device) if "refs" in item else None
            with autocast(device, amp):
                fake = g(a, refs)
            sums[0] += ((fake.float() - b).abs().mean() / 2).double()
            if "wrong_refs" in item:
                with autocast(device, amp):
                    fake_w = g(a, item["wrong_refs"][None].to(device))
                sums[1] += ((fake_w.float() - b).abs().mean() / 2).double()
            sums[2] += 1
    has_wrong = "wrong_refs" in val[0] if n else False
    sums = all_reduce_mean(sums, dist)  # sums / world: ratios are unaffected
    if sums[2] <= 0:
        return {"val_l1": None, "val_l1_wrong_refs": None}
    return {"val_l1": float(sums[0] / sums[2]), "val_l1_wrong_refs": float(sums[1] / sums[2]) if has_wrong else None}


@torch.no_grad()
def sample_grid(g: RefUNet, items: list[dict[str, Any]], device: torch.device, amp: bool, path: Path) -> None:
    """One row per item, under column headers: structure | ref 1..K | output | target (all at the output size)."""

    rows: list[list[torch.Tensor]] = []
    with inference_mode(g):
        for item in items:
            a = item["a"][None].to(device)
            refs = item["refs"][None].to(device) if "refs" in item else None
            with autocast(device, amp):
                fake = g(a, refs)
            size = a.shape[-1]
            row = [(item["a"] + 1) / 2]
            if refs is not None:
                row += [F.interpolate(r[None], size=(size, size), mode="bilinear", align_corners=False)[0].cpu()
                        for r in item["refs"]]
            row += [(fake[0].float().cpu() + 1) / 2, (item["b"] + 1) / 2]
            rows.append(row)
    n_refs = len(rows[0]) - 3 if rows else 0
    columns = ["structure", *(f"ref {k + 1}" for k in range(n_refs)), "output", "target"]
    save_labelled_grid(path, rows, columns)


def plot_curves(records: list[dict[str, Any]], path: Path) -> None:
    """Loss parts per logged step and the two held-out L1 curves per epoch (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


    train = [r for r in records if r.get("kind") == "train"]
    epochs = [r for r in records if r.get("kind") == "epoch"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for key in ("loss_G_GAN", "loss_G_L1", "loss_G_VGG", "loss_D_real", "loss_D_fake"):
        pts = [(r["step"], r[key]) for r in train if r.get(key) is not None]
        if pts:
            ax1.plot(*zip(*pts, strict=True), label=key)
    ax1.set_xlabel("step")
    ax1.set_yscale("log")
    ax1.set_title("training losses")
    ax1.legend(fontsize=8)
    for key, label in (("val_l1", "val L1 (right-style refs)"), ("val_l1_wrong_refs", "val L1 (wrong-style refs)")):
        pts = [(r["epoch"], r[key]) for r in epochs if r.get(key) is not None]
        if pts:
            ax2.plot(*zip(*pts, strict=True), marker="o", label=label)
    ax2.set_xlabel("epoch")
    ax2.set_title("held-out L1")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=90))
    plt.close(fig)


# ----------------------------------------------------------------------------------------- export
def export_generator(g: RefUNet, out: Path, extra: dict[str, Any]) -> Path:
    """OUT/generator.safetensors (trainable weights) + OUT/generator.json (architecture + training info)."""
    from safetensors.torch import save_file


    tensors = {k: v.detach().cpu().contiguous() for k, v in g.trainable_state_dict().items()}
    path = out / GENERATOR_FILE
    write_atomic(path, lambda tmp: save_file(tensors, str(tmp), metadata={"format": "stylekit-pix2pix"}))
    write_json_atomic(out / GENERATOR_JSON, {"format": "stylekit-pix2pix", "version": 1,
                                             "generator": dataclasses.asdict(g.cfg), **extra})
    return path


# ----------------------------------------------------------------------------------------- training
def _build(cfg: Pix2PixConfig, dist: DistInfo, layout: torch.memory_format) -> tuple[RefUNet, PatchGAN]:
    g = RefUNet(generator_config(cfg), grad_checkpoint=cfg.grad_checkpoint)
    d = PatchGAN(6, cfg.ndf, cfg.n_layers_d, cfg.norm)  # type: ignore[arg-type]
    if dist.distributed and cfg.norm == "batch":  # statistics of the global batch, no host read per layer
        g = global_batchnorm(g, dist)  # type: ignore[assignment]
        d = global_batchnorm(d, dist)  # type: ignore[assignment]
    # `_to` hands the images over in the same layout so no conversion happens per layer.
    return (g.to(dist.device, memory_format=layout),  # type: ignore[call-overload]
            d.to(dist.device, memory_format=layout))  # type: ignore[call-overload]


def _sample_items(data: PairData, cfg: Pix2PixConfig) -> list[dict[str, Any]]:
    source = data.val
    if source is None:
        t = data.train
        source = PairDataset(t.pairs[: cfg.samples], t.size, t.k, t.ref_pool, t.ref_size, t.direction,  # type: ignore[arg-type]
                             train=False, seed=cfg.seed, preprocess=t.preprocess)
    by_label: dict[str, list[int]] = {}
    for i, pair in enumerate(source.pairs):
        by_label.setdefault(pair.label, []).append(i)
    picks: list[int] = []  # round-robin over styles, so the grid shows several
    for rank in range(len(source)):
        for indices in by_label.values():
            if rank < len(indices) and len(picks) < cfg.samples:
                picks.append(indices[rank])
    return [source[i] for i in picks]


def train_pix2pix(cfg: Pix2PixConfig) -> Pix2PixResult:
    """Train (or resume) a reference-conditioned pix2pix in `cfg.out`; see the module docstring."""
    refuse_out_overlap(cfg.out, [Input("DATA", cfg.data, data_folder=True)])
    with distributed_job(cfg.device) as dist:
        # the data is checked before the run directory is touched: bad input leaves --out as it was
        data = build_pair_data(cfg.data, cfg.size, cfg.refs, cfg.direction, cfg.val_fraction, cfg.seed,  # type: ignore[arg-type]
                               cfg.ref_size or None, style_negatives=ref_style(cfg).enabled, layout=cfg.layout,
                               preprocess=cfg.preprocess, flip=cfg.flip)
        with RunDir(cfg.out, fresh=cfg.fresh) as run_dir:
            return _train(cfg, dist, run_dir, data)


def _train(cfg: Pix2PixConfig, dist: DistInfo, run_dir: RunDir, data: PairData) -> Pix2PixResult:
    console = get_console()
    device = dist.device
    amp = cfg.amp and amp_dtype(device) is not None
    if cfg.amp and not amp:
        console.warn(f"--amp: {device} has no native low-precision type; training in fp32")
    configure_backends(device, training=True, tf32=True)
    seed_everything(cfg.seed, dist.rank)
    per_epoch = max(1, len(data.train) // cfg.batch)  # drop_last: whole global batches
    log_plan("train-pix2pix", epochs=cfg.epochs, steps_per_epoch=per_epoch, total_steps=per_epoch * cfg.epochs,
             detail=f"constant lr for {cfg.epochs - cfg.decay}, linear decay over the last {cfg.decay}")
    if data.val is None:
        console.warn("no held-out pairs (--val-fraction 0 and no split in the manifest): val_l1 is not measured")
    elif len(data.labels) < 2 and cfg.refs > 0:
        console.warn("a single style label: val_l1_wrong_refs cannot be measured")
    console.log(f"{data.fmt} data: {len(data.train)} training pairs, {len(data.val) if data.val else 0} held out, "
                f"{len(data.labels)} style(s); refs {cfg.refs}, size {cfg.size}")

    layout = memory_format(amp)
    g, d = _build(cfg, dist, layout)
    params_g, params_d = count_params(g), count_params(d)
    console.log(f"generator {params_g / 1e6:.2f}M parameters, discriminator {params_d / 1e6:.2f}M")
    vgg_loss = PerceptualLoss(cfg.vgg_weights).to(device) if cfg.lambda_vgg > 0 else None
    style_classes = data.train.sampler.labels
    head = GeneratorWithStyleHead(g, len(style_classes)).to(device) if ref_style(cfg).enabled else None

    opt_g = adam([p for p in (head or g).parameters() if p.requires_grad], cfg.lr, cfg.beta1, device)
    opt_d = adam(list(d.parameters()), cfg.lr, cfg.beta1, device)
    sched_g = torch.optim.lr_scheduler.LambdaLR(opt_g, linear_decay(cfg.epochs, cfg.decay))
    sched_d = torch.optim.lr_scheduler.LambdaLR(opt_d, linear_decay(cfg.epochs, cfg.decay))
    scaler = grad_scaler(device, amp)

    loader = make_loader(data.train, dist, cfg.batch, shuffle=True, seed=cfg.seed, drop_last=True,
                         num_workers=cfg.workers or 0, pin_memory=device.type == "cuda",
                         persistent_workers=False)
    steps_per_epoch = loader.steps_per_epoch
    total_epochs = cfg.epochs
    config_doc = cfg.to_dict()
    config_doc.pop("fresh", None)
    runner = TrainRunner(run_dir, dist, config=config_doc, keep=cfg.keep, total=steps_per_epoch * total_epochs)
    with runner:
        runner.register("G", g)
        runner.register("D", d)
        runner.register("opt_G", opt_g)
        runner.register("opt_D", opt_d)
        runner.register("sched_G", sched_g)
        runner.register("sched_D", sched_d)
        runner.register("scaler", scaler)
        if head is not None:
            runner.register("ref_classifier", head.classifier)
        state = runner.resume()
        reapply_schedule(sched_g, sched_d)  # a rerun may extend --epochs/--decay-epochs
        step = int(state.get("step", 0))
        epoch = int(state.get("epoch", 0))
        start_batch = int(state.get("batch", 0))
        resumed_from = step

        g_ddp = wrap_ddp(head if head is not None else g, dist)
        d_ddp = wrap_ddp(DiscriminatorPair(d), dist)
        samples = _sample_items(data, cfg)
        log_every = max(1, min(50, steps_per_epoch // 4 or 1))
        stats = RunningMeans(device)
        last_eval: dict[str, float | None] = {"val_l1": None, "val_l1_wrong_refs": None}
        t0 = time.monotonic()
        with runner.progress("train-pix2pix") as task:
            while epoch < total_epochs:
                data.train.set_epoch(epoch)
                loader.set_epoch(epoch, start_batch)
                g.train()
                d.train()
                for i, batch in enumerate(loader, start=start_batch):
                    a, b = _to(batch, device, "a", layout), _to(batch, device, "b", layout)
                    refs = _to(batch, device, "refs", layout)
                    assert a is not None and b is not None
                    with autocast(device, amp):
                        if head is not None:
                            code_images, code_labels = code_batch(batch, device)
                            fake, codes, code_logits = g_ddp(a, refs, code_images)
                        else:
                            fake = g_ddp(a, refs)
                    # D step: 0.5 * (real + fake), fake detached
                    d.requires_grad_(True)
                    opt_d.zero_grad(set_to_none=True)
                    with autocast(device, amp):
                        pred_fake, pred_real = d_ddp(a, fake.detach(), b)
                    loss_d_fake, loss_d_real = gan_loss(pred_fake, False, cfg.gan_mode), gan_loss(pred_real, True, cfg.gan_mode)
                    loss_d = 0.5 * (loss_d_fake + loss_d_real)
                    scaler.scale(loss_d).backward()
                    scaler.step(opt_d)
                    # G step: fool D (plain module: no D gradients to sync) + L1 (+ VGG)
                    d.requires_grad_(False)
                    opt_g.zero_grad(set_to_none=True)
                    with autocast(device, amp):
                        pred = d(a, fake)
                    loss_g_gan = gan_loss(pred, True, cfg.gan_mode)
                    loss_g_l1 = F.l1_loss(fake.float(), b) * cfg.lambda_l1
                    loss_g = loss_g_gan + loss_g_l1
                    parts = {"loss_G_GAN": loss_g_gan, "loss_G_L1": loss_g_l1, "loss_D_real": loss_d_real,
                             "loss_D_fake": loss_d_fake}
                    if vgg_loss is not None:
                        with autocast(device, amp):
                            loss_g_vgg = vgg_loss(fake, b) * cfg.lambda_vgg
                        loss_g = loss_g + loss_g_vgg
                        parts["loss_G_VGG"] = loss_g_vgg
                    if head is not None:
                        loss_ref, ref_parts = ref_style_loss(ref_style(cfg), codes, code_logits, code_labels)
                        loss_g = loss_g + loss_ref
                        parts.update(ref_parts)
                    scaler.scale(loss_g).backward()
                    scaler.step(opt_g)
                    scaler.update()
                    step += 1
                    runner.end_of_batch(step, epoch, i, steps_per_epoch, parts, stats, task, log_every=log_every,
                                        save_every=cfg.save_every, show=_shown)
                # end of epoch: schedule, held-out L1, samples, curves, export, checkpoint
                sched_g.step()
                sched_d.step()
                epoch += 1
                start_batch = 0
                last_eval = evaluate(g, data.val, dist, cfg.val_max, amp) if data.val is not None else last_eval
                runner.log_metrics(step, kind="epoch", epoch=epoch, lr=opt_g.param_groups[0]["lr"], **last_eval)
                if dist.is_main:
                    if samples:  # --samples 0: no grid
                        sample_grid(g, samples, device, amp, run_dir.samples / f"epoch-{epoch:04d}.png")
                        runner.log_image(step, "samples/A_refs_fakeB_realB", run_dir.samples / f"epoch-{epoch:04d}.png")
                    plot_curves(run_dir.read_metrics(), run_dir.path / "loss_curves.png")
                    export_generator(unwrap(g), run_dir.path, {"epoch": epoch, "step": step, **last_eval,
                                                                "labels": data.labels})  # type: ignore[arg-type]
                    if cfg.refs > 0:
                        export_ref_style_model(unwrap(g), head.classifier if head is not None else None,  # type: ignore[arg-type]
                                               style_classes, run_dir.path,
                                               {"epoch": epoch, "ref_cls_weight": cfg.ref_cls_weight,
                                                "ref_metric_weight": cfg.ref_metric_weight})
                runner.save(step, epoch=epoch, batch=0, pin=epoch == total_epochs)
                runner.stop_if_requested(step, epoch=epoch, batch=0)
        seconds = time.monotonic() - t0

    history = [r for r in run_dir.read_metrics() if r.get("kind") == "epoch"]
    if history:
        last_eval = {"val_l1": history[-1].get("val_l1"), "val_l1_wrong_refs": history[-1].get("val_l1_wrong_refs")}
    if dist.is_main and not (run_dir.path / GENERATOR_FILE).exists():
        export_generator(unwrap(g), run_dir.path, {"epoch": epoch, "step": step, **last_eval, "labels": data.labels})  # type: ignore[arg-type]
    return Pix2PixResult(
        out=str(run_dir.path), data_format=data.fmt, train_pairs=len(data.train),
        val_pairs=len(data.val) if data.val else 0, styles=len(data.labels), refs=cfg.refs, epochs=epoch, steps=step,
        seconds=round(seconds, 2), params_g=params_g, params_d=params_d, val_l1=last_eval["val_l1"],
        val_l1_wrong_refs=last_eval["val_l1_wrong_refs"], generator=str(run_dir.path / GENERATOR_FILE),
        resumed_from_step=resumed_from, history=history,
    )
