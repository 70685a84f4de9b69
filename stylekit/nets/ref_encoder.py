"""Reference encoders: K style reference images -> one style vector for the UNet decoder.

Each reference is summarised by the channel means and standard deviations of a few feature maps
(the statistics AdaIN transfers, and what Gram/style losses measure), the K summaries are averaged
(FUNIT's class code), and a small MLP maps the average to `style_dim`. Two feature extractors:

- `small-cnn` (default): four stride-2 convolutions trained jointly with the generator. Needs no
  downloaded weights, so it works offline and in tests.
- `vgg19`: the frozen, ImageNet-pretrained VGG19 from `stylekit.nets.vgg` (relu1_1 ... relu4_1).
  Its weights come from the registry (`stylekit download vgg19`) or a local file; offline and
  missing, that is exit 3 with the download command.

Reference images enter in [0, 1], shape [N, K, 3, H, W]; they are resized to at most `ref_size`
pixels (style statistics need texture, not full resolution).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from stylekit.errors import BadInput

ENCODERS = ("small-cnn", "vgg19")
VGG_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
SMALL_CNN_WIDTHS = (32, 64, 128, 256)


def channel_stats(feat: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """[N, C, H, W] -> [N, 2C]: per-channel mean and standard deviation."""
    f = feat.float().flatten(2)
    return torch.cat([f.mean(2), (f.var(2, unbiased=False) + eps).sqrt()], 1)


class SmallCNN(nn.Module):
    """Four 4x4 stride-2 convolutions with LeakyReLU; returns the feature map of every stage."""

    def __init__(self, widths: tuple[int, ...] = SMALL_CNN_WIDTHS) -> None:
        super().__init__()
        chans = (3, *widths)
        self.stages = nn.ModuleList(
            nn.Sequential(nn.Conv2d(chans[i], chans[i + 1], 4, 2, 1), nn.LeakyReLU(0.2)) for i in range(len(widths))
        )
        self.out_dim = 2 * sum(widths)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        x = x * 2 - 1
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats


class RefEncoder(nn.Module):
    """References [N, K, 3, H, W] in [0, 1] -> style vector [N, style_dim] (mean over the K refs)."""

    def __init__(self, kind: str = "small-cnn", style_dim: int = 256, ref_size: int = 128,
                 vgg_weights: str | None = "vgg19") -> None:
        super().__init__()
        if kind not in ENCODERS:
            raise BadInput(f"unknown --ref-encoder '{kind}'", hint=f"use one of: {', '.join(ENCODERS)}")
        self.kind, self.ref_size, self.style_dim = kind, ref_size, style_dim
        if kind == "vgg19":
            from stylekit.nets.vgg import VGGFeatures

            self.vgg = VGGFeatures("vgg19", layers=VGG_STYLE_LAYERS, weights=vgg_weights, pooling="max")
            code_dim = 2 * (64 + 128 + 256 + 512)
        else:
            self.cnn = SmallCNN()
            code_dim = self.cnn.out_dim
        self.code_dim = code_dim
        # LayerNorm puts the (differently scaled) statistics on one footing before the MLP.
        self.mlp = nn.Sequential(nn.LayerNorm(code_dim), nn.Linear(code_dim, style_dim), nn.ReLU(),
                                 nn.Linear(style_dim, style_dim))

    def features(self, refs: torch.Tensor) -> torch.Tensor:
        """[M, 3, H, W] -> per-reference statistics [M, code_dim]."""
        if refs.shape[-1] > self.ref_size or refs.shape[-2] > self.ref_size:
            refs = F.interpolate(refs, size=(self.ref_size, self.ref_size), mode="bilinear",
                                 align_corners=False, antialias=True)
        if self.kind == "vgg19":
            with torch.no_grad():
                feats = list(self.vgg(refs).values())
        else:
            feats = self.cnn(refs)
        return torch.cat([channel_stats(f) for f in feats], 1)

    def code(self, images: torch.Tensor) -> torch.Tensor:
        """[M, 3, H, W] in [0, 1] -> [M, style_dim]: each image's own code, the vector the decoder
        reads when that image is the only reference (what the exported style model embeds)."""
        return self.mlp(self.features(images))

    def forward(self, refs: torch.Tensor) -> torch.Tensor:
        if refs.dim() != 5 or refs.shape[2] != 3:
            raise ValueError(f"references must be [N, K, 3, H, W], got {tuple(refs.shape)}")
        n, k = refs.shape[:2]
        code = self.features(refs.flatten(0, 1)).view(n, k, -1).mean(1)
        return self.mlp(code)


class RefCodeBackbone(nn.Module):
    """A reference encoder as a style-model backbone (`pix2pix-ref:<kind>:<style_dim>:<ref_size>`):
    images normalised to [-1, 1] -> their reference codes. train-pix2pix exports it this way so that
    score, similar and classify read the pix2pix style code like any train-classifier model."""

    PREFIX = "pix2pix-ref:"

    def __init__(self, kind: str, style_dim: int, ref_size: int) -> None:
        super().__init__()
        self.encoder = RefEncoder(kind, style_dim, ref_size, vgg_weights=None)  # weights come from the export

    @classmethod
    def spec(cls, kind: str, style_dim: int, ref_size: int) -> str:
        return f"{cls.PREFIX}{kind}:{style_dim}:{ref_size}"

    @classmethod
    def from_spec(cls, spec: str) -> RefCodeBackbone:
        try:
            kind, style_dim, ref_size = spec.removeprefix(cls.PREFIX).split(":")
            return cls(kind, int(style_dim), int(ref_size))
        except ValueError:
            raise BadInput(f"bad backbone '{spec}'", hint="expected pix2pix-ref:<small-cnn|vgg19>:<style_dim>:<ref_size>") from None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder.code(x * 0.5 + 0.5)


def frozen_prefixes(kind: str) -> tuple[str, ...]:
    """State-dict prefixes (relative to RefEncoder) that are pretrained and not saved in exports."""
    return ("vgg.",) if kind == "vgg19" else ()
