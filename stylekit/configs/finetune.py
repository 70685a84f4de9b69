"""`stylekit finetune-stylegan`: the options of StyleGAN2-ADA transfer learning with ADA and FreezeD (defaults:
NVlabs' stylegan2-ada-pytorch). A "step" is one real image shown: the plan, progress, resume messages, checkpoint
names and metrics.jsonl all count images (kimg = steps / 1000)."""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from stylekit.declare import Config, argument, option, require
from stylekit.errors import BadInput

MODEL = "Model"
TRAIN = "Training"
AUG = "Augmentation"
SNAP = "Snapshots"

SNAPSHOT_NUM_GEN = 1000  # generated images per snapshot metric whose name gives no count, without --num-gen
GRID_SEEDS = 16  # seeds of the samples grids


class Preset(StrEnum):
    """NVlabs --cfg: auto (formulas from the resolution and batch) or a paper configuration."""

    auto = "auto"
    stylegan2 = "stylegan2"
    paper256 = "paper256"
    paper512 = "paper512"
    paper1024 = "paper1024"
    cifar = "cifar"


class Aug(StrEnum):
    ada = "ada"
    noaug = "noaug"
    fixed = "fixed"


class AugPipe(StrEnum):
    """NVlabs --augpipe (stylekit.nets.stylegan2.augment.AUGPIPES)."""

    blit = "blit"
    geom = "geom"
    color = "color"
    filter = "filter"
    noise = "noise"
    cutout = "cutout"
    bg = "bg"
    bgc = "bgc"
    bgcf = "bgcf"
    bgcfn = "bgcfn"
    bgcfnc = "bgcfnc"


def metric_names(text: str, flag: str = "--metrics") -> tuple[str, ...]:
    """'fid10k,kid10k' -> ('fid10k', 'kid10k'); 'none' (or nothing) -> ()."""
    return tuple(n.strip() for n in text.split(",") if n.strip() and n.strip().lower() != "none")


