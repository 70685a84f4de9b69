"""The ADA controller: adapt the augmentation probability p to the discriminator's overfitting.

r_t = E[sign(D(augmented real))] over the last `interval` minibatches (all processes). D overfits
when r_t rises towards 1; p moves by sign(r_t - target) * batch * interval / (ada_kimg * 1000) every
`interval` minibatches, so p can go from 0 to 1 in `ada_kimg` thousand images. p never goes below 0.
Unlike NVlabs, the state (p and the running sums) lives in every checkpoint, so a resumed run
continues with the p it had.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from stylekit.train.distributed import DistInfo, all_reduce_mean

AUG_MODES = ("ada", "noaug", "fixed")


@dataclass
class AdaConfig:
    mode: str = "ada"  # ada | noaug | fixed
    p: float = 0.0  # initial p (ada) or the constant p (fixed)
    target: float = 0.6
    interval: int = 4  # minibatches between adjustments
    ada_kimg: float = 500.0  # 100 when fine-tuning from a transfer source


class AdaController:
    """Accumulate sign(D(real)) and adjust p. Register it with the runner (it has a state_dict)."""

    def __init__(self, cfg: AdaConfig) -> None:
        if cfg.mode not in AUG_MODES:
            raise ValueError(f"unknown augmentation mode {cfg.mode!r}")
        self.cfg = cfg
        self.p = 0.0 if cfg.mode == "noaug" else float(cfg.p)
        self.sign_sum = 0.0
        self.count = 0.0
        self.rt: float | None = None  # the last r_t used for an adjustment

    def accumulate(self, real_logits: torch.Tensor) -> None:
        """Add this process's sign(D(real)) values (call once per D main phase)."""
        if self.cfg.mode != "ada":
            return
        signs = real_logits.detach().sign().to(torch.float64)
        self.sign_sum += float(signs.sum())
        self.count += float(signs.numel())

    def step(self, batch_idx: int, batch_size: int, dist: DistInfo | None = None) -> bool:
        """After minibatch `batch_idx` (1-based count of done minibatches): adjust every `interval`.

        Collective under DDP (every rank calls it). Returns True when p was adjusted.
        """
        if self.cfg.mode != "ada" or batch_idx % self.cfg.interval != 0:
            return False
        totals = all_reduce_mean(torch.tensor([self.sign_sum, self.count], dtype=torch.float64), dist)
        self.sign_sum, self.count = 0.0, 0.0
        if float(totals[1]) <= 0:
            return False
        self.rt = float(totals[0] / totals[1])
        adjust = (1.0 if self.rt > self.cfg.target else -1.0 if self.rt < self.cfg.target else 0.0)
        adjust *= batch_size * self.cfg.interval / (self.cfg.ada_kimg * 1000)
        self.p = max(self.p + adjust, 0.0)
        return True

    def state_dict(self) -> dict[str, Any]:
        return {"p": self.p, "sign_sum": self.sign_sum, "count": self.count, "rt": self.rt, "mode": self.cfg.mode}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.p = 0.0 if self.cfg.mode == "noaug" else float(state["p"])
        if self.cfg.mode == "fixed":
            self.p = float(self.cfg.p)
        self.sign_sum = float(state.get("sign_sum", 0.0))
        self.count = float(state.get("count", 0.0))
        rt = state.get("rt")
        self.rt = float(rt) if rt is not None else None
