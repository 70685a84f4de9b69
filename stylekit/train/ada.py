"""The ADA controller: adapt the augmentation probability p to the discriminator's overfitting.

r_t = E[sign(D(augmented real))] over the last `interval` minibatches (all processes). D overfits
when r_t rises towards 1; p moves by sign(r_t - target) * batch * interval / (ada_kimg * 1000) every
`interval` minibatches, so p can go from 0 to 1 in `ada_kimg` thousand images. p never goes below 0.
Unlike NVlabs, the state (p and the running sums) lives in every checkpoint, so a resumed run
continues with the p it had.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from stylekit.train.distributed import DistInfo, all_reduce_mean


@dataclass
class AdaConfig:
    mode: str = "ada"  # ada | noaug | fixed (stylekit.configs.finetune.Aug)
    p: float = 0.0  # initial p (ada) or the constant p (fixed)
    target: float = 0.6
    interval: int = 4  # minibatches between adjustments
    ada_kimg: float = 500.0  # 100 when fine-tuning from a transfer source


class AdaController:
    """Accumulate sign(D(real)) and adjust p. Register it with the runner (it has a state_dict).

    Everything lives on `device` (p, the running sums, r_t): accumulating and adjusting never read a
    value back to Python, and the adjustment every `interval` minibatches is one all-reduce. Reading
    `p` or `rt` (floats) synchronises: do it at tick/checkpoint boundaries only.
    """

    def __init__(self, cfg: AdaConfig, device: torch.device | str = "cpu") -> None:
        self.cfg = cfg
        self.device = torch.device(device)
        dtype = torch.float32 if self.device.type == "mps" else torch.float64
        self.p_tensor = torch.zeros([], dtype=dtype, device=self.device)
        self.p_tensor.fill_(0.0 if cfg.mode == "noaug" else float(cfg.p))
        self.stats = torch.zeros(2, dtype=dtype, device=self.device)  # [sum of signs, count]
        self.rt_tensor = torch.full([], float("nan"), dtype=dtype, device=self.device)  # nan: none yet

    @property
    def p(self) -> float:
        return float(self.p_tensor)

    @property
    def rt(self) -> float | None:
        """The last r_t used for an adjustment (None before the first)."""
        value = float(self.rt_tensor)
        return None if math.isnan(value) else value

    def accumulate(self, real_logits: torch.Tensor) -> None:
        """Add this process's sign(D(real)) values (call once per D main phase)."""
        if self.cfg.mode != "ada":
            return
        self.stats[0] += real_logits.detach().sign().sum().to(self.stats.dtype)
        self.stats[1] += real_logits.numel()

    def step(self, batch_idx: int, batch_size: int, dist: DistInfo | None = None) -> bool:
        """After minibatch `batch_idx` (1-based count of done minibatches): adjust every `interval`.

        Collective under DDP (every rank calls it). Returns True at an adjustment point (p moves there
        unless no sign was accumulated).
        """
        if self.cfg.mode != "ada" or batch_idx % self.cfg.interval != 0:
            return False
        totals = all_reduce_mean(self.stats, dist)  # mean of sums / mean of counts = global ratio
        self.stats.zero_()
        seen = totals[1] > 0
        rt = totals[0] / totals[1].clamp(min=1)
        self.rt_tensor = torch.where(seen, rt, self.rt_tensor)
        adjust = torch.sign(rt - self.cfg.target) * (batch_size * self.cfg.interval / (self.cfg.ada_kimg * 1000))
        self.p_tensor.copy_(torch.where(seen, (self.p_tensor + adjust).clamp(min=0), self.p_tensor))
        return True

    def state_dict(self) -> dict[str, Any]:
        stats = self.stats.tolist()
        return {"p": self.p, "sign_sum": stats[0], "count": stats[1], "rt": self.rt, "mode": self.cfg.mode}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        p = 0.0 if self.cfg.mode == "noaug" else float(state["p"])
        if self.cfg.mode == "fixed":
            p = float(self.cfg.p)
        self.p_tensor.fill_(p)
        self.stats[0] = float(state.get("sign_sum", 0.0))
        self.stats[1] = float(state.get("count", 0.0))
        rt = state.get("rt")
        self.rt_tensor.fill_(float(rt) if rt is not None else float("nan"))
