"""`stylekit invert` and `styleclip`: the options of GAN inversion (NVlabs projector.py, Image2StyleGAN) and of
StyleCLIP latent optimisation (orpatashnik/StyleCLIP run_optimization.py)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from stylekit.configs.stylegan import SEED_MAX, network, trunc
from stylekit.declare import Config, argument, option, require

LOSS_PANEL = "Loss"
OPT_PANEL = "Optimisation"


class Space(StrEnum):
    w = "w"
    w_plus = "w+"


class Loss(StrEnum):
    lpips = "lpips"
    vgg = "vgg"
    mse = "mse"


class Align(StrEnum):
    ffhq = "ffhq"


class Mode(StrEnum):
    edit = "edit"
    free = "free"


DEFAULT_MSE_WEIGHT = {Loss.lpips: 0.0, Loss.vgg: 1.0, Loss.mse: 1.0}


@dataclass(frozen=True)
class InvertConfig(Config):
    target: Path = argument("Image file, or a folder (each image goes to OUT/<name>/; done ones are skipped).", cover=())
    network: str = network()
    out: Path = option(help="Output folder (a rerun skips targets that are up to date; other options need --fresh).",
                       concept="out", cover=())
    space: Space = option(Space.w, "w: one w for all layers (NVlabs projector) | w+: one w per layer (Image2StyleGAN).")
    steps: int = option(1000, "Optimisation steps.", concept="steps", ge=0, le=100_000, panel=OPT_PANEL, cover=(0, 2))
    lr: float = option(0.1, "Peak learning rate (5% rampup, cosine rampdown over the last 25%).", concept="lr", gt=0, le=10.0,
                       panel=OPT_PANEL, cover=())
    loss: Loss = option(Loss.lpips, "lpips (LPIPS-VGG16, NVlabs) | vgg (VGG16 conv1_1,conv1_2,conv3_2,conv4_2 + MSE, "
                        "Image2StyleGAN) | mse.", panel=LOSS_PANEL)
    mse_weight: float | None = option(None, "Weight of the pixel MSE term (default: 0 for lpips, 1 for vgg and mse).", ge=0,
                                      le=1e6, panel=LOSS_PANEL, cover=(None, 0.0))
    vgg_weights: str | None = option(None, "VGG16 weights for --loss lpips/vgg: a registry name, a local state dict (offline "
                                     "use), or random (a random-init stand-in).", concept="vgg_weights", panel=LOSS_PANEL,
                                     cover=("random",))
    noise_reg: float = option(1e5, "Weight of the noise-map autocorrelation penalty.", ge=0, le=1e9, panel=LOSS_PANEL,
                              cover=(1e5, 0.0))
    initial_noise: float = option(0.05, "Initial w noise, as a fraction of w_std (ramped to 0 over 75% of the steps).", ge=0,
                                  le=10.0, panel=OPT_PANEL, cover=(0.05,))
    w_avg_samples: int = option(10000, "Mapped samples for the starting w_avg and w_std.", ge=1, le=1_000_000,
                                panel=OPT_PANEL, cover=(16,))
    seed: int = option(concept="seed", help="Seed for the noise maps and w noise.", ge=0, le=SEED_MAX, cover=(0,))
    save_video: bool = option(False, "Also write progress.gif (target | projection over the steps).")
    log_every: int = option(10, "Record loss and PSNR every N steps (metrics.json, curve.png).", unit="steps", ge=1,
                            le=1_000_000, cover=(1,))
    fresh: bool = option(concept="fresh", help="Redo targets whose outputs are up to date or were made with other options.")
    device: str = option(concept="device", cover=())
    amp: bool = option(concept="amp")
    batch: int = option(1, "Folder mode: project up to N targets at once (each its own latent and noise maps; results equal "
                        "to single runs up to float rounding; faster on a GPU).", concept="batch", ge=1, le=1024, cover=(1, 2))
    align: Align | None = option(None, "ffhq: detect the largest face and FFHQ-align it first (what FFHQ networks expect); "
                                 "targets without a face are skipped.", cover=(None,))
    face_detector: str = option("retinaface-mobilenet0.25", "--align: face landmark network, a registry name or a local "
                                "weights file.", cover=())

    @property
    def mse(self) -> float:
        """The pixel MSE weight used: --mse-weight, or the loss's default."""
        return DEFAULT_MSE_WEIGHT[self.loss] if self.mse_weight is None else self.mse_weight


@dataclass(frozen=True)
class StyleClipConfig(Config):
    network: str = network()
    out: Path = option(help="Output folder (a rerun with the same options skips; other options need --fresh).",
                       concept="out", cover=())
    prompts: tuple[str, ...] = option(help="Text target; repeat for several (one column each).", flags=("--prompt", "-p"),
                                      cover=(("a face",), ("a face", "a cat")))
    latent: Path | None = option(None, "Start latent .npz (from invert or generate).", cover=())
    latent_index: int = option(0, "Row of a latent file that holds several.", ge=0, le=1_000_000, cover=())
    latent_seed: int | None = option(None, "Start from this generator seed's (truncated) w instead of a latent file.", ge=0,
                                     le=SEED_MAX, cover=(None, 3))
    steps: int = option(300, "Optimisation steps (0: return the start image).", concept="steps", ge=0, le=100_000,
                        cover=(0, 2))
    lr: float = option(0.1, "Peak learning rate (5% rampup, cosine rampdown over the last 25%).", concept="lr", gt=0, le=10.0,
                       cover=())
    l2_lambda: float = option(0.008, "Weight of sum((w - w0)^2) in edit mode.", ge=0, le=1e6, cover=(0.008, 0.0))
    mode: Mode = option(Mode.edit, "edit (CLIP + L2 to the start) | free (CLIP only; starts at w_avg without "
                        "--latent/--latent-seed).")
    trunc: float = trunc("Truncation psi for --latent-seed (1 = none).")
    clip_model: str = option("ViT-B-32", "open_clip architecture name or a local open_clip model folder.", cover=())
    clip_weights: str | None = option(None, "Local CLIP weights file (default: the registry's clip-vit-b-32).", cover=())
    log_every: int = option(10, "Record CLIP similarity and L2 every N steps.", unit="steps", ge=1, le=1_000_000, cover=(1,))
    device: str = option(concept="device", cover=())
    amp: bool = option(concept="amp")
    fresh: bool = option(concept="fresh", help="Start over: remove the outputs a previous run recorded in --out.")

    def check(self) -> None:
        require(self.latent is None or self.latent_seed is None, "give --latent FILE or --latent-seed S, not both")
        require(self.mode is Mode.free or self.latent is not None or self.latent_seed is not None,
                "--mode edit needs a starting point: --latent FILE or --latent-seed S", hint="or use --mode free (starts at w_avg)")
        for prompt in self.prompts:
            require(prompt.strip(), "--prompt is empty", hint='give a text such as --prompt "a smiling face"')
        require(self.prompts, "no --prompt given", hint='e.g. --prompt "a smiling face"')