@dataclass(frozen=True)
class FinetuneConfig(Config):
    data: Path = argument("Folder of square images or an NVlabs-style zip (stylekit prepare --format stylegan-zip).", cover=())
    out: Path = option(help="Run directory (rerun the command to resume; --fresh starts over).", concept="out", cover=())
    network: str = option(help="Transfer source: registry name (ffhq-256, ...), .pkl/.pt/.safetensors, a run directory, "
                          "or none to train from scratch.", concept="network", cover=())
    # -- model and training
    cfg: Preset = option(Preset.auto, "Preset of batch, gamma, lr and EMA (NVlabs --cfg).", flags="--cfg", panel=TRAIN,
                         cover=(Preset.auto, Preset.paper256))
    batch: int | None = option(None, "Global batch (split over processes). Default: the preset's.", concept="batch",
                               unit="images", ge=1, le=65_536, panel=TRAIN, cover=(4, 2))
    kimg: float | None = option(None, "Train until this many thousand real images were shown (fractions allowed). "
                                "Default: the preset's.", unit="kimg", gt=0, le=1e6, panel=TRAIN, cover=(0.008,))
    gamma: float | None = option(None, "R1 weight. Default: the preset's.", ge=0, le=1e6, panel=TRAIN, cover=(None, 0.0))
    lr: float | None = option(None, "Adam learning rate of G and D. Default: the preset's.", concept="lr", gt=0, le=1.0,
                              panel=TRAIN, cover=())
    ema_kimg: float | None = option(None, "G EMA half-life. Default: the preset's.", unit="kimg", ge=0, le=1e6, panel=TRAIN,
                                    cover=(None, 0.0))
    ema_rampup: float | None = option(None, "EMA ramp-up (0 = off). Default: the preset's, off with a transfer source "
                                      "(NVlabs).", ge=0, le=10, panel=TRAIN, cover=(None, 0.05))
    mbstd_group: int | None = option(None, "Minibatch-stddev group size (lowered to tile each process's batch). "
                                     "Default: the preset's.", ge=1, le=1024, panel=MODEL, cover=(None, 1))
    freezed: int = option(0, "FreezeD: freeze the first N discriminator layers (NVlabs numbering).", ge=0, le=64,
                          panel=MODEL, cover=(0, 2))
    mirror: bool = option(False, "Add x-flipped copies of the images.", panel=TRAIN)
    # -- augmentation
    aug: Aug = option(Aug.ada, "ada (adaptive p) | noaug | fixed (constant --p).", panel=AUG)
    p: float = option(0.0, "Initial (ada) or constant (fixed) augmentation probability.", ge=0, le=1, panel=AUG,
                      cover=(0.2,))
    target: float = option(0.6, "r_t = E[sign(D(real))]: ADA moves p to keep it at this target.", gt=0, le=0.99, panel=AUG, cover=())
    augpipe: AugPipe = option(AugPipe.bgc, "Augmentations ADA draws from (NVlabs --augpipe).", panel=AUG,
                              cover=(AugPipe.bgcfnc,))  # every transform; the others are subsets
    ada_kimg: float | None = option(None, "ADA speed: kimg for p to move by 1. Default 500, 100 with a transfer source.",
                                    unit="kimg", gt=0, le=1e6, panel=AUG, cover=(None, 1.0))
    # -- snapshots
    snap: int = option(50, "Snapshot (network, sample grid, metrics) every N ticks.", unit="ticks", ge=1, le=1_000_000,
                       panel=SNAP, cover=(50, 1))
    tick_kimg: float = option(4.0, "Length of a tick (log line, checkpoint).", unit="kimg", gt=0, le=1e6, panel=SNAP,
                              cover=(0.004,))
    ckpt_ticks: int = option(1, "Resumable checkpoint every N ticks.", unit="ticks", ge=1, le=1_000_000, panel=SNAP,
                             cover=())
    keep: int = option(3, "Unpinned checkpoints to keep.", ge=1, le=10_000, panel=SNAP, cover=())
    metrics: tuple[str, ...] = option("none", "Metric registry names at each snapshot, e.g. fid10k,kid10k,ppl2_wend "
                                      "(also metric-NAME.jsonl), or none.", concept="metrics", parse=metric_names,
                                      panel=SNAP, cover=())
    num_gen: int | None = option(None, f"Generated images per snapshot metric (default: the count in its name, else "
                                 f"{SNAPSHOT_NUM_GEN}). Given, it wins over a name's count: fid10k --num-gen 500 "
                                 "computes fid on 500 images, and the result records the counts used.",
                                 concept="num_gen", unit="images", ge=2, le=1_000_000, panel=SNAP, cover=())
    # -- run
    nproc: int = option(1, "Re-launch under torchrun with N processes (one per GPU).", ge=1, le=1024, cover=())
    device: str = option(concept="device", cover=())
    workers: int | None = option(help="Data loader worker processes (default: auto = 0).", concept="workers", ge=0,
                                 le=256, cover=())
    amp: bool = option(concept="amp")
    seed: int = option(concept="seed", help="Seed of initialisation, data order, latents and augmentations.", ge=0,
                       le=2**32 - 1, cover=())
    fresh: bool = option(concept="fresh", help="Delete the run directory's contents and start over.", cover=())
    grid_seeds: int = GRID_SEEDS  # seeds of the samples grids; not an option

    def check(self) -> None:
        require(self.aug is not Aug.fixed or self.p > 0, "--aug fixed needs --p > 0",
                hint="e.g. --aug fixed --p 0.2, or --aug noaug")
        self._parsed_metrics  # noqa: B018 - --metrics parsed (and refused) once, here

    @functools.cached_property
    def _parsed_metrics(self) -> tuple[tuple[Any, ...], tuple[str, ...]]:
        from stylekit.metrics.registry import FAMILIES, check_counts, parse_metric, parse_metrics

        try:
            specs = parse_metrics(list(self.metrics)) if self.metrics else []
        except BadInput as exc:
            raise BadInput(f"--metrics: {exc.message}", hint=exc.hint) from None
        for spec in specs:
            require(not FAMILIES[spec.family].images_only, f"--metrics {spec.name} compares two image sets; it cannot "
                    "score the generator", hint="use fid, kid, pr, is or ppl names (e.g. fid10k,kid10k,ppl2_wend)")
        overridden = tuple(s.name for s in specs if self.num_gen is not None and s.num_gen not in (None, self.num_gen))
        if overridden:
            specs = list({r.name: r for r in (self._recounted(s, parse_metric) for s in specs)}.values())
        check_counts(specs, lambda s: s.num_gen or self.metric_num_gen, f"--num-gen {self.metric_num_gen}")
        return tuple(specs), overridden

    @property
    def metric_specs(self) -> tuple[Any, ...]:
        """--metrics as registry specs, parsed once (when the config is made); with an explicit --num-gen every
        counted name becomes its family's name computed on --num-gen images (the explicit flag wins)."""
        return self._parsed_metrics[0]

    @property
    def metric_overrides(self) -> tuple[str, ...]:
        """The --metrics names whose own image count the explicit --num-gen replaced."""
        return self._parsed_metrics[1]

    def _recounted(self, spec: Any, parse_metric: Any) -> Any:
        if self.num_gen is None or spec.num_gen in (None, self.num_gen):
            return spec
        plain = parse_metric(spec.family)
        require(dataclasses.replace(plain, name=spec.name, num_gen=spec.num_gen, max_real=spec.max_real) == spec,
                f"--num-gen {self.num_gen} cannot replace the count of --metrics {spec.name} (its other parameters "
                f"need the name)", hint=f"drop --num-gen, or use {spec.family} with --num-gen")
        return plain

    @property
    def metric_num_gen(self) -> int:
        """Generated images for the snapshot metrics without a count of their own."""
        return self.num_gen if self.num_gen is not None else SNAPSHOT_NUM_GEN

    @property
    def metric_counts(self) -> dict[str, int]:
        """The generated images each snapshot metric uses (what the result records)."""
        return {s.name: s.num_gen or self.metric_num_gen for s in self.metric_specs}

    @property
    def transfer(self) -> bool:
        """Whether --network names a transfer source (not `none`: training from scratch)."""
        return self.network.lower() != "none"
