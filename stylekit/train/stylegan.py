"""`stylekit finetune-stylegan`: StyleGAN2-ADA transfer learning (ADA + FreezeD) on the shared runner.

`finetune_stylegan(FinetuneConfig) -> FinetuneResult`. The transfer source (`--network`, NVlabs'
meaning: the initial G, D and G_ema) loads through `load_network`; the run directory resumes on its
own (rerun the command). One minibatch = the NVlabs phases Gmain, Greg (every 4), Dmain, Dreg
(every 16), then the G EMA update and the ADA adjustment (every 4).

Reproducibility: every random draw of a minibatch is made on the device, by a generator seeded by
(seed, minibatch, phase, rank), for this process's rows only; draws the whole minibatch shares (the
style-mixing cut-off) come from a host generator seeded by (seed, minibatch, phase). So a resumed run
repeats an uninterrupted one on the same number of processes, without saving or syncing any random
state. Gradients are averaged over processes explicitly (no DDP wrapper), so G's mapping and
synthesis can be called separately.

GPU discipline (as NVlabs' loop): a minibatch reads no value back to Python. Statistics are summed
on the device (`RunningMeans`) and all-reduced and read once per tick, where non-finite losses are
detected (gradients are made finite by `_sync_grads` in between, as NVlabs does); the ADA controller
adjusts p on the device. `--amp` runs the networks' fp16 blocks in fp16 (NVlabs' mixed precision,
with conv_clamp; a network trained from scratch gets num_fp16_res=4, conv_clamp=256).
"""

from __future__ import annotations

import copy
import math
import random
import resource
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stylekit.configs.finetune import FinetuneConfig
from stylekit.data.grid import save_grid
from stylekit.data.imageset import decode_item
from stylekit.data.stylegan_images import StyleGANImages
from stylekit.data.toy import CONTENT, is_toy_root
from stylekit.device import configure_backends
from stylekit.errors import BadInput, MissingResource, StylekitError
from stylekit.io.atomic import link_atomic
from stylekit.io.console import get_console
from stylekit.io.paths import Input, refuse_out_overlap
from stylekit.io.rundir import RunDir
from stylekit.metrics.snapshot import missing_weights
from stylekit.nets.stylegan2.augment import AugmentPipe, BatchRandom
from stylekit.nets.stylegan2.load import load_network, resolve_network_path, save_network
from stylekit.nets.stylegan2.networks import Discriminator, Generator, freezed_layers
from stylekit.nets.stylegan2.sampling import seeds_to_z
from stylekit.standins import label as stand_in_label
from stylekit.standins import random_network_resolution
from stylekit.train import EMA, TrainRunner, make_loader
from stylekit.train.ada import AdaConfig, AdaController
from stylekit.train.distributed import (
    DistInfo,
    all_gather_object,
    all_reduce_mean_,
    barrier,
    broadcast_object,
    distributed_job,
)
from stylekit.train.plan import log_plan
from stylekit.train.stats import RunningMeans
from stylekit.train.stylegan_loss import LossConfig, StyleGAN2Loss, lazy_adam

# NVlabs --cfg presets: ref_gpus, kimg, mb, mbstd, fmaps, lrate, gamma, ema (kimg), ramp, map.
PRESETS: dict[str, dict[str, Any]] = {
    "stylegan2": dict(ref_gpus=8, kimg=25000, mb=32, mbstd=4, fmaps=1, lrate=0.002, gamma=10, ema=10, ramp=None, map=8),
    "paper256": dict(ref_gpus=8, kimg=25000, mb=64, mbstd=8, fmaps=0.5, lrate=0.0025, gamma=1, ema=20, ramp=None, map=8),
    "paper512": dict(ref_gpus=8, kimg=25000, mb=64, mbstd=8, fmaps=1, lrate=0.0025, gamma=0.5, ema=20, ramp=None, map=8),
    "paper1024": dict(ref_gpus=8, kimg=25000, mb=32, mbstd=4, fmaps=1, lrate=0.002, gamma=2, ema=10, ramp=None, map=8),
    "cifar": dict(ref_gpus=2, kimg=100000, mb=64, mbstd=32, fmaps=1, lrate=0.0025, gamma=0.01, ema=500, ramp=0.05, map=2),
}
@dataclass
class FinetuneResult:
    out: str
    network: str
    kimg: float
    ticks: int
    augment_p: float
    rt: float | None
    resolution: int
    batch: int
    freezed: int
    frozen_layers: list[str]
    images: int
    resumed_from_kimg: float
    seconds: float
    sec_per_kimg: float | None
    hparams: dict[str, Any]
    last_metrics: dict[str, Any]
    snapshots: list[str]
    folders: dict[str, int] = field(default_factory=dict)  # images per top-level DATA folder
    metric_counts: dict[str, int] = field(default_factory=dict)  # generated images per snapshot metric
    stand_in: str | None = None  # set when --network is a random-init stand-in (results not meaningful)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ----------------------------------------------------------------------------------- options


