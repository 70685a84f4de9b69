"""`stylekit train-pix2pix`: the options of reference-conditioned pix2pix (defaults: the pix2pix paper and
junyanz's repo)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from stylekit.declare import Config, argument, option, require

MODEL = "Model"
TRAIN = "Training"
DATA = "Data"


class Direction(StrEnum):
    AtoB = "AtoB"
    BtoA = "BtoA"


class Layout(StrEnum):
    auto = "auto"
    toy_styles = "toy-styles"
    folders = "folders"
    aligned = "aligned"


class Norm(StrEnum):
    batch = "batch"
    instance = "instance"


class RefInject(StrEnum):
    adain = "adain"
    concat = "concat"


class RefEncoder(StrEnum):
    small_cnn = "small-cnn"
    vgg19 = "vgg19"


class NetG(StrEnum):
    unet = "unet"
    resnet9 = "resnet9"


class GanMode(StrEnum):
    vanilla = "vanilla"
    lsgan = "lsgan"


class Preprocess(StrEnum):
    resize_and_crop = "resize_and_crop"
    crop = "crop"
    none = "none"


@dataclass(frozen=True)
class Pix2PixConfig(Config):
    data: Path = argument("toy-styles folder, folder with A/ and B/, or aligned A|B pairs.", cover=())
    out: Path = option(help="Run directory (resumed when it holds a checkpoint).", concept="out", cover=())
    # -- model
    refs: int = option(5, "K style references per target (0 = plain pix2pix).", ge=0, le=64, panel=MODEL, cover=(0, 1, 2))
    size: int = option(256, "Square training size: a power of two for --net-g unet (sets the UNet depth: 256 -> 8 downs), "
                       "a multiple of 4 for resnet9.", concept="size", unit="px", ge=16, le=4096, panel=MODEL, cover=(32,))
    ngf: int = option(64, "Generator width.", ge=1, le=1024, panel=MODEL, cover=(4,))
    ndf: int = option(64, "Discriminator width.", ge=1, le=1024, panel=MODEL, cover=(4,))
    n_layers_d: int = option(3, "PatchGAN layers (3 = 70x70 patches).", ge=1, le=10, panel=MODEL, cover=(1, 3))
    norm: Norm = option(Norm.batch, "Normalisation layers of G and D.", panel=MODEL)
    dropout: bool = option(True, "Dropout 0.5 in the inner decoder blocks.", panel=MODEL)
    ref_inject: RefInject = option(RefInject.adain, "adain (per-scale affine from the reference code) | concat.", panel=MODEL)
    ref_encoder: RefEncoder = option(RefEncoder.small_cnn, "small-cnn (trained jointly, no downloads) | vgg19 (frozen "
                                     "pretrained; needs `stylekit download vgg19`, or --vgg-weights random).", panel=MODEL)
    vgg_weights: str = option("vgg19", "VGG19 weights for --ref-encoder vgg19 and --lambda-vgg: registry name, local file, "
                              "or random (a random-init stand-in).", concept="vgg_weights", panel=MODEL, cover=("random",))
    style_dim: int = option(256, "Size of the style vector fed to the decoder.", ge=1, le=4096, panel=MODEL, cover=(8,))
    ref_size: int = option(0, "Side the references are resized to (0 = min(--size, 128)).", unit="px", ge=0, le=1024,
                           panel=MODEL, cover=(0, 16))
    net_g: NetG = option(NetG.unet, "Generator: unet (sizes a power of two) | resnet9 (junyanz resnet_9blocks; sizes a "
                         "multiple of 4). References drive both.", flags="--net-g", panel=MODEL)
    grad_checkpoint: bool = option(False, "Recompute UNet blocks in backward (less memory at 512px+).", panel=MODEL)
    # -- training
    epochs: int = option(200, "Total epochs: constant learning rate, then the last --decay-epochs decay it linearly to 0.",
                         concept="epochs", ge=1, le=100_000, panel=TRAIN, cover=(1,))
    decay_epochs: int | None = option(None, "The last N of --epochs, with the rate decaying linearly to 0 (default: half of "
                                      "--epochs).", ge=0, le=100_000, panel=TRAIN, cover=(None, 0))
    batch: int = option(1, "Global batch size (split over torchrun processes).", concept="batch", ge=1, le=65_536,
                        panel=TRAIN, cover=(1, 2))
    lr: float = option(2e-4, "Adam learning rate (betas 0.5, 0.999).", concept="lr", gt=0, le=1.0, panel=TRAIN, cover=())
    gan_mode: GanMode = option(GanMode.vanilla, "vanilla (BCE) | lsgan.", panel=TRAIN)
    lambda_l1: float = option(100.0, "Weight of the L1 loss.", ge=0, le=1e6, panel=TRAIN, cover=(100.0, 0.0))
    lambda_vgg: float = option(0.0, "Weight of a VGG19 perceptual loss (0 = off; needs VGG19 weights).", ge=0, le=1e6,
                               panel=TRAIN, cover=(0.0, 1.0))
    ref_cls_weight: float = option(0.0, "Weight of a style classifier's cross-entropy on the reference code (0 = off); the "
                                   "exported style model then classifies.", ge=0, le=1e6, panel=TRAIN, cover=(0.0, 1.0))
    ref_metric_weight: float = option(0.0, "Weight of SupCon (same style = positive) on the reference code (0 = off): the "
                                      "code becomes a style metric (score/similar --style-model RUN).", ge=0, le=1e6,
                                      panel=TRAIN, cover=(0.0, 0.1))
    save_every: int = option(1000, "Also checkpoint every N steps inside an epoch (0 = only at epoch ends).", unit="steps",
                             ge=0, le=10**9, panel=TRAIN, cover=(1000, 1))
    keep: int = option(3, "Checkpoints kept (the final one is always kept).", ge=1, le=10_000, panel=TRAIN, cover=())
    # -- data
    direction: Direction = option(Direction.AtoB, "AtoB | BtoA.", panel=DATA)
    layout: Layout = option(Layout.auto, "auto reads single images as A|B halves only with evidence of pairing (a `prepare "
                            "--format pairs` folder, or images twice as wide as tall).", panel=DATA, cover=())
    preprocess: Preprocess = option(Preprocess.resize_and_crop, "resize_and_crop (load 286 -> random 256 crop, scaled with "
                                    "--size) | crop (random crop, no resize) | none (images must be --size).", panel=DATA)
    flip: bool = option(True, "Random horizontal flips of pairs and references.", panel=DATA)
    val_fraction: float = option(0.1, "Held-out share of compositions when the data has no split.", ge=0, le=0.9,
                                 panel=DATA, cover=(0.1, 0.0))
    val_max: int = option(200, "At most this many held-out pairs per evaluation (0 = all).", ge=0, le=10**9, panel=DATA,
                          cover=(200, 1))
    samples: int = option(4, "Rows in each epoch's samples grid.", ge=0, le=256, panel=DATA, cover=(4, 0))
    # -- run
    workers: int | None = option(help="Data loader worker processes (default: auto = 0).", concept="workers", ge=0, le=256,
                          cover=())
    amp: bool = option(concept="amp")
    device: str = option(concept="device", cover=())
    seed: int = option(concept="seed", help="Seed for initialisation, data order, crops and references.", ge=0,
                       le=2**32 - 1, cover=(0, 1))
    fresh: bool = option(concept="fresh", help="Start over: clear --out instead of resuming.", cover=())
    beta1: float = 0.5  # Adam's beta1 (pix2pix); not an option

    def check(self) -> None:
        require(self.decay_epochs is None or self.decay_epochs <= self.epochs,
                f"--decay-epochs {self.decay_epochs} is more than --epochs {self.epochs}",
                hint="the decay happens inside --epochs (the total)")
        if self.net_g is NetG.unet:
            require(self.size >= 32 and not self.size & (self.size - 1),
                    f"--size {self.size} does not fit --net-g unet", hint="use a power of two >= 32, e.g. 256")
            deepest = max(1, self.size.bit_length() - 3)  # D's output keeps >= 1 pixel: size / 2^n >= 4
            require(self.n_layers_d <= deepest, f"--n-layers-d {self.n_layers_d} is too deep for --size {self.size}",
                    hint=f"at --size {self.size} the PatchGAN takes at most {deepest} layers (3 = 70x70 patches)")
        else:
            require(self.size % 4 == 0, f"--size {self.size} does not fit --net-g resnet9",
                    hint="use a multiple of 4 that is at least 16, e.g. 256")
        require(self.refs >= 1 or not (self.ref_cls_weight or self.ref_metric_weight),
                "--ref-cls-weight/--ref-metric-weight train the reference code: they need --refs >= 1")

    @property
    def decay(self) -> int:
        """Epochs (the last ones of `epochs`) over which the learning rate decays linearly to 0."""
        return self.epochs // 2 if self.decay_epochs is None else self.decay_epochs
