"""The pix2pix reference code as a style embedding (`--ref-cls-weight`, `--ref-metric-weight`).

The vector the reference encoder feeds to the decoder is trained, while pix2pix trains, with two
more losses on each reference image's own code: cross-entropy of a linear style classifier on it,
and supervised contrastive loss (SupCon, temperature 0.1) over the batch's codes (same style =
positive). Every training item brings its K references (the target's style) and K references of
one other style, so even batch 1 (pix2pix's default) has positives and negatives. Under DDP the
SupCon term is each rank's local batch (its gradient is averaged like every other term).

The run exports the encoder as a style model (`style_model.safetensors` + `.json`, the format of
train-classifier's export; backbone `pix2pix-ref:<kind>:<style_dim>:<ref_size>`, embedding = the
L2-normalised code itself), so score --style-model, similar and classify read it unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from stylekit.errors import BadInput
from stylekit.metrics.style import export_style_model
from stylekit.nets.ref_encoder import RefCodeBackbone
from stylekit.nets.style_embedding import StyleNet, StyleNetConfig
from stylekit.nets.unet import RefUNet
from stylekit.train.losses import supcon_loss


@dataclass(frozen=True)
class RefStyleLossConfig:
    cls_weight: float = 0.0
    metric_weight: float = 0.0
    temperature: float = 0.1

    def __post_init__(self) -> None:

        for name, value in (("--ref-cls-weight", self.cls_weight), ("--ref-metric-weight", self.metric_weight)):
            if not (math.isfinite(value) and value >= 0):
                raise BadInput(f"{name} must be a number >= 0, got {value}")

    @property
    def enabled(self) -> bool:
        return self.cls_weight > 0 or self.metric_weight > 0


class GeneratorWithStyleHead(nn.Module):
    """G and a style classifier on its reference codes, one module so DDP syncs both in one forward."""

    def __init__(self, g: RefUNet, n_styles: int) -> None:
        super().__init__()
        if g.encoder is None:
            raise BadInput("the reference-code style losses need --refs >= 1", hint="drop --ref-cls-weight/--ref-metric-weight")
        self.g = g
        self.classifier = nn.Linear(g.cfg.style_dim, n_styles)

    def forward(self, a: torch.Tensor, refs: torch.Tensor | None, code_images: torch.Tensor | None = None,
                ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """(fake B, per-image codes of `code_images` [M, style_dim], their style logits [M, n_styles])."""
        fake = self.g(a, refs)
        if code_images is None:
            return fake, None, None
        assert self.g.encoder is not None
        codes = self.g.encoder.code(code_images)
        return fake, codes, self.classifier(codes)


def code_batch(batch: dict[str, Any], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference images of a batch (own refs, then the other style's) [N*2K, 3, R, R] and their
    style labels [N*2K], on `device`."""
    refs, neg = batch["refs"].to(device, non_blocking=True), batch["neg_refs"].to(device, non_blocking=True)
    k = refs.shape[1]
    labels = torch.cat([batch["ref_style"].to(device).repeat_interleave(k), batch["neg_style"].to(device).repeat_interleave(k)])
    return torch.cat([refs.flatten(0, 1), neg.flatten(0, 1)]), labels


def ref_style_loss(cfg: RefStyleLossConfig, codes: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor,
                   ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Weighted CE + SupCon on the codes; the parts (weighted, detached later by the caller) for logging."""
    parts: dict[str, torch.Tensor] = {}
    total = codes.new_zeros((), dtype=torch.float32)
    if cfg.cls_weight > 0:
        parts["loss_ref_cls"] = F.cross_entropy(logits.float(), labels) * cfg.cls_weight
        total = total + parts["loss_ref_cls"]
    if cfg.metric_weight > 0:
        parts["loss_ref_metric"] = supcon_loss(F.normalize(codes.float(), dim=1), labels, cfg.temperature) * cfg.metric_weight
        total = total + parts["loss_ref_metric"]
    return total, parts


def export_ref_style_model(g: RefUNet, classifier: nn.Linear | None, classes: list[str], out: Path,
                           extra: dict[str, Any]) -> Path:
    """OUT/style_model.* holding G's reference encoder as a style model (see the module docstring)."""

    enc = g.encoder
    assert enc is not None
    spec = RefCodeBackbone.spec(enc.kind, enc.style_dim, enc.ref_size)
    with torch.random.fork_rng(devices=[]):  # the training run's random streams stay untouched
        torch.manual_seed(0)  # the unused projection head is initialised the same way every time
        net = StyleNet(StyleNetConfig(backbone=spec, num_classes=len(classes), embed_dim=enc.style_dim, embedding="features"))
    assert isinstance(net.backbone, RefCodeBackbone)
    net.backbone.encoder.load_state_dict(enc.state_dict())
    if classifier is not None:
        net.classifier.load_state_dict(classifier.state_dict())
    meta = {"name": f"pix2pix-ref-{enc.kind}", "size": enc.ref_size, "classes": classes,
            "classifier_head": classifier is not None, "source": "train-pix2pix", **extra}
    return export_style_model(net, out, meta)
