"""Classification and metric-learning losses for the style classifier.

SupCon (Khosla et al. 2020, the L_out form): for an anchor i with positives P(i) (same label,
j != i), loss_i = -1/|P(i)| * sum_{p in P(i)} log( exp(z_i.z_p/t) / sum_{a != i} exp(z_i.z_a/t) ).
Anchors without a positive in the batch are left out (they carry no signal); the loss is the mean
over the anchors that have one. Unlike Khosla's reference code there is no extra
(t / base_temperature) factor: with t = 0.1 the loss is exactly the formula above.

Under DDP pass `gathered=(all_z, all_labels, offset)`: the anchors are the local batch, the
contrast set is the global batch, and the local mean is rescaled so that DDP's gradient averaging
gives exactly the single-process gradient of the global-batch loss (see `supcon_loss`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from stylekit.errors import BadInput

LOSSES = ("ce", "supcon", "ce+supcon")


def supcon_terms(
    anchors: torch.Tensor,
    anchor_labels: torch.Tensor,
    contrast: torch.Tensor,
    contrast_labels: torch.Tensor,
    self_index: torch.Tensor,
    temperature: float = 0.1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-anchor SupCon losses and a mask of anchors that have at least one positive.

    anchors [n,D] and contrast [m,D] are L2-normalised; self_index[i] is anchor i's row in contrast.
    """
    logits = anchors.float() @ contrast.float().T / temperature
    n, m = logits.shape
    not_self = torch.ones(n, m, dtype=torch.bool, device=logits.device)
    not_self[torch.arange(n, device=logits.device), self_index] = False
    logits = logits.masked_fill(~not_self, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positives = (anchor_labels[:, None] == contrast_labels[None, :]) & not_self
    count = positives.sum(1)
    summed = torch.where(positives, log_prob, torch.zeros_like(log_prob)).sum(1)
    has_pos = count > 0
    per_anchor = -summed / count.clamp(min=1)
    return per_anchor, has_pos


def supcon_loss(
    z: torch.Tensor,
    labels: torch.Tensor,
    temperature: float = 0.1,
    gathered: tuple[torch.Tensor, torch.Tensor, int] | None = None,
    world_size: int = 1,
) -> torch.Tensor:
    """SupCon over the batch. With `gathered` (global z with gradient, global labels, this rank's
    offset), the result is world_size * sum(local anchor losses) / (global anchors with a positive),
    whose DDP-averaged gradient equals the single-process gradient.

    Computed without reading anything back to the host (no branch on values, no boolean indexing):
    anchors without a positive contribute an exact 0, and a batch without any positive gives 0.
    """
    if gathered is None:
        idx = torch.arange(z.shape[0], device=z.device)
        per, has = supcon_terms(z, labels, z, labels, idx, temperature)
        return (per * has).sum() / has.sum().clamp(min=1)
    all_z, all_labels, offset = gathered
    idx = torch.arange(z.shape[0], device=z.device) + offset
    per, has = supcon_terms(z, labels, all_z, all_labels, idx, temperature)
    return (per * has).sum() * world_size / _global_positive_anchor_count(all_labels).clamp(min=1)


def _global_positive_anchor_count(labels: torch.Tensor) -> torch.Tensor:
    """Anchors of the global batch whose label occurs at least twice (a device tensor)."""
    same = labels[:, None] == labels[None, :]
    return (same.sum(1) > 1).sum()


@dataclass(frozen=True)
class LossConfig:
    loss: str = "ce+supcon"
    supcon_weight: float = 1.0
    temperature: float = 0.1
    label_smoothing: float = 0.0

    def validate(self) -> None:
        if self.loss not in LOSSES:
            raise BadInput(f"unknown --loss '{self.loss}'", hint=f"use one of {', '.join(LOSSES)}")
        if self.supcon_weight < 0:
            raise BadInput("--supcon-weight must be >= 0")
        if not 0 <= self.label_smoothing < 1:
            raise BadInput("--label-smoothing must be in [0, 1)")
        if self.temperature <= 0:
            raise BadInput("SupCon temperature must be > 0")

    @property
    def uses_ce(self) -> bool:
        return self.loss in ("ce", "ce+supcon")

    @property
    def uses_supcon(self) -> bool:
        return self.loss in ("supcon", "ce+supcon")


def style_loss(
    cfg: LossConfig,
    logits: torch.Tensor,
    z: torch.Tensor,
    labels: torch.Tensor,
    gathered: tuple[torch.Tensor, torch.Tensor, int] | None = None,
    world_size: int = 1,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Total loss and its parts ({'ce': .., 'supcon': ..}, detached 0-dim tensors on the device: reading
    them is the caller's choice, at a log boundary) for one batch.

    CE is the local-batch mean (DDP averaging of equal-size local batches = global mean).
    Under DDP every part is this rank's share, scaled so that the mean over ranks is the global value.
    """
    parts: dict[str, torch.Tensor] = {}
    total = logits.new_zeros((), dtype=torch.float32)
    if cfg.uses_ce:
        ce = F.cross_entropy(logits.float(), labels, label_smoothing=cfg.label_smoothing)
        parts["ce"] = ce.detach()
        total = total + ce
    if cfg.uses_supcon:
        sc = supcon_loss(z, labels, cfg.temperature, gathered, world_size)
        parts["supcon"] = sc.detach()
        total = total + (cfg.supcon_weight if cfg.loss == "ce+supcon" else 1.0) * sc
    parts["loss"] = total.detach()
    return total, parts
