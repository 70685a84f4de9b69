"""`stylekit transfer`: the options of neural style transfer (Gatys, or a trained pix2pix-ref model).

Defaults follow jcjohnson/neural-style (Gatys et al. 2016) where they carry over: VGG19, content relu4_2, style
relu1_1..relu5_1, TV weight 1e-3, L-BFGS, 1000 steps at 512 px; the content/style weights are the PyTorch
tutorial's balance for torchvision VGG weights on [0, 1] inputs (docs/transfer.md). A *step* is one evaluation
of the loss and its gradient (one VGG forward + backward): one Adam update; an L-BFGS iteration takes one or more.
--steps, --save-every and the report's step counts all use this unit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from stylekit.declare import Config, argument, float_list, int_list, option, require
from stylekit.errors import BadInput

# List options declare their default as the text a user types: the CLI shows it as is, and constructing the config
# parses it (declare.py's `parse`) into the tuple the library reads.

DEFAULT_SIZE = 512  # gatys: longer output side when --size is not given
MIN_SIZE = 16  # relu5_1 sits behind four 2x poolings
MAX_SIZE = 4096  # longer output side in px; 4096^2 already needs tens of GB for VGG19 activations
MAX_WEIGHT = 1e12  # loss weights: the style weight is 1e6 by default; more only overflows the loss
MAX_STEPS = 1_000_000
GATYS = "Gatys"


class Method(StrEnum):
    gatys = "gatys"
    pix2pix = "pix2pix"
    cyclegan = "cyclegan"


class Direction(StrEnum):
    a2b = "a2b"
    b2a = "b2a"


class Arch(StrEnum):
    vgg19 = "vgg19"
    vgg16 = "vgg16"


class Optimizer(StrEnum):
    lbfgs = "lbfgs"
    adam = "adam"


class Pooling(StrEnum):
    max = "max"
    avg = "avg"


class ContentLoss(StrEnum):
    mse = "mse"
    cosine = "cosine"


def name_list(text: str, option: str = "value") -> tuple[str, ...]:
    """Parse 'relu1_1,relu2_1' into names."""
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    if not names:
        raise BadInput(f"empty {option} '{text}'", hint="give comma-separated layer names, e.g. relu1_1,relu2_1")
    return names


@dataclass(frozen=True, kw_only=True)  # keywords only: STYLE (optional) precedes required options
class TransferConfig(Config):
    content: Path = argument("Content image, or a folder of images (batch mode).", cover=())
    styles: tuple[Path, ...] = argument("One or more style images (--method pix2pix: its reference images; --method "
                                        "cyclegan takes none).", (), metavar="STYLE...", cover=())
    out: str = option(help="Output image (.png/.jpg/...) or folder (an existing one, or ending in /); a folder in batch "
                      "mode.", concept="out", cover=())  # text keeps a trailing "/" (io/outpath.py)
    method: Method = option(Method.gatys, "gatys | pix2pix (a train-pix2pix model; STYLE images are its references) | "
                            "cyclegan (a train-cyclegan run or a published style_* generator; one forward pass).",
                            cover=(Method.gatys,))
    model: str | None = option(None, "--method pix2pix: a train-pix2pix run directory (or its generator.safetensors); "
                               "--method cyclegan: a train-cyclegan run, a registry name (style_monet, style_vangogh, "
                               "style_ukiyoe, style_cezanne), a .pth/.safetensors file or its URL.", cover=())
    direction: Direction = option(Direction.a2b, "--method cyclegan: a2b translates A images into B's style, b2a back "
                                  "(published style_* generators: a2b only).", cover=())
    targets: Path | None = option(None, "--method pix2pix on a folder: ground-truth images at the same relative names; "
                                  "OUT/index.html then shows input | refs | output | target.", cover=())
    # -- gatys
    arch: Arch = option(Arch.vgg19, "VGG architecture.", panel=GATYS)
    content_layers: tuple[str, ...] = option("relu4_2", "Comma-separated content layers.", parse=name_list,
                                             panel=GATYS, cover=(("relu2_1",),))
    style_layers: tuple[str, ...] = option("relu1_1,relu2_1,relu3_1,relu4_1,relu5_1",
                                           "Comma-separated style layers.", parse=name_list, panel=GATYS,
                                           cover=(("relu1_1", "relu2_1"),))
    content_weight: float = option(1.0, "Content loss weight (PyTorch tutorial default for torchvision VGG).", ge=0,
                                   le=MAX_WEIGHT, panel=GATYS, cover=(1.0, 0.0))
    style_weight: float = option(1e6, "Style loss weight (PyTorch tutorial default for torchvision VGG).", ge=0,
                                 le=MAX_WEIGHT, panel=GATYS, cover=())
    tv_weight: float = option(1e-3, "Total-variation weight (jcjohnson default).", ge=0, le=MAX_WEIGHT, panel=GATYS,
                              cover=(1e-3, 0.0))
    layer_weights: tuple[float, ...] | None = option(None, "Per style layer weights, e.g. 1,1,1,0.5,0.5 (default all 1).",
                                                     parse=float_list, ge=0, le=MAX_WEIGHT, panel=GATYS, cover=())
    optimizer: Optimizer = option(Optimizer.lbfgs, "lbfgs | adam.", panel=GATYS)
    steps: tuple[int, ...] = option("1000", "Steps (loss+gradient evaluations) per stage: one value, or one per "
                                    "--multires size.", concept="steps", parse=int_list, ge=1, le=MAX_STEPS,
                                    unit="steps", panel=GATYS, cover=((2,),))
    lr: float = option(0.04, "Adam learning rate on the [0,1] image (~ jcjohnson's 10 on 0-255).", concept="lr", gt=0,
                       le=10.0, panel=GATYS, cover=())
    init: str = option("content", "Initial image: content | random | PATH.", panel=GATYS, cover=("content", "random"))
    style_blend_weights: tuple[float, ...] | None = option(None, "Weights of several STYLE images, normalised to sum 1 "
                                                           "(default equal).", parse=float_list, ge=0, le=MAX_WEIGHT,
                                                           panel=GATYS, cover=())
    style_scale: float = option(1.0, "Style image size relative to the output size.", gt=0, le=16.0, panel=GATYS,
                                cover=(1.0, 0.5))
    original_colors: bool = option(False, "Luminance-only transfer: keep the content's colours (chroma) exactly.",
                                   panel=GATYS)
    pooling: Pooling = option(Pooling.max, "VGG pooling.", panel=GATYS)
    size: int | None = option(None, "Longer side of the output (default: 512 for gatys, the model's training size for "
                              "pix2pix).", concept="size", unit="px", ge=MIN_SIZE, le=MAX_SIZE, cover=(16, 24))
    multires: tuple[int, ...] | None = option(None, "Coarse-to-fine stage sizes, e.g. 256,512,1024 (instead of --size).",
                                              parse=int_list, unit="px", ge=MIN_SIZE, le=MAX_SIZE, panel=GATYS,
                                              cover=(None, (16, 24)))
    content_loss: ContentLoss = option(ContentLoss.mse, "mse | cosine (direction of features only; docs/transfer.md).",
                                       panel=GATYS)
    normalize_gradients: bool = option(False, "jcjohnson: divide each content/style layer's gradient by its L1 norm "
                                       "(then times the weight), so the weights alone set the balance; needs "
                                       "--optimizer adam (docs/transfer.md).", panel=GATYS)
    vgg_weights: str | None = option(None, "VGG weights: registry name (default: the --arch entry), local "
                                     ".pth/.safetensors state dict, or random (a random-init stand-in).",
                                     concept="vgg_weights", panel=GATYS, cover=("random",))
    save_every: int = option(0, "Write an intermediate frame every N steps to <out stem>_frames/ (0 = off).",
                             unit="steps", ge=0, le=MAX_STEPS, panel=GATYS, cover=(0, 1))
    batch: int = option(1, "Folder mode, gatys with --optimizer adam: optimise up to N content images of equal size at "
                        "once (faster on a GPU; results equal to single runs up to float rounding).", concept="batch",
                        ge=1, le=1024, cover=(1, 2))
    # -- run
    device: str = option(concept="device", cover=())
    amp: bool = option(concept="amp", help="Mixed precision for --optimizer adam: autocast in the device's native "
                       "low-precision dtype (CUDA: bf16/fp16; CPU: bf16 only where native, else fp32).")
    seed: int = option(concept="seed", help="Seed for --init random.", ge=0, le=2**32 - 1, cover=(0,))
    fresh: bool = option(concept="fresh", help="Redo outputs a rerun would skip, and replace outputs made with other "
                         "styles, options or model (a rerun otherwise refuses them).")


    def check(self) -> None:
        uses_model = self.method in (Method.pix2pix, Method.cyclegan)
        if self.method is Method.cyclegan:
            require(not self.styles, "--method cyclegan takes no STYLE images: the generator is the style",
                    hint="stylekit transfer CONTENT --method cyclegan --model RUN --out OUT")
        else:
            require(self.styles, "give at least one STYLE image", hint="stylekit transfer CONTENT STYLE [STYLE ...] --out OUT")
        require(uses_model or self.model is None, "--model applies to --method pix2pix or cyclegan",
                hint="add --method pix2pix or --method cyclegan, or drop --model")
        require(uses_model or self.direction is Direction.a2b, "--direction applies to --method cyclegan",
                hint="drop --direction")
        require(self.method is Method.pix2pix or self.targets is None,
                "--targets applies to --method pix2pix (its results page)", hint="drop --targets")
        require(self.method is Method.gatys or self.model is not None, f"--method {self.method} needs --model",
                hint=f"a train-{self.method} run directory" + (" or a published name such as style_monet"
                                                               if self.method is Method.cyclegan else ""))
        require(not (self.normalize_gradients and self.optimizer is Optimizer.lbfgs),
                "--normalize-gradients needs --optimizer adam: L-BFGS's line search checks the loss against its "
                "gradient, and normalised gradients are not the loss gradient (it stops at once)",
                hint="add --optimizer adam (docs/transfer.md has a measured comparison)")
        require(not (self.amp and self.optimizer is Optimizer.lbfgs),
                "--amp needs --optimizer adam: L-BFGS stops on loss changes below 1e-9, which low-precision features "
                "quantise away", hint="add --optimizer adam, or drop --amp")
        require(self.batch == 1 or self.method is Method.gatys, f"--batch applies to --method gatys, not {self.method}",
                hint="drop --batch")
        require(self.batch == 1 or self.optimizer is Optimizer.adam,
                "--batch > 1 needs --optimizer adam: L-BFGS's line search picks one step size for the whole batch, "
                "so batched images would no longer match their single-image runs",
                hint="add --optimizer adam, or drop --batch (docs/transfer.md)")
        require(self.multires is None or self.size is None, "--multires sets every stage's size: give it or --size, "
                "not both", hint="drop --size (the last --multires value is the output size)")
        require(len(self.steps) in (1, len(self.stage_sizes)),
                f"--steps has {len(self.steps)} values but there are {len(self.stage_sizes)} stages",
                hint="give one value for every stage or one value per --multires size, e.g. --steps 1000,500")
        for size in self.stage_sizes:
            side = math.ceil(self.style_scale * size)
            require(side <= MAX_SIZE, f"--style-scale {self.style_scale} at size {size} makes the style {side} px: more "
                    f"than {MAX_SIZE}", hint="lower --style-scale or --size")
        weights = self.style_blend_weights
        require(weights is None or len(weights) == len(self.styles),
                f"--style-blend-weights has {len(weights or ())} values for {len(self.styles)} style images",
                hint="give one weight per STYLE")
        require(weights is None or sum(weights) > 0, "--style-blend-weights must have a positive sum",
                hint="e.g. 1,1 or 0.7,0.3")
        require(self.layer_weights is None or len(self.layer_weights) == len(self.style_layers),
                f"--layer-weights has {len(self.layer_weights or ())} values for {len(self.style_layers)} style layers",
                hint=f"give one weight per --style-layers entry ({','.join(self.style_layers)})")

    @property
    def stage_sizes(self) -> list[int]:
        """Longer output side of each stage: the --multires list, else just --size."""
        return list(self.multires) if self.multires else [DEFAULT_SIZE if self.size is None else self.size]

    @property
    def stage_steps(self) -> list[int]:
        """Steps per stage: one --steps value applies to every stage, or one value per stage."""
        return list(self.steps) * len(self.stage_sizes) if len(self.steps) == 1 else list(self.steps)

    def blend(self) -> list[float]:
        """Style blend weights normalised to sum 1 (equal when not given)."""
        raw = self.style_blend_weights or (1.0,) * len(self.styles)
        return [w / sum(raw) for w in raw]

    def style_layer_weights(self) -> list[float]:
        return list(self.layer_weights) if self.layer_weights else [1.0] * len(self.style_layers)

    def shaping_options(self) -> dict[str, Any]:
        """The options that shape an output (for its recipe): all but where things go and how fast."""
        return {k: v for k, v in self.to_dict().items() if k not in _NOT_SHAPING}


# Options that never change an output's pixels: paths (content/out; styles and weights enter the recipe by their
# bytes), the device, intermediate frames, --fresh itself, and --batch (Adam treats every image of a batch on its
# own: a batched output equals its single-image run up to float rounding, as the device does).
_NOT_SHAPING = frozenset({"content", "out", "styles", "vgg_weights", "model", "device", "save_every", "fresh", "batch"})
