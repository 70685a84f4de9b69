"""`stylekit train-cyclegan`: the options of unpaired CycleGAN (defaults: Zhu et al. 2017 and junyanz's repo)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from stylekit.configs.pix2pix import (  # one vocabulary for the two image-to-image trainers
    GanMode,
    Norm,
    Preprocess,
)
from stylekit.declare import Config, argument, option, require

MODEL = "Model"
TRAIN = "Training"
DATA = "Data"


@dataclass(frozen=True)
class CycleGANConfig(Config):
    a: Path = argument("Domain A images: a folder (recursive), a .zip, or a prepared set with train/ and val/ or test/.",
                       cover=())
    b: Path = argument("Domain B images, as A (e.g. paintings of one style).", cover=())
    out: Path = option(help="Run directory (resumed when it holds a checkpoint).", concept="out", cover=())
    # -- model
    size: int = option(256, "Square training crop (a multiple of 4).", concept="size", unit="px", ge=16, le=4096,
                       panel=MODEL, cover=(32,))
    ngf: int = option(64, "Generator width (64: 11,378,179 parameters per generator).", ge=1, le=1024, panel=MODEL,
                      cover=(4,))
    ndf: int = option(64, "Discriminator width.", ge=1, le=1024, panel=MODEL, cover=(4,))
    n_blocks: int = option(9, "Residual blocks per generator (9 = resnet_9blocks, 6 = resnet_6blocks).", ge=1, le=64,
                           panel=MODEL, cover=(1, 2))
    n_layers_d: int = option(3, "PatchGAN layers (3 = 70x70 patches).", ge=1, le=10, panel=MODEL, cover=(1, 2))
    norm: Norm = option(Norm.instance, "Normalisation layers of G and D.", panel=MODEL)
    dropout: bool = option(False, "Dropout 0.5 in the residual blocks (CycleGAN trains without).", panel=MODEL)
    # -- training
    epochs: int = option(200, "Total epochs: constant learning rate, then the last --decay-epochs decay it linearly to 0.",
                         concept="epochs", ge=1, le=100_000, panel=TRAIN, cover=(1,))
    decay_epochs: int | None = option(None, "The last N of --epochs, with the rate decaying linearly to 0 (default: half "
                                      "of --epochs).", ge=0, le=100_000, panel=TRAIN, cover=(None, 0))
    batch: int = option(1, "Global batch size (split over torchrun processes).", concept="batch", ge=1, le=65_536,
                        panel=TRAIN, cover=(1, 2))
    lr: float = option(2e-4, "Adam learning rate (betas 0.5, 0.999).", concept="lr", gt=0, le=1.0, panel=TRAIN, cover=())
    gan_mode: GanMode = option(GanMode.lsgan, "lsgan (least squares) | vanilla (BCE).", panel=TRAIN)
    lambda_a: float = option(10.0, "Weight of the A -> B -> A cycle loss.", ge=0, le=1e6, panel=TRAIN, cover=(10.0,))
    lambda_b: float = option(10.0, "Weight of the B -> A -> B cycle loss.", ge=0, le=1e6, panel=TRAIN, cover=(10.0, 0.0))
    lambda_identity: float = option(0.5, "Identity loss weight, relative to the cycle weights (0 = off).", ge=0, le=1e3,
                                    panel=TRAIN, cover=(0.5, 0.0))
    pool_size: int = option(50, "Generated images kept to train the discriminators on (0 = the latest only).", ge=0,
                            le=10_000, panel=TRAIN, cover=(50, 0))
    save_every: int = option(1000, "Also checkpoint every N steps inside an epoch (0 = only at epoch ends).",
                             unit="steps", ge=0, le=10**9, panel=TRAIN, cover=(1000, 1))
    keep: int = option(3, "Checkpoints kept (the final one is always kept).", ge=1, le=10_000, panel=TRAIN, cover=())
    # -- data
    preprocess: Preprocess = option(Preprocess.resize_and_crop, "resize_and_crop (load 286 -> random 256 crop, scaled "
                                    "with --size) | crop (random crop, no resize) | none (images must be --size).",
                                    panel=DATA, cover=(Preprocess.resize_and_crop, Preprocess.crop))
    flip: bool = option(True, "Random horizontal flips.", panel=DATA)
    val_fraction: float = option(0.1, "Held-out share of each domain when it has no train/ + val/ (or test/) split.",
                                 ge=0.01, le=0.9, panel=DATA, cover=(0.1, 0.5))
    val_max: int = option(200, "At most this many held-out images per domain per evaluation (0 = all).", ge=0,
                          le=10**9, panel=DATA, cover=(200, 1))
    samples: int = option(4, "Rows in each epoch's samples sheet.", ge=0, le=256, panel=DATA, cover=(4, 0))
    judge: Path | None = option(None, "A train-classifier run (style model): each epoch, the share of translated "
                                "held-out A it assigns to B's style and the style distance to real B.", cover=())
    judge_class: str | None = option(None, "The judge's class that is B's style (default: B's folder name).", cover=())
    # -- run
    workers: int | None = option(help="Data loader worker processes (default: auto = 0).", concept="workers", ge=0,
                                 le=256, cover=())
    amp: bool = option(concept="amp")
    device: str = option(concept="device", cover=())
    seed: int = option(concept="seed", help="Seed for initialisation, data order, crops, flips and the image pools.",
                       ge=0, le=2**32 - 1, cover=(0,))
    fresh: bool = option(concept="fresh", help="Start over: clear --out instead of resuming.", cover=())
    beta1: float = 0.5  # Adam's beta1 (CycleGAN); not an option

    def check(self) -> None:
        require(self.decay_epochs is None or self.decay_epochs <= self.epochs,
                f"--decay-epochs {self.decay_epochs} is more than --epochs {self.epochs}",
                hint="the decay happens inside --epochs (the total)")
        require(self.size % 4 == 0, f"--size {self.size} is not a multiple of 4",
                hint="the generator halves the image twice and doubles it back: use e.g. 128 or 256")
        deepest = max(1, self.size.bit_length() - 3)  # D's output keeps >= 1 pixel
        require(self.n_layers_d <= deepest, f"--n-layers-d {self.n_layers_d} is too deep for --size {self.size}",
                hint=f"at --size {self.size} the PatchGAN takes at most {deepest} layers (3 = 70x70 patches)")
        require(self.judge is not None or self.judge_class is None, "--judge-class needs --judge",
                hint="pass --judge RUN, a train-classifier run")

    @property
    def decay(self) -> int:
        """Epochs (the last ones of `epochs`) over which the learning rate decays linearly to 0."""
        return self.epochs // 2 if self.decay_epochs is None else self.decay_epochs
