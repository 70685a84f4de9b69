"""Gatys et al. neural style transfer on a named-layer VGG: one `GatysStylizer` per run.

The stylizer builds the truncated VGG once, computes each stage's blended style Grams once (no
graph) and reuses them for every content image of a run, then optimises the content images stage by
stage (--multires: each stage starts from the bilinear upsampling of the previous result). --batch N
optimises N images of equal stage sizes as one [N, 3, H, W] tensor: one VGG pass for all, per-image
targets and losses, their sum minimised (Adam only: see `TransferConfig.check`).
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image

from stylekit.configs.transfer import TransferConfig
from stylekit.data.images import load_rgb, pil_to_tensor, tensor_to_pil
from stylekit.device import full_fp32, resolve_device
from stylekit.errors import BadInput
from stylekit.io.atomic import save_image_atomic
from stylekit.io.console import get_console
from stylekit.nets.vgg import (
    IMAGENET_MEAN,
    VGGFeatures,
    check_layers,
    gram_matrix,
    min_input_side,
    resolve_precision,
)
from stylekit.transfer.colour import grey, luminance, match_luminance, with_content_chroma
from stylekit.transfer.losses import CONTENT_LOSSES, normalize_gradient, style_loss, tv_loss
from stylekit.transfer.optimise import LossFn, StageLog, optimise


def fit_longer_side(img: Image.Image, size: int) -> Image.Image:
    """Resize (Lanczos) so the longer side is `size`, keeping the aspect ratio; no-op when it already is."""
    w, h = img.size
    if max(w, h) == size:
        return img
    scale = size / max(w, h)
    return img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.LANCZOS)


def frames_dir(out: Path) -> Path:
    """Where --save-every frames of output `out` go: a sibling folder `<stem>_frames/`."""
    return out.parent / f"{out.stem}_frames"


class GatysStylizer:
    """Stylise content images with one fixed set of style images and settings."""

    name = "gatys"

    def __init__(self, cfg: TransferConfig, device: str | None = None) -> None:
        """`device`: where to run (under torchrun this process's GPU); default `cfg.device`."""
        self.cfg = cfg
        self.content_layers = check_layers(cfg.arch, cfg.content_layers, "--content-layers")
        self.style_layers = check_layers(cfg.arch, cfg.style_layers, "--style-layers")
        layers = list(dict.fromkeys(self.content_layers + self.style_layers))
        self.min_side = min_input_side(cfg.arch, layers)
        self.device = resolve_device(device or cfg.device)
        # --amp: the device's native low-precision dtype (fp32 where there is none); only with Adam (TransferConfig.check).
        self.precision = resolve_precision("auto", self.device) if cfg.amp else "fp32"
        self.style_images = [load_rgb(p) for p in cfg.styles]
        self.blend = cfg.blend()
        self.layer_weights = cfg.style_layer_weights()
        init_path = check_init(cfg.init)
        self.init_image = None if init_path is None else load_rgb(init_path)
        self.content_loss = CONTENT_LOSSES[cfg.content_loss]
        self.vgg = VGGFeatures(
            cfg.arch, layers, weights=cfg.vgg_weights or "auto", pooling=cfg.pooling, precision=self.precision, channels_last=True
        ).to(self.device)
        self._style_cache: dict[int, dict[str, torch.Tensor]] = {}

    def describe(self) -> dict[str, Any]:
        """Facts about the run shared by every output (for the report)."""
        return {
            "arch": self.cfg.arch,
            "weights": self.vgg.weights_source,
            "device": str(self.device),
            "precision": self.precision,
            "content_layers": self.content_layers,
            "style_layers": self.style_layers,
            "layer_weights": self.layer_weights,
            "style_blend_weights": self.blend,
        }

    # -- targets -------------------------------------------------------------------------------

    def _to_device(self, img: Image.Image) -> torch.Tensor:
        return pil_to_tensor(img).unsqueeze(0).to(self.device)

    @torch.no_grad()
    def _style_grams(self, size: int, content_y: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """Blend-weighted Gram targets at stage `size`; cached unless they depend on the content."""
        if content_y is None and size in self._style_cache:
            return self._style_cache[size]
        side = math.ceil(self.cfg.style_scale * size)
        grams: dict[str, torch.Tensor] = {}
        for path, img, weight in zip(self.cfg.styles, self.style_images, self.blend, strict=True):
            if weight == 0:
                continue
            style = fit_longer_side(img, side)
            if min(style.size) < self.min_side:
                raise BadInput(
                    f"{path}: style image is {style.size[0]}x{style.size[1]} px at --style-scale {self.cfg.style_scale}; "
                    f"the chosen layers need at least {self.min_side} px on the shorter side",
                    hint="raise --style-scale or --size, or use a less elongated style image",
                )
            t = self._to_device(style)
            if content_y is not None:
                t = grey(match_luminance(luminance(t), content_y))
            feats = self.vgg(t)
            for layer in self.style_layers:
                g = gram_matrix(feats[layer]) * weight
                grams[layer] = g if layer not in grams else grams[layer] + g
        if content_y is None:
            self._style_cache[size] = grams
        return grams

    # -- one content image ---------------------------------------------------------------------

    def _initial(self, height: int, width: int, content: torch.Tensor, previous: torch.Tensor | None) -> torch.Tensor:
        if previous is not None:
            return F.interpolate(previous, size=(height, width), mode="bilinear", align_corners=False).clamp_(0, 1)
        if self.cfg.init == "content":
            return content.clone()
        if self.cfg.init == "random":
            # jcjohnson: randn * 0.001 around the mean pixel (a flat ImageNet-mean image plus faint noise).
            generator = torch.Generator().manual_seed(self.cfg.seed)
            noise = torch.randn(1, 3, height, width, generator=generator, device="cpu") * 1e-3
            return (noise + torch.tensor(IMAGENET_MEAN, device="cpu").view(1, 3, 1, 1)).to(self.device)
        assert self.init_image is not None
        return self._to_device(self.init_image.resize((width, height), Image.Resampling.LANCZOS))

    def batch_key(self, content_path: Path) -> tuple[tuple[int, int], ...]:
        """The (width, height) of every stage for this content image: only equal keys share a batch."""
        original = load_rgb(content_path)
        return tuple(fit_longer_side(original, size).size for size in self.cfg.stage_sizes)

    def stylise(self, content_path: Path, out_path: Path) -> dict[str, Any]:
        """Stylise one content image into `out_path`; returns the per-stage report."""
        return self.stylise_batch([(content_path, out_path)])[0]

    def stylise_batch(self, jobs: list[tuple[Path, Path]]) -> list[dict[str, Any]]:
        """Stylise N content images of equal stage sizes (`batch_key`) as one [N, 3, H, W] batch.

        Each image keeps its own content (and, with --original-colors, style) targets and its own
        loss; the optimised loss is their sum, so with Adam each image follows its single-image run.
        """
        cfg = self.cfg
        paths = [src for src, _ in jobs]
        originals = [load_rgb(p) for p in paths]
        oc = cfg.original_colors
        stages: list[list[StageLog]] = [[] for _ in jobs]
        previous: torch.Tensor | None = None
        variable = content = torch.empty(0, device=self.device)
        names = ", ".join(p.name for p in paths)
        for index, (size, steps) in enumerate(zip(cfg.stage_sizes, cfg.stage_steps, strict=True), start=1):
            images = [fit_longer_side(original, size) for original in originals]
            width, height = images[0].size
            for path, img in zip(paths, images, strict=True):
                if img.size != (width, height):
                    raise BadInput(f"{path}: {img.size[0]}x{img.size[1]} px does not batch with {width}x{height} px",
                                   hint="batch only images whose stage sizes are equal (GatysStylizer.batch_key)")
                if min(width, height) < self.min_side:
                    raise BadInput(
                        f"{path}: {width}x{height} px at size {size} is too small; the chosen layers need "
                        f"at least {self.min_side} px on the shorter side",
                        hint="raise --size or crop the image to a less elongated shape",
                    )
            content = torch.cat([self._to_device(img) for img in images])
            content_y = luminance(content) if oc else None
            with torch.no_grad():
                c_feats = self.vgg(grey(content_y) if content_y is not None else content)
            c_targets = [{layer: c_feats[layer][i : i + 1] for layer in self.content_layers} for i in range(len(jobs))]
            s_targets = [self._style_grams(size, content_y[i : i + 1] if content_y is not None else None) for i in range(len(jobs))]
            init = torch.cat([self._initial(height, width, content[i : i + 1], previous[i : i + 1] if previous is not None else None)
                              for i in range(len(jobs))])
            variable = (luminance(init) if oc else init).detach().clone().contiguous().requires_grad_(True)
            render = grey if oc else _identity
            loss_fn = self._loss_fn(c_targets, s_targets)

            def save_frame(step: int, current: torch.Tensor, stage: int = index, content: torch.Tensor = content) -> None:
                if cfg.save_every and step % cfg.save_every == 0:
                    for i, (_, out_path) in enumerate(jobs):
                        self._save(current[i : i + 1], content[i : i + 1], frames_dir(out_path) / f"stage{stage}_{step:05d}.png")

            # L-BFGS's line search and curvature pairs compare loss differences below TF32's precision
            with full_fp32() if cfg.optimizer == "lbfgs" else contextlib.nullcontext():
                stage_logs = optimise(
                    variable, render, loss_fn, cfg.optimizer, steps, cfg.lr,
                    f"{names} stage {index}/{len(cfg.stage_sizes)} {width}x{height}", save_frame,
                )
            for path, log, per_image in zip(paths, stage_logs, stages, strict=True):
                get_console().log(
                    f"{path.name} stage {index}: {width}x{height}, {steps} steps in {log.seconds:.1f}s, "
                    f"loss {log.loss_start.get('total', math.nan):.4g} -> {log.loss_end['total']:.4g}"
                )
                per_image.append(log)
            previous = render(variable.detach()).clamp(0, 1)
        for i, (_, out_path) in enumerate(jobs):
            self._save(variable[i : i + 1], content[i : i + 1], out_path)
        return [
            {
                "size": logs[-1].size,
                "steps": sum(s.steps for s in logs),
                "seconds": round(sum(s.seconds for s in logs), 4),
                "stages": [s.to_dict() for s in logs],
            }
            for logs in stages
        ]

    def _loss_fn(self, c_targets: list[dict[str, torch.Tensor]], s_targets: list[dict[str, torch.Tensor]]) -> LossFn:
        """Per-image loss terms ([N] each) from one batched VGG pass; the total is their sum.

        Every term is computed on the image's own slice of the features, so --normalize-gradients
        normalises each image's gradient on its own and the images never share a reduction.
        """
        cfg = self.cfg

        c_scale = {layer: cfg.content_weight for layer in self.content_layers}
        s_scale = {layer: cfg.style_weight * w for layer, w in zip(self.style_layers, self.layer_weights, strict=True)}

        def image_terms(feats: dict[str, torch.Tensor], image: torch.Tensor, i: int) -> tuple[torch.Tensor, ...]:
            def feat(layer: str, scale: float) -> torch.Tensor:  # jcjohnson's -normalize_gradients, per layer
                f = feats[layer][i : i + 1]
                return normalize_gradient(f, scale) if cfg.normalize_gradients else f

            content = sum(self.content_loss(feat(layer, c_scale[layer]), c_targets[i][layer]) for layer in self.content_layers)
            style = sum(
                w * style_loss(feat(layer, s_scale[layer]), s_targets[i][layer])
                for layer, w in zip(self.style_layers, self.layer_weights, strict=True)
            )
            return cfg.content_weight * content, cfg.style_weight * style, cfg.tv_weight * tv_loss(image[i : i + 1])

        def loss_fn(image: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
            feats = self.vgg(image)
            columns = zip(*(image_terms(feats, image, i) for i in range(image.shape[0])), strict=True)
            terms = dict(zip(("content", "style", "tv"), (torch.stack(list(column)) for column in columns), strict=True))
            terms["total"] = terms["content"] + terms["style"] + terms["tv"]
            return terms["total"].sum(), terms

        return loss_fn

    def _save(self, variable: torch.Tensor, content: torch.Tensor, path: Path) -> None:
        if self.cfg.original_colors:
            image = Image.fromarray(with_content_chroma(variable.detach(), content), mode="RGB")
        else:
            image = tensor_to_pil(variable.detach()[0])
        save_image_atomic(path, image)


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


INIT_NAMES = ("content", "random")


def check_init(init: str) -> Path | None:
    """The --init image file (None for content | random), or BadInput naming --init."""
    if init in INIT_NAMES:
        return None
    path = Path(init).expanduser()
    if not path.is_file():
        raise BadInput(f"--init {init}: not 'content', 'random' or an existing image file", hint="use --init content|random|PATH")
    return path
