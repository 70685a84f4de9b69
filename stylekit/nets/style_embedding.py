"""StyleNet: backbone + classification head + L2-normalised projection head (the style embedding).

The network takes images in [0, 1] and normalises them itself (mean/std buffers), so the exported
model, the trainer and `score` all feed it the same thing. `embedding` selects what `embed()`
returns: the projection head output (trained by SupCon) or, for CE-only training where the
projection head gets no gradient, the L2-normalised backbone features.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from stylekit.nets.backbones import build_backbone


@dataclass(frozen=True)
class StyleNetConfig:
    backbone: str = "small-cnn"
    num_classes: int = 2
    embed_dim: int = 256
    embedding: str = "projection"  # projection | features
    dropout: float = 0.0

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class StyleNet(nn.Module):
    def __init__(self, cfg: StyleNetConfig, pretrained: bool = False, weights: str | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        bb = build_backbone(cfg.backbone, pretrained=pretrained, weights=weights)
        self.backbone = bb.module
        self.feature_dim = bb.dim
        self.norm = bb.norm
        self.register_buffer("mean", torch.tensor(bb.norm[0]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(bb.norm[1]).view(1, 3, 1, 1), persistent=False)
        self.dropout = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()
        self.classifier = nn.Linear(bb.dim, cfg.num_classes)
        self.projection = nn.Sequential(
            nn.Linear(bb.dim, bb.dim), nn.ReLU(inplace=True), nn.Linear(bb.dim, cfg.embed_dim)
        )

    @property
    def embed_dim(self) -> int:
        return self.cfg.embed_dim if self.cfg.embedding == "projection" else self.feature_dim

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Backbone features of images in [0, 1]."""
        x = (images - self.mean.to(images.dtype)) / self.std.to(images.dtype)
        return self.backbone(x)

    def forward(self, images: torch.Tensor, probe: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(class logits [N,C], projection embedding [N,embed_dim], L2-normalised).

        `probe=True` stops the classifier's gradient at the features (SupCon-only training still
        fits a linear classification head, without letting it shape the embedding)."""
        f = self.features(images)
        logits = self.classifier(self.dropout(f.detach() if probe else f))
        z = F.normalize(self.projection(f).float(), dim=1)
        return logits, z

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """The style embedding used for retrieval and similarity (L2-normalised)."""
        f = self.features(images)
        if self.cfg.embedding == "projection":
            return F.normalize(self.projection(f).float(), dim=1)
        return F.normalize(f.float(), dim=1)

    def embed_and_classify(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(images)
        emb = self.projection(f) if self.cfg.embedding == "projection" else f
        return F.normalize(emb.float(), dim=1), self.classifier(f).float()

    def backbone_parameters(self) -> list[nn.Parameter]:
        return list(self.backbone.parameters())