def resolve_hparams(cfg: FinetuneConfig, resolution: int, gpus: int, transfer: bool) -> dict[str, Any]:
    """The preset (or NVlabs' `auto` formulas) with the explicit overrides applied."""
    if cfg.cfg == "auto":
        res = resolution
        mb = max(min(gpus * min(4096 // res, 32), 64), gpus)
        if cfg.batch is not None:
            # stylekit: the formulas follow an explicit --batch (NVlabs keeps its own mb), so the same
            # global batch gives the same gamma / EMA on any number of processes.
            mb = cfg.batch
        spec = dict(ref_gpus=gpus, kimg=25000, mb=mb, mbstd=min(mb // gpus, 4), fmaps=1 if res >= 512 else 0.5,
                    lrate=0.002 if res >= 1024 else 0.0025, gamma=0.0002 * res**2 / mb, ema=mb * 10 / 32, ramp=0.05, map=2)
    else:
        spec = dict(PRESETS[cfg.cfg])
    batch = cfg.batch if cfg.batch is not None else spec["mb"]
    if batch % gpus:
        raise BadInput(f"--batch {batch} cannot be split over {gpus} processes", hint=f"use a multiple of {gpus}")
    per_rank = batch // gpus
    group = min(cfg.mbstd_group if cfg.mbstd_group is not None else spec["mbstd"], per_rank)
    while per_rank % group:  # the minibatch-stddev groups must tile each process's batch
        group -= 1
    kimg = cfg.kimg if cfg.kimg is not None else spec["kimg"]
    lr = cfg.lr if cfg.lr is not None else spec["lrate"]
    gamma = cfg.gamma if cfg.gamma is not None else spec["gamma"]
    ema = cfg.ema_kimg if cfg.ema_kimg is not None else spec["ema"]
    rampup = cfg.ema_rampup if cfg.ema_rampup is not None else (None if transfer else spec["ramp"])
    if rampup is not None and rampup <= 0:
        rampup = None
    cifar = cfg.cfg == "cifar"
    return dict(cfg=str(cfg.cfg), batch=batch, per_rank=per_rank, mbstd_group=group, kimg=kimg, lr=lr, gamma=gamma,
                ema_kimg=ema, ema_rampup=rampup, fmaps=spec["fmaps"], map=spec["map"],
                pl_weight=0.0 if cifar else 2.0, style_mixing=0.0 if cifar else 0.9,
                ada_kimg=cfg.ada_kimg if cfg.ada_kimg is not None else (100.0 if transfer else 500.0))


# ----------------------------------------------------------------------------------- data


def to_model_range(batch: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1] (NVlabs: x / 127.5 - 1)."""
    return batch.to(device, non_blocking=True).to(torch.float32) / 127.5 - 1


# ----------------------------------------------------------------------------------- networks


@dataclass
class Networks:
    G: Generator
    D: Discriminator
    G_ema_state: dict[str, torch.Tensor] | None
    source: str
    transfer: bool


def _load_source(cfg: FinetuneConfig, dist: DistInfo, notes: list[str]) -> Networks:
    """The transfer source. Every rank resolves it itself: under multi-node torchrun a path resolved on
    rank 0 may not exist on another node's disk; on one node the download lock in stylekit.weights
    lets the first rank fetch while the others wait and then find the file. Errors are agreed on, so
    every rank fails the same way (no rank is left waiting in a collective)."""

    error: tuple[str, str, str | None] | None = None
    path = None
    try:
        path = cfg.network if random_network_resolution(cfg.network) is not None else str(resolve_network_path(cfg.network))
    except StylekitError as exc:
        kind = "missing" if isinstance(exc, MissingResource) else "bad"
        fetch = getattr(exc, "fetch_command", None)
        error = (kind, exc.message, exc.hint if fetch is None else fetch)
    error = next((e for e in all_gather_object(error, dist) if e is not None), None)
    if error is not None:
        kind, message, extra = error
        if kind == "missing":
            raise MissingResource(f"transfer source --network {cfg.network}: {message}", fetch_command=extra)
        raise BadInput(f"--network {cfg.network}: {message}", hint=extra)
    assert path is not None
    loaded = load_network(path, "cpu")
    G = loaded.G if loaded.G is not None else loaded.G_ema
    if G is None:
        raise BadInput(f"--network {cfg.network}: holds no generator")
    if G.architecture != "stylegan2":
        raise BadInput(f"--network {cfg.network}: a {G.architecture.replace('stylegan', 'StyleGAN')} network; finetune-stylegan trains StyleGAN2 (its ADA, FreezeD "
                       "and losses are StyleGAN2-ADA's)",
                       hint="fine-tune StyleGAN3 with NVlabs stylegan3 train.py --resume; its snapshots then work with generate, mix, "
                            "invert, styleclip, directions, blend-layers, convert and score")
    G = _copy_generator(G)
    if loaded.D is not None:
        D = _unfrozen_discriminator(loaded.D)
    else:
        notes.append(f"{path}: no discriminator in the transfer source; D starts from random weights")
        torch.manual_seed(cfg.seed)
        D = Discriminator(c_dim=G.c_dim, img_resolution=G.img_resolution, img_channels=G.img_channels,
                          channel_base=int(G.init_kwargs["synthesis_kwargs"].get("channel_base", 32768)),
                          channel_max=int(G.init_kwargs["synthesis_kwargs"].get("channel_max", 512)))
    ema_state = loaded.G_ema.state_dict() if loaded.G_ema is not None else None
    return Networks(G, D, ema_state, path or cfg.network, True)


def _unfrozen_discriminator(D: Discriminator) -> Discriminator:
    """The same D with every layer a parameter (an NVlabs FreezeD snapshot stores frozen layers as buffers)."""
    kwargs = copy.deepcopy(D.init_kwargs)
    kwargs["block_kwargs"] = {k: v for k, v in (kwargs.get("block_kwargs") or {}).items() if k != "freeze_layers"}
    out = Discriminator(**kwargs)
    out.load_state_dict(D.state_dict())
    return out


def _copy_generator(G: Generator) -> Generator:
    out = Generator(**G.init_kwargs)
    out.load_state_dict(G.state_dict())
    return out


def scratch_precision(amp: bool) -> dict[str, Any]:
    """NVlabs' training setting for mixed precision: the 4 highest resolutions in fp16, activations
    clamped to +-256 (so fp16 cannot overflow); all fp32 without --amp (NVlabs --fp32)."""
    return dict(num_fp16_res=4, conv_clamp=256) if amp else dict(num_fp16_res=0, conv_clamp=None)


def _scratch_networks(cfg: FinetuneConfig, resolution: int, hp: dict[str, Any]) -> Networks:
    """`--network none`: new networks from the preset (channel_base = fmaps x 32768, map layers)."""
    torch.manual_seed(cfg.seed)
    base = int(hp["fmaps"] * 32768)
    precision = scratch_precision(cfg.amp)
    G = Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=resolution, img_channels=3,
                  mapping_kwargs=dict(num_layers=hp["map"]),
                  synthesis_kwargs=dict(channel_base=base, channel_max=512, **precision))
    D = Discriminator(c_dim=0, img_resolution=resolution, img_channels=3, channel_base=base, channel_max=512, **precision)
    return Networks(G, D, None, "none", False)


def freeze_discriminator(D: Discriminator, freezed: int) -> tuple[list[torch.nn.Parameter], list[str]]:
    """FreezeD: layers with NVlabs index < `freezed` get requires_grad False; returns (trainable, frozen names)."""
    frozen = [name for idx, name in freezed_layers(D) if idx < freezed]
    prefixes = tuple(f"{name}." for name in frozen)
    trainable = []
    for name, param in D.named_parameters():
        if name.startswith(prefixes):
            param.requires_grad_(False)
        else:
            trainable.append(param)
    return trainable, frozen


# ----------------------------------------------------------------------------------- helpers


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence(list(parts)).generate_state(1, np.uint64)[0])


def phase_random(seed: int, batch_idx: int, phase: int, dist: DistInfo) -> BatchRandom:
    """The draws of one phase of one minibatch on this rank: made on its device from (seed, minibatch,
    phase, rank); shared draws on the host from (seed, minibatch, phase)."""
    local = torch.Generator(device=dist.device).manual_seed(_seed(seed, batch_idx, phase, dist.rank))
    shared = random.Random(_seed(seed, batch_idx, phase))
    return BatchRandom(local, device=dist.device, shared=shared)


def _sync_grads(params: list[torch.nn.Parameter], dist: DistInfo) -> None:
    """Average gradients over processes, and replace nan/inf by finite values (NVlabs)."""
    grads = [p.grad for p in params if p.grad is not None]
    all_reduce_mean_(grads, dist)
    for g in grads:
        torch.nan_to_num(g, nan=0, posinf=1e5, neginf=-1e5, out=g)


def _sync_w_avg(G: Generator, dist: DistInfo) -> None:
    """w_avg moves by the mean w of each process's rows; the average over processes is the global one."""
    if hasattr(G.mapping, "w_avg"):
        all_reduce_mean_([G.mapping.w_avg], dist)


def _peak_mem_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def kimg_label(nimg: int) -> str:
    return f"{nimg // 1000:06d}" + (f".{nimg % 1000:03d}" if nimg % 1000 else "")


def link_nvlabs_name(snapshot: Path, nimg: int) -> Path:
    """Give a snapshot NVlabs' name `network-snapshot-<kimg:06d>` too (scripts written for NVlabs run dirs
    look for it). Whole-kimg snapshots already have it; others get a hard link (the newest one within a kimg wins,
    as NVlabs would overwrite its file)."""

    nvlabs = snapshot.with_name(f"network-snapshot-{nimg // 1000:06d}{snapshot.suffix}")
    return nvlabs if nvlabs == snapshot else link_atomic(snapshot, nvlabs)


@torch.no_grad()
def generate_grid_images(G: Generator, seeds: list[int], device: torch.device, batch: int = 8) -> list[torch.Tensor]:
    z = seeds_to_z(seeds, G.z_dim).to(device)
    out: list[torch.Tensor] = []
    for i in range(0, len(seeds), batch):
        img = G(z[i : i + batch], None, noise_mode="const")
        out.extend(((img.clamp(-1, 1) + 1) / 2).cpu())
    return out


def _metrics_available(specs: tuple[Any, ...]) -> bool:

    why = missing_weights(list(specs)) if specs else None
    if why is not None:
        get_console().warn(f"--metrics {','.join(s.name for s in specs)} skipped: {why}")
    return bool(specs) and why is None


class Phases:
    """The four phases of one minibatch (NVlabs: Gmain, Greg every 4, Dmain, Dreg every 16) with their
    optimiser steps and gradient averaging; statistics go to `stats` on the device, nothing is read.

    On a Dreg minibatch one D forward on the reals serves both the real logistic loss and R1 (as NVlabs'
    "Dboth"), saving a D forward (and an augmentation) on the reals. Dmain and Dreg stay two optimiser
    steps, as lazy regularisation defines them: `lazy_adam`'s lr x 16/17 and betas ** (16/17) assume
    17 Adam steps per 16 minibatches, and Adam normalises each step's gradient, so folding the R1
    gradient (gain 16) into Dmain's step would change the optimisation. Both gradients are taken
    before either step, so R1's is evaluated at the parameters before this minibatch's Dmain step (a
    separate pass would see them after it: one Adam step of lr x 16/17 apart, on one minibatch in 16);
    given the parameters, the loss values and both gradients are those of the separate passes.
    """

    def __init__(self, loss: StyleGAN2Loss, opt_G: torch.optim.Optimizer, opt_D: torch.optim.Optimizer,
                 params_G: list[torch.nn.Parameter], params_D: list[torch.nn.Parameter], stats: RunningMeans,
                 dist: DistInfo) -> None:
        self.loss, self.opt_G, self.opt_D = loss, opt_G, opt_D
        self.params_G, self.params_D, self.stats, self.dist = params_G, params_D, stats, dist
        self.real_logits = torch.zeros(0, device=dist.device)

    def _step(self, opt: torch.optim.Optimizer, params: list[torch.nn.Parameter], value: torch.Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        value.backward()
        self._apply(opt, params)

    def _apply(self, opt: torch.optim.Optimizer, params: list[torch.nn.Parameter]) -> None:
        """Average the gradients now in params' .grad over processes and take the optimiser step."""
        _sync_grads(params, self.dist)
        opt.step()

    def _train_D(self, on: bool) -> None:
        for p in self.params_D:
            p.requires_grad_(on)

    def minibatch(self, seed: int, batch_idx: int, real: torch.Tensor, n: int, n_pl: int, greg: bool, dreg: bool) -> None:
        loss, add = self.loss, self.stats.add
        self._train_D(False)
        l_g = loss.gen_main(phase_random(seed, batch_idx, 0, self.dist), n, None)
        self._step(self.opt_G, self.params_G, l_g)
        add("loss_G", l_g)
        if greg:
            l_pl, pl_len = loss.gen_pl(phase_random(seed, batch_idx, 1, self.dist), n_pl, None)
            self._step(self.opt_G, self.params_G, l_pl)
            add("pl_length", pl_len)
            add("loss_Gpl", l_pl / 4)
        self._train_D(True)
        self.disc(phase_random(seed, batch_idx, 2, self.dist), real, n, dreg)

    def disc(self, rnd: BatchRandom, real: torch.Tensor, n: int, dreg: bool) -> None:
        """Dmain (and on a Dreg minibatch, Dreg from the same pass on the reals): one or two D steps."""
        loss, add, opt, params = self.loss, self.stats.add, self.opt_D, self.params_D
        opt.zero_grad(set_to_none=True)
        l_fake = loss.disc_fake(rnd, n, None)
        l_fake.backward()  # frees the fakes' graph before the real pass (NVlabs' order): lower peak memory
        reals = loss.disc_real(rnd, real, None, r1=dreg)
        reals.loss.backward(inputs=params, retain_graph=dreg)  # no gradient w.r.t. the reals themselves
        r1_grads = torch.autograd.grad(reals.r1_loss, params, allow_unused=True) if reals.r1_loss is not None else None
        self._apply(opt, params)  # Dmain
        self.real_logits = reals.logits
        add("loss_D", l_fake.detach() + reals.loss.detach())
        add("loss_D_fake", l_fake.detach())
        add("loss_D_real", reals.loss.detach())
        add("score_real", reals.logits.mean())
        if r1_grads is not None:  # Dreg: its own lazy-regularisation step
            for p, g in zip(params, r1_grads, strict=True):
                p.grad = g
            self._apply(opt, params)
            add("r1_penalty", reals.r1_penalty)
            add("loss_Dr1", reals.r1_loss.detach() / 16)


# ----------------------------------------------------------------------------------- training


def finetune_stylegan(cfg: FinetuneConfig) -> FinetuneResult:
    """Fine-tune (or train) a StyleGAN2 with ADA and FreezeD; resumable; runs under torchrun."""

    network = [] if random_network_resolution(cfg.network) is not None or not cfg.transfer else [Input("--network", cfg.network)]
    refuse_out_overlap(cfg.out, [Input("DATA", cfg.data, data_folder=True), *network])
    with distributed_job(cfg.device) as dist:
        return _train(cfg, dist)


def _train(cfg: FinetuneConfig, dist: DistInfo) -> FinetuneResult:

    console = get_console()
    t_start = time.monotonic()
    data = str(cfg.data)
    if not cfg.data.expanduser().exists():
        raise BadInput(f"DATA {data} does not exist", hint="give a folder of images or a zip from `stylekit prepare --format stylegan-zip`")
    _refuse_toy_root(data)
    notes: list[str] = []  # said once OUT is locked: nothing is printed before every check passed
    stand_in = stand_in_label(f"--network {cfg.network}") if random_network_resolution(cfg.network) is not None else None
    if cfg.transfer:
        nets = _load_source(cfg, dist, notes)
        resolution = nets.G.img_resolution
        hp = resolve_hparams(cfg, resolution, dist.world_size, True)
    else:
        from stylekit.data.imageset import open_image_set

        items = open_image_set(data).items
        if not items:
            raise BadInput(f"DATA {data}: no images found")
        probe = StyleGANImages(data, _first_size(items[0]), cfg.mirror)
        resolution = probe.resolution
        hp = resolve_hparams(cfg, resolution, dist.world_size, False)
        nets = _scratch_networks(cfg, resolution, hp)
    G, D = nets.G, nets.D
    if G.c_dim:
        raise BadInput(f"--network {cfg.network}: a conditional network (c_dim {G.c_dim}); finetune-stylegan trains unconditional ones",
                       hint="use an unconditional transfer source such as ffhq-256")
    dataset = StyleGANImages(data, resolution, cfg.mirror)
    notes += dataset.notes + _folder_notes(data, dataset.folders)
    if len(dataset) < hp["batch"]:
        raise BadInput(f"DATA {data}: {len(dataset)} images, fewer than one --batch of {hp['batch']}",
                       hint="lower --batch, add images or use --mirror")
    n_layers = len(freezed_layers(D))
    if cfg.freezed > n_layers:
        raise BadInput(f"--freezed {cfg.freezed}: this discriminator has {n_layers} freezable layers (0..{n_layers - 1})")
    if cfg.amp and dist.device.type != "cuda":
        notes.append("--amp (fp16 blocks) runs only on CUDA; training in fp32")
    notes += [f"--num-gen {cfg.num_gen} wins over the count in --metrics {name}: computed on {cfg.num_gen} images"
              for name in cfg.metric_overrides]

    device = dist.device
    configure_backends(device, training=True, tf32=False)  # NVlabs: TF32 off for StyleGAN
    G.to(device).train().requires_grad_(True)
    D.to(device).train()
    D.b4.mbstd.group_size = hp["mbstd_group"] if D.b4.mbstd is not None else None  # type: ignore[union-attr]
    trainable_D, frozen = freeze_discriminator(D, cfg.freezed)
    ema = EMA(G, half_life_kimg=hp["ema_kimg"], rampup=hp["ema_rampup"])
    if nets.G_ema_state is not None:
        ema.module.load_state_dict(nets.G_ema_state)
    ema.module.to(device)
    opt_G = lazy_adam(list(G.parameters()), hp["lr"], 4)
    opt_D = lazy_adam(trainable_D, hp["lr"], 16)
    augment = AugmentPipe(cfg.augpipe.value, p=0.0).to(device) if cfg.aug != "noaug" else None
    ada = AdaController(AdaConfig(mode=cfg.aug.value, p=cfg.p, target=cfg.target, ada_kimg=hp["ada_kimg"]), device)
    loss = StyleGAN2Loss(G, D, augment, LossConfig(r1_gamma=hp["gamma"], style_mixing=hp["style_mixing"],
                                                     pl_weight=hp["pl_weight"], fp16=cfg.amp and device.type == "cuda"), dist)
    batch, per_rank = hp["batch"], hp["per_rank"]
    pl_per_rank = max(per_rank // 2, 1)
    total_nimg = int(round(hp["kimg"] * 1000))
    tick_nimg = int(round(cfg.tick_kimg * 1000))
    workers = cfg.workers or 0
    run_config = {k: v for k, v in cfg.to_dict().items() if k not in ("fresh", "device", "workers", "out", "nproc")}
    run_config.update(hparams=hp, world_size=dist.world_size, source=nets.source)
    result_snapshots: list[str] = []
    last_metrics: dict[str, Any] = {}
    with RunDir(cfg.out, fresh=cfg.fresh) as run_dir, \
            TrainRunner(run_dir, dist, config=run_config, keep=cfg.keep, total=total_nimg) as runner:
        runner.register("G", G)
        runner.register("D", D)
        runner.register("G_ema", ema.module)
        runner.register("opt_G", opt_G)
        runner.register("opt_D", opt_D)
        runner.register("ada", ada)
        for note in notes:
            console.warn(note)
        if stand_in is not None:
            console.warn(stand_in)
        # A step is one real image shown (NVlabs' nimg): the plan, the progress, checkpoints, resume messages
        # and metrics.jsonl all count images; kimg = steps / 1000.
        log_plan("finetune-stylegan", epochs=round(total_nimg / max(len(dataset), 1), 2), steps_per_epoch=None,
                 total_steps=total_nimg, detail=f"a step is one real image: {hp['kimg']:g} kimg, "
                 f"{-(-total_nimg // batch)} minibatches of {batch}")
        metrics_on = _metrics_available(cfg.metric_specs) if dist.is_main else False
        metrics_on = broadcast_object(metrics_on, dist)
        state = runner.resume()
        cur_nimg = int(state.get("step", 0))
        epoch, b = int(state.get("epoch", 0)), int(state.get("batch", 0))
        batch_idx = int(state.get("batch_idx", 0))
        tick = int(state.get("tick", 0))
        tick_start = int(state.get("tick_start", cur_nimg))
        loss.pl_mean.fill_(float(state.get("pl_mean", 0.0)))
        resumed_from = cur_nimg
        if augment is not None:
            augment.p = ada.p_tensor
        loader = make_loader(dataset, dist, batch, seed=cfg.seed, num_workers=workers,
                             pin_memory=device.type == "cuda", persistent_workers=workers > 0)
        seeds = list(range(cfg.grid_seeds))
        if not state and dist.is_main:
            _write_start_grids(run_dir, dataset, G if nets.G_ema_state is None else ema.module, seeds, device)
        console.log(
            f"finetune-stylegan: {resolution}px, batch {batch} ({per_rank} per process x {dist.world_size}), "
            f"kimg {hp['kimg']}, gamma {hp['gamma']:.4g}, lr {hp['lr']}, aug {cfg.aug}"
            + (f" ({cfg.augpipe}, target {cfg.target}, ada_kimg {hp['ada_kimg']})" if cfg.aug == "ada" else "")
            + (f", freezed {cfg.freezed} ({', '.join(frozen)})" if frozen else "")
        )
        stats = RunningMeans(device)
        phases = Phases(loss, opt_G, opt_D, list(G.parameters()), trainable_D, stats, dist)

        def counters() -> dict[str, Any]:
            return dict(epoch=epoch, batch=b, batch_idx=batch_idx, tick=tick, tick_start=tick_start,
                        pl_mean=float(loss.pl_mean), augment_p=ada.p)

        steps = max(math.ceil((total_nimg - cur_nimg) / batch), 0)
        t_tick = time.monotonic()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        with runner.progress("finetune") as bar:
            for e, i, imgs in loader.batches(epoch, b, count=steps):
                real = to_model_range(imgs, device)
                phases.minibatch(cfg.seed, batch_idx, real, per_rank, pl_per_rank,
                                 greg=hp["pl_weight"] > 0 and batch_idx % 4 == 0,
                                 dreg=hp["gamma"] > 0 and batch_idx % 16 == 0)
                ada.accumulate(phases.real_logits)
                # EMA, counters, ADA
                _sync_w_avg(G, dist)
                ema.update(G, batch_size=batch, cur_nimg=cur_nimg)
                cur_nimg, epoch, b, batch_idx = cur_nimg + batch, e, i + 1, batch_idx + 1
                if ada.step(batch_idx, batch, dist):
                    stats.add("rt", ada.rt_tensor)  # the tick's mean r_t (same on every process)
                    if augment is not None:
                        augment.p = ada.p_tensor
                bar.advance(batch)
                done = cur_nimg >= total_nimg
                if cur_nimg >= tick_start + tick_nimg or done:
                    tick += 1
                    secs = time.monotonic() - t_tick
                    means = stats.means(dist)
                    runner.check_finite(cur_nimg, **{k: v for k, v in means.items() if k.startswith("loss")})
                    values: dict[str, Any] = {k: round(v, 6) for k, v in means.items()}
                    values.update(kimg=cur_nimg / 1000, tick=tick, augment_p=ada.p,
                                  sec_per_tick=round(secs, 3),
                                  sec_per_kimg=round(secs / max((cur_nimg - tick_start) / 1000, 1e-9), 3),
                                  peak_mem_mb=round(_peak_mem_mb(device), 1))
                    tick_start = cur_nimg
                    snapshot = done or tick % cfg.snap == 0
                    if snapshot:
                        label = kimg_label(cur_nimg)
                        name = f"network-snapshot-{label}.safetensors"
                        if dist.is_main:
                            save_network(run_dir.path / name, G=G, G_ema=ema.module, D=D,
                                         extra={"kimg": cur_nimg / 1000, "augment_p": ada.p, "source": nets.source})
                            result_snapshots.append(name)
                            link_nvlabs_name(run_dir.path / name, cur_nimg)
                            from stylekit.data.grid import save_grid

                            save_grid(generate_grid_images(ema.module, seeds, device), run_dir.samples / f"fakes-{label}.png")
                            runner.log_image(cur_nimg, "samples/fakes", run_dir.samples / f"fakes-{label}.png")
                        if metrics_on:  # every rank computes its share; the same values on every rank
                            from stylekit.metrics.snapshot import snapshot_metrics

                            values.update(snapshot_metrics(ema.module.eval(), list(cfg.metric_specs), data, run_dir,
                                                           name, dist, cfg.metric_num_gen))
                        barrier(dist)
                    runner.log_metrics(cur_nimg, **values)
                    last_metrics = values
                    if snapshot:
                        runner.save(cur_nimg, pin=True, **counters())
                    elif tick % cfg.ckpt_ticks == 0:
                        runner.save(cur_nimg, **counters())
                    t_tick = time.monotonic()
                if runner.should_stop():  # counters() reads device values: only when stopping
                    runner.stop_if_requested(cur_nimg, **counters())
        final = run_dir.path / "network-final.safetensors"
        if dist.is_main and (steps > 0 or not final.exists()):
            save_network(final, G=G, G_ema=ema.module, D=D,
                         extra={"kimg": cur_nimg / 1000, "augment_p": ada.p, "source": nets.source, "hparams": hp})
        if steps == 0:
            console.log(f"{cfg.out}: already trained to {cur_nimg / 1000:g} kimg; nothing to do (use --fresh or a larger --kimg)")
        barrier(dist)
        elapsed = time.monotonic() - t_start
        trained = cur_nimg - resumed_from
        return FinetuneResult(
            out=str(run_dir.path), network=str(final), kimg=cur_nimg / 1000, ticks=tick, augment_p=ada.p, rt=ada.rt,
            resolution=resolution, batch=batch, freezed=cfg.freezed, frozen_layers=frozen, images=len(dataset),
            resumed_from_kimg=resumed_from / 1000, seconds=round(elapsed, 3),
            sec_per_kimg=round(runner.elapsed / (trained / 1000), 3) if trained else None,
            hparams=hp, last_metrics=last_metrics, snapshots=result_snapshots, folders=dataset.folders,
            metric_counts=cfg.metric_counts, stand_in=stand_in,
        )


def _refuse_toy_root(data: str) -> None:
    """A toy-styles root mixes every style with content/ (unstyled structure images): not one distribution."""

    if is_toy_root(data):
        styles = sorted(d.name for d in Path(data).iterdir() if d.is_dir() and d.name != CONTENT and not d.name.startswith("."))
        raise BadInput(
            f"DATA {data} is a toy-styles folder: {len(styles)} style folders ({', '.join(styles[:4])}"
            f"{', ...' if len(styles) > 4 else ''}) and {CONTENT}/, its unstyled structure images; "
            "a GAN trained on it would learn all of them mixed",
            hint=f"pass one style folder, e.g. {Path(data) / styles[0]}, or gather several with "
                 f"`stylekit prepare {data} OUT.zip --format stylegan-zip --size 64 --exclude {CONTENT}`",
        )


def _folder_notes(data: str, counts: dict[str, int]) -> list[str]:
    """Which folders the training images come from (several folders train as one distribution)."""
    if len(counts) <= 1:
        return []
    shown = ", ".join(f"{k} ({v})" for k, v in list(counts.items())[:8])
    more = f" and {len(counts) - 8} more" if len(counts) > 8 else ""
    return [f"DATA {data}: {sum(counts.values())} images from {len(counts)} folders, trained as one distribution: "
            f"{shown}{more}"]


def _first_size(item: Any) -> int:

    w, h = decode_item(item).size
    if w != h or w < 4 or w & (w - 1):
        raise BadInput(f"{item.key_path}: {w}x{h}; training from scratch needs square power-of-two images",
                       hint="stylekit prepare DATA OUT.zip --size 256 --format stylegan-zip")
    return w


def _write_start_grids(run_dir: Any, dataset: StyleGANImages, G: Generator, seeds: list[int], device: torch.device) -> None:

    n = min(len(seeds), len(dataset))
    reals = [dataset[k].float() / 255 for k in range(n)]
    save_grid(reals, run_dir.samples / "reals.png")
    was = G.training
    G.eval()
    save_grid(generate_grid_images(G, seeds, device), run_dir.samples / "fakes-init.png")
    G.train(was)


__all__ = [
    "FinetuneResult",
    "PRESETS",
    "StyleGANImages",
    "finetune_stylegan",
    "freeze_discriminator",
    "resolve_hparams",
]
