"""The typed configuration of one `stylekit transfer` run, its defaults and their sources.

Defaults follow jcjohnson/neural-style (Gatys et al. 2016): VGG19, content relu4_2, style
relu1_1..relu5_1, content weight 5, style weight 100, TV weight 1e-3, L-BFGS, 1000 steps at 512 px,
random init. A *step* is one evaluation of the loss and its gradient (one VGG forward + backward):
with L-BFGS (no line search, as jcjohnson) that is exactly one L-BFGS iteration, with Adam one
update. --steps, --save-every and the report's step counts all use this unit.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from stylekit.errors import BadInput

DEFAULT_STYLE_LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
DEFAULT_CONTENT_LAYERS = ["relu4_2"]
DEFAULT_SIZE = 512  # gatys: longer output side when --size is not given
MIN_SIZE = 16  # relu5_1 sits behind four 2x poolings
MAX_SIZE = 4096  # longer output side in px; 4096^2 already needs tens of GB for VGG19 activations
OPTIMIZERS = ("lbfgs", "adam")
CONTENT_LOSSES = ("mse", "cosine")
POOLINGS = ("max", "avg")
ARCHS = ("vgg19", "vgg16")
STEP_UNIT = ("one loss+gradient evaluation (VGG forward+backward): one Adam update; an L-BFGS iteration "
             "takes one or more (strong-Wolfe line search)")


@dataclass
class TransferConfig:
    """Everything `run_transfer` needs. Paths are validated by the runner; numbers by `validate()`."""

    content: Path
    styles: list[Path]
    out: Path | str  # text keeps a trailing "/" (`--out styled/` names a folder; io/outpath.py)
    method: str = "gatys"
    arch: str = "vgg19"
    content_layers: list[str] = field(default_factory=lambda: list(DEFAULT_CONTENT_LAYERS))
    style_layers: list[str] = field(default_factory=lambda: list(DEFAULT_STYLE_LAYERS))
    # PyTorch-tutorial balance: calibrated for torchvision VGG weights on [0, 1] inputs (see docs/transfer.md).
    content_weight: float = 1.0
    style_weight: float = 1e6
    tv_weight: float = 1e-3
    layer_weights: list[float] | None = None
    optimizer: str = "lbfgs"
    steps: list[int] = field(default_factory=lambda: [1000])
    lr: float = 0.04  # ~ jcjohnson's Adam lr 10 on his 0-255 pixel scale (10/255 = 0.039); ours is [0, 1]
    init: str = "content"
    seed: int = 0
    style_blend_weights: list[float] | None = None
    style_scale: float = 1.0
    original_colors: bool = False
    pooling: str = "max"
    size: int | None = None  # None: the method's default (gatys DEFAULT_SIZE; pix2pix the model's training size)
    multires: list[int] | None = None
    content_loss: str = "mse"
    normalize_gradients: bool = False  # jcjohnson: L1-normalise each content/style layer's gradient
    weights: str | None = None
    save_every: int = 0
    device: str = "auto"
    precision: str = "auto"
    model: Path | None = None  # --method pix2pix: a train-pix2pix run directory or its generator file
    targets: Path | None = None  # --method pix2pix on a folder: ground truth for OUT/index.html
    fresh: bool = False  # batch mode: redo outputs made with other inputs or options

    @property
    def stage_sizes(self) -> list[int]:
        """Longer output side of each stage: the --multires list, else just --size."""
        return list(self.multires) if self.multires else [DEFAULT_SIZE if self.size is None else self.size]

    @property
    def stage_steps(self) -> list[int]:
        """Steps per stage: one --steps value applies to every stage, or one value per stage."""
        sizes = self.stage_sizes
        return list(self.steps) * len(sizes) if len(self.steps) == 1 else list(self.steps)

    def blend(self) -> list[float]:
        """Style blend weights normalised to sum 1 (equal when not given)."""
        raw = self.style_blend_weights or [1.0] * len(self.styles)
        total = sum(raw)
        return [w / total for w in raw]

    def style_layer_weights(self) -> list[float]:
        return list(self.layer_weights) if self.layer_weights else [1.0] * len(self.style_layers)

    def validate(self) -> TransferConfig:
        """Refuse impossible settings with a message naming the option (BadInput, exit 2)."""
        if not self.styles:
            raise BadInput("give at least one STYLE image", hint="stylekit transfer CONTENT STYLE [STYLE ...] --out OUT")
        if self.arch not in ARCHS:
            raise BadInput(f"unknown --arch '{self.arch}'", hint=f"use one of: {', '.join(ARCHS)}")
        for name, value, choices in (("--optimizer", self.optimizer, OPTIMIZERS), ("--content-loss", self.content_loss, CONTENT_LOSSES), ("--pooling", self.pooling, POOLINGS)):
            if value not in choices:
                raise BadInput(f"unknown {name} '{value}'", hint=f"use one of: {', '.join(choices)}")
        for name, value in (("--content-weight", self.content_weight), ("--style-weight", self.style_weight), ("--tv-weight", self.tv_weight)):
            if not math.isfinite(value) or value < 0:
                raise BadInput(f"{name} must be a finite number >= 0, got {value}")
        if self.normalize_gradients and self.optimizer == "lbfgs":
            raise BadInput("--normalize-gradients needs --optimizer adam: L-BFGS's line search checks the loss against "
                           "its gradient, and normalised gradients are not the loss gradient (it stops at once)",
                           hint="add --optimizer adam (docs/transfer.md has a measured comparison)")
        if not math.isfinite(self.lr) or self.lr <= 0:
            raise BadInput(f"--lr must be > 0, got {self.lr}")
        for option, size in [("--size", DEFAULT_SIZE if self.size is None else self.size)] + [("--multires", s) for s in (self.multires or [])]:
            if not MIN_SIZE <= size <= MAX_SIZE:
                raise BadInput(
                    f"{option} {size} is out of range: the longer output side must be {MIN_SIZE}..{MAX_SIZE} px",
                    hint="e.g. --size 512, or --multires 256,512,1024 for large outputs",
                )
        if len(self.steps) not in (1, len(self.stage_sizes)):
            raise BadInput(
                f"--steps has {len(self.steps)} values but there are {len(self.stage_sizes)} stages",
                hint="give one value for every stage or one value per --multires size, e.g. --steps 1000,500",
            )
        if any(s < 1 for s in self.steps):
            raise BadInput(f"--steps must be >= 1, got {','.join(map(str, self.steps))}")
        if self.save_every < 0:
            raise BadInput(f"--save-every must be >= 0 (0 = off), got {self.save_every}")
        if not math.isfinite(self.style_scale) or self.style_scale <= 0:
            raise BadInput(f"--style-scale must be > 0, got {self.style_scale}")
        for size in self.stage_sizes:
            if math.ceil(self.style_scale * size) > MAX_SIZE:
                raise BadInput(f"--style-scale {self.style_scale} at size {size} makes the style {math.ceil(self.style_scale * size)} px: more than {MAX_SIZE}")
        if self.style_blend_weights is not None:
            weights = self.style_blend_weights
            if len(weights) != len(self.styles):
                raise BadInput(f"--style-blend-weights has {len(weights)} values for {len(self.styles)} style images", hint="give one weight per STYLE")
            if any(not math.isfinite(w) or w < 0 for w in weights) or sum(weights) <= 0:
                raise BadInput("--style-blend-weights must be >= 0 with a positive sum", hint="e.g. 1,1 or 0.7,0.3")
        if self.layer_weights is not None:
            if len(self.layer_weights) != len(self.style_layers):
                raise BadInput(
                    f"--layer-weights has {len(self.layer_weights)} values for {len(self.style_layers)} style layers",
                    hint=f"give one weight per --style-layers entry ({','.join(self.style_layers)})",
                )
            if any(not math.isfinite(w) or w < 0 for w in self.layer_weights):
                raise BadInput("--layer-weights must be finite numbers >= 0")
        return self

    def to_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else [str(p) for p in v] if k == "styles" else v) for k, v in asdict(self).items()}

    def shaping_options(self) -> dict[str, Any]:
        """The options that shape an output (for its recipe): all but where things go and how fast."""
        return {k: v for k, v in self.to_dict().items() if k not in _NOT_SHAPING}


# Options that never change an output's pixels: paths (content/out; styles and weights enter the recipe
# by their bytes), the device, intermediate frames, and --fresh itself.
_NOT_SHAPING = frozenset({"content", "out", "styles", "weights", "model", "device", "save_every", "fresh"})
