"""train-cyclegan: unpaired image-to-image translation (Zhu et al. 2017), junyanz's recipe.

Networks: G_AB and G_BA, ResNet generators (9 blocks, instance norm, no dropout); D_A and D_B,
70x70 PatchGANs (D_B tells real B from G_AB(a), D_A real A from G_BA(b)). Per batch:

- G step (D frozen): LSGAN terms D_B(G_AB(a)) -> 1 and D_A(G_BA(b)) -> 1, cycle terms
  lambda_a |G_BA(G_AB(a)) - a| + lambda_b |G_AB(G_BA(b)) - b|, identity terms
  lambda_identity (lambda_a |G_BA(a) - a| + lambda_b |G_AB(b) - b|).
- D step: each D on real images (-> 1) and on generated ones drawn from a history pool of 50
  (-> 0), each D's loss halved.

Adam 2e-4, betas (0.5, 0.999); `epochs` in total, the rate constant and then decaying linearly to
zero over the last `decay_epochs` (junyanz's n_epochs + n_epochs_decay). The shared runner gives
checkpoints of the four networks, both optimizers, schedulers, scaler, the image pools, RNG and
epoch/batch counters, auto-resume, SIGTERM/SIGINT -> save + exit 130, and the NaN guard. Under
torchrun: DDP over one module holding both generators and one holding both discriminators.

Every epoch: held-out cycle errors and, with --judge, the judge's figures (cyclegan_eval.py), a
labelled samples sheet (A | A->B | A->B->A | B | B->A | B->A->B), OUT/index.html, and the generator
export (OUT/generator_a2b.safetensors, OUT/generator_b2a.safetensors, OUT/cyclegan.json) that
`stylekit.transfer.cyclegan` applies.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from stylekit.configs.cyclegan import CycleGANConfig
from stylekit.data.unpaired import UnpairedData, build_unpaired_data
from stylekit.device import amp_dtype, autocast, configure_backends, grad_scaler
from stylekit.io.atomic import write_atomic, write_json_atomic
from stylekit.io.console import get_console
from stylekit.io.paths import Input, refuse_out_overlap
from stylekit.io.rundir import RunDir
from stylekit.nets.cyclegan import ImagePool, PatchDiscriminator, count_params, cycle_generator
from stylekit.train.cyclegan_eval import Judge, evaluate, load_judge, sample_sheet, write_index
from stylekit.train.distributed import DistInfo, distributed_job, make_loader, unwrap, wrap_ddp
from stylekit.train.pix2pix import adam, gan_loss, linear_decay, memory_format
from stylekit.train.plan import log_plan
from stylekit.train.runner import TrainRunner, reapply_schedule, seed_everything
from stylekit.train.stats import RunningMeans

FORMAT = "stylekit-cyclegan"
META_FILE = "cyclegan.json"
GENERATOR_FILES = {"a2b": "generator_a2b.safetensors", "b2a": "generator_b2a.safetensors"}


@dataclass
class CycleGANResult:
    out: str
    train_a: int
    train_b: int
    val_a: int
    val_b: int
    epochs: int
    steps: int
    seconds: float
    params_g: int
    params_d: int
    cycle_error_a: float | None
    cycle_error_b: float | None
    judge_share_b: float | None
    judge_share_b_untranslated: float | None
    judge_style_distance: float | None
    generator_a2b: str
    generator_b2a: str
    resumed_from_step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


class Generators(nn.Module):
    """Both generators, run in one forward (one DDP forward per backward)."""

    def __init__(self, g_ab: nn.Module, g_ba: nn.Module) -> None:
        super().__init__()
        self.g_ab, self.g_ba = g_ab, g_ba

    def forward(self, a: torch.Tensor, b: torch.Tensor, identity: bool) -> dict[str, torch.Tensor]:
        fake_b = self.g_ab(a)
        fake_a = self.g_ba(b)
        out = {"fake_b": fake_b, "rec_a": self.g_ba(fake_b), "fake_a": fake_a, "rec_b": self.g_ab(fake_a)}
        if identity:
            out["idt_a"], out["idt_b"] = self.g_ba(a), self.g_ab(b)
        return out


class Discriminators(nn.Module):
    """Both discriminators on real and pooled generated images, in one forward."""

    def __init__(self, d_a: nn.Module, d_b: nn.Module) -> None:
        super().__init__()
        self.d_a, self.d_b = d_a, d_b

    def forward(self, real_a: torch.Tensor, fake_a: torch.Tensor, real_b: torch.Tensor,
                fake_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.d_a(real_a), self.d_a(fake_a), self.d_b(real_b), self.d_b(fake_b)


@dataclass(frozen=True)
class Losses:
    """The loss recipe: GAN mode and the weights of the cycle and identity terms."""

    gan_mode: str = "lsgan"
    lambda_a: float = 10.0
    lambda_b: float = 10.0
    lambda_identity: float = 0.5


def _shown(values: dict[str, float]) -> dict[str, float]:
    """What the progress bar shows of the logged means."""
    return {"cycle": values["loss_cycle_A"] + values["loss_cycle_B"], "d": values["loss_D_A"] + values["loss_D_B"]}


def losses_of(cfg: CycleGANConfig) -> Losses:
    return Losses(cfg.gan_mode.value, cfg.lambda_a, cfg.lambda_b, cfg.lambda_identity)


@dataclass
class CycleStep:
    """One optimisation step of both generators and both discriminators (the trainer's and the benchmark's).

    `gens`/`discs` are the (possibly DDP-wrapped) `Generators`/`Discriminators`; `d_a`/`d_b` the plain
    discriminators the G step reads without syncing gradients. Returns the loss parts as detached
    device tensors: nothing is read back to the host here."""

    gens: nn.Module
    discs: nn.Module
    d_a: nn.Module
    d_b: nn.Module
    pool_a: ImagePool
    pool_b: ImagePool
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    losses: Losses
    device: torch.device
    amp: bool
    layout: torch.memory_format

    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> dict[str, torch.Tensor]:
        w, mode, device, amp = self.losses, self.losses.gan_mode, self.device, self.amp
        identity = w.lambda_identity > 0
        # G step: D frozen (plain modules: no D gradients to sync)
        self.d_a.requires_grad_(False)
        self.d_b.requires_grad_(False)
        self.opt_g.zero_grad(set_to_none=True)
        with autocast(device, amp):
            out = self.gens(a, b, identity)
            pred_fake_b, pred_fake_a = self.d_b(out["fake_b"]), self.d_a(out["fake_a"])
        parts = {"loss_G_AB": gan_loss(pred_fake_b, True, mode), "loss_G_BA": gan_loss(pred_fake_a, True, mode),
                 "loss_cycle_A": F.l1_loss(out["rec_a"].float(), a) * w.lambda_a,
                 "loss_cycle_B": F.l1_loss(out["rec_b"].float(), b) * w.lambda_b}
        if identity:
            parts["loss_idt_A"] = F.l1_loss(out["idt_a"].float(), a) * w.lambda_a * w.lambda_identity
            parts["loss_idt_B"] = F.l1_loss(out["idt_b"].float(), b) * w.lambda_b * w.lambda_identity
        self.scaler.scale(torch.stack(list(parts.values())).sum()).backward()
        self.scaler.step(self.opt_g)
        # D step: real -> 1, pooled generated -> 0, each D's loss halved
        self.d_a.requires_grad_(True)
        self.d_b.requires_grad_(True)
        self.opt_d.zero_grad(set_to_none=True)
        fake_a = self.pool_a.query(out["fake_a"]).contiguous(memory_format=self.layout)
        fake_b = self.pool_b.query(out["fake_b"]).contiguous(memory_format=self.layout)
        with autocast(device, amp):
            p_real_a, p_fake_a, p_real_b, p_fake_b = self.discs(a, fake_a, b, fake_b)
        loss_d_a = 0.5 * (gan_loss(p_real_a, True, mode) + gan_loss(p_fake_a, False, mode))
        loss_d_b = 0.5 * (gan_loss(p_real_b, True, mode) + gan_loss(p_fake_b, False, mode))
        self.scaler.scale(loss_d_a + loss_d_b).backward()
        self.scaler.step(self.opt_d)
        self.scaler.update()
        return {k: v.detach() for k, v in (parts | {"loss_D_A": loss_d_a, "loss_D_B": loss_d_b}).items()}


def build_networks(cfg: CycleGANConfig) -> tuple[nn.Module, nn.Module, nn.Module, nn.Module]:
    """(G_AB, G_BA, D_A, D_B) as configured."""
    gens = [cycle_generator(cfg.size, cfg.ngf, cfg.n_blocks, cfg.norm.value, cfg.dropout) for _ in range(2)]  # type: ignore[arg-type]
    discs = [PatchDiscriminator(cfg.ndf, cfg.n_layers_d, cfg.norm.value) for _ in range(2)]  # type: ignore[arg-type]
    return gens[0], gens[1], discs[0], discs[1]


def generator_meta(cfg: CycleGANConfig) -> dict[str, Any]:
    return {"size": cfg.size, "ngf": cfg.ngf, "n_blocks": cfg.n_blocks, "norm": cfg.norm.value, "dropout": cfg.dropout}


def export_generators(g_ab: nn.Module, g_ba: nn.Module, out: Path, extra: dict[str, Any]) -> None:
    """OUT/generator_{a2b,b2a}.safetensors + OUT/cyclegan.json (written last: its presence means complete)."""
    from safetensors.torch import save_file


    for key, g in (("a2b", g_ab), ("b2a", g_ba)):
        tensors = {k: v.detach().cpu().contiguous() for k, v in unwrap(g).state_dict().items()}
        write_atomic(out / GENERATOR_FILES[key], lambda tmp, t=tensors: save_file(t, str(tmp), metadata={"format": FORMAT}))
    write_json_atomic(out / META_FILE, {"format": FORMAT, "version": 1, **extra})


def _to(batch: dict[str, Any], key: str, device: torch.device, layout: torch.memory_format) -> torch.Tensor:
    return batch[key].to(device, non_blocking=True).contiguous(memory_format=layout)


def _held_out(data: UnpairedData, n: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    count = min(n, len(data.val_a), len(data.val_b))
    return [data.val_a[i] for i in range(count)], [data.val_b[i] for i in range(count)]


def train_cyclegan(cfg: CycleGANConfig) -> CycleGANResult:
    """Train (or resume) a CycleGAN in `cfg.out`; see the module docstring."""
    refuse_out_overlap(cfg.out, [Input("A", cfg.a, data_folder=True), Input("B", cfg.b, data_folder=True)])
    with distributed_job(cfg.device) as dist:
        # data and judge are checked before the run directory is touched: bad input leaves --out as it was
        data = build_unpaired_data(cfg.a, cfg.b, cfg.size, cfg.preprocess.value, cfg.flip, cfg.val_fraction, cfg.seed)
        judge = load_judge(cfg.judge, cfg.judge_class, cfg.b, dist.device) if cfg.judge is not None else None
        with RunDir(cfg.out, fresh=cfg.fresh) as run_dir:
            return _train(cfg, dist, run_dir, data, judge)


def _describe(data: UnpairedData) -> None:
    console = get_console()
    for dom in (data.a, data.b):
        console.log(f"domain {dom.name}: {len(dom.train)} training, {len(dom.val)} held out ({dom.split} split)")
        if dom.skipped:
            console.warn(f"domain {dom.name}: skipped {len(dom.skipped)} unreadable file(s), e.g. {dom.skipped[0]}")
        if dom.mixed:
            modes = ", ".join(sorted(dom.modes))
            console.log(f"domain {dom.name}: {len(dom.sizes)} image size(s), mode(s) {modes}: each decoded to RGB and "
                        "resized as --preprocess says")


def _train(cfg: CycleGANConfig, dist: DistInfo, run_dir: RunDir, data: UnpairedData, judge: Judge | None) -> CycleGANResult:
    console = get_console()
    device = dist.device
    amp = cfg.amp and amp_dtype(device) is not None
    if cfg.amp and not amp:
        console.warn(f"--amp: {device} has no native low-precision type; training in fp32")
    configure_backends(device, training=True, tf32=True)
    seed_everything(cfg.seed, dist.rank)
    _describe(data)
    layout = memory_format(amp)
    g_ab, g_ba, d_a, d_b = build_networks(cfg)
    if dist.distributed and cfg.norm.value == "batch" and device.type == "cuda":
        g_ab, g_ba, d_a, d_b = (nn.SyncBatchNorm.convert_sync_batchnorm(m) for m in (g_ab, g_ba, d_a, d_b))
    elif dist.distributed and cfg.norm.value == "batch":
        console.warn("--norm batch under torchrun on CPU: batch statistics are per process (SyncBatchNorm needs CUDA); "
                     "the default --norm instance is exact across processes")
    gens = Generators(g_ab, g_ba).to(device, memory_format=layout)  # type: ignore[call-overload]
    discs = Discriminators(d_a, d_b).to(device, memory_format=layout)  # type: ignore[call-overload]
    pool_a, pool_b = ImagePool(cfg.pool_size, cfg.size).to(device), ImagePool(cfg.pool_size, cfg.size).to(device)
    params_g, params_d = count_params(g_ab), count_params(d_b)
    console.log(f"each generator {params_g:,} parameters, each discriminator {params_d:,}")

    opt_g = adam(list(gens.parameters()), cfg.lr, cfg.beta1, device)
    opt_d = adam(list(discs.parameters()), cfg.lr, cfg.beta1, device)
    sched_g = torch.optim.lr_scheduler.LambdaLR(opt_g, linear_decay(cfg.epochs, cfg.decay))
    sched_d = torch.optim.lr_scheduler.LambdaLR(opt_d, linear_decay(cfg.epochs, cfg.decay))
    scaler = grad_scaler(device, amp)

    loader = make_loader(data.train, dist, cfg.batch, shuffle=True, seed=cfg.seed, drop_last=True,
                         num_workers=cfg.workers or 0, pin_memory=device.type == "cuda", persistent_workers=False)
    steps_per_epoch = loader.steps_per_epoch
    log_plan("train-cyclegan", epochs=cfg.epochs, steps_per_epoch=steps_per_epoch, total_steps=steps_per_epoch * cfg.epochs,
             detail=f"constant lr for {cfg.epochs - cfg.decay}, linear decay over the last {cfg.decay}")
    config_doc = cfg.to_dict()
    config_doc.pop("fresh", None)
    runner = TrainRunner(run_dir, dist, config=config_doc, keep=cfg.keep, total=steps_per_epoch * cfg.epochs)
    with runner:
        for name, obj in (("G_AB", g_ab), ("G_BA", g_ba), ("D_A", d_a), ("D_B", d_b), ("pool_A", pool_a),
                          ("pool_B", pool_b), ("opt_G", opt_g), ("opt_D", opt_d), ("sched_G", sched_g),
                          ("sched_D", sched_d), ("scaler", scaler)):
            runner.register(name, obj)
        state = runner.resume()
        reapply_schedule(sched_g, sched_d)  # a rerun may extend --epochs/--decay-epochs
        step, epoch, start_batch = int(state.get("step", 0)), int(state.get("epoch", 0)), int(state.get("batch", 0))
        resumed_from = step
        g_ddp, d_ddp = wrap_ddp(gens, dist), wrap_ddp(discs, dist)
        sample_a, sample_b = _held_out(data, cfg.samples)
        cycle_step = CycleStep(g_ddp, d_ddp, d_a, d_b, pool_a, pool_b, opt_g, opt_d, scaler, losses_of(cfg), device, amp,
                               layout)
        log_every = max(1, min(50, steps_per_epoch // 4 or 1))
        stats = RunningMeans(device)
        last: dict[str, float | None] = {}
        t0 = time.monotonic()
        with runner.progress("train-cyclegan") as task:
            while epoch < cfg.epochs:
                data.train.set_epoch(epoch)
                loader.set_epoch(epoch, start_batch)
                gens.train()
                discs.train()
                for i, batch in enumerate(loader, start=start_batch):
                    parts = cycle_step(_to(batch, "a", device, layout), _to(batch, "b", device, layout))
                    step += 1
                    runner.end_of_batch(step, epoch, i, steps_per_epoch, parts, stats, task, log_every=log_every,
                                        save_every=cfg.save_every, show=_shown)
                # end of epoch: schedule, held-out figures, samples, index.html, export, checkpoint
                sched_g.step()
                sched_d.step()
                epoch += 1
                start_batch = 0
                last = evaluate(g_ab, g_ba, data.val_a, data.val_b, dist, cfg.val_max, amp, judge)
                runner.log_metrics(step, kind="epoch", epoch=epoch, lr=opt_g.param_groups[0]["lr"], **last)
                if dist.is_main:
                    sheet = run_dir.samples / f"epoch-{epoch:04d}.png"
                    if sample_a:
                        sample_sheet(g_ab, g_ba, sample_a, sample_b, device, amp, sheet)
                        runner.log_image(step, "samples/A_AB_ABA_B_BA_BAB", sheet)
                    history = [r for r in run_dir.read_metrics() if r.get("kind") == "epoch"]
                    write_index(run_dir.path, history, run_dir.samples, f"train-cyclegan {run_dir.path.name}")
                    export_generators(g_ab, g_ba, run_dir.path, {"generator": generator_meta(cfg), "epoch": epoch,
                                                                 "step": step, **last})
                runner.save(step, epoch=epoch, batch=0, pin=epoch == cfg.epochs)
                runner.stop_if_requested(step, epoch=epoch, batch=0)
        seconds = time.monotonic() - t0

    history = [r for r in run_dir.read_metrics() if r.get("kind") == "epoch"]
    final = history[-1] if history else last
    return CycleGANResult(
        out=str(run_dir.path), train_a=len(data.a.train), train_b=len(data.b.train), val_a=len(data.a.val),
        val_b=len(data.b.val), epochs=epoch, steps=step, seconds=round(seconds, 2), params_g=params_g, params_d=params_d,
        cycle_error_a=final.get("cycle_error_a"), cycle_error_b=final.get("cycle_error_b"),
        judge_share_b=final.get("judge_share_b"), judge_share_b_untranslated=final.get("judge_share_b_untranslated"),
        judge_style_distance=final.get("judge_style_distance"),
        generator_a2b=str(run_dir.path / GENERATOR_FILES["a2b"]), generator_b2a=str(run_dir.path / GENERATOR_FILES["b2a"]),
        resumed_from_step=resumed_from, history=history,
    )
