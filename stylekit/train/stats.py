"""Training statistics that stay on the device between log boundaries (the GPU discipline of NVlabs'
loop: no value comes back to Python inside a training step)."""

from __future__ import annotations

import torch

from stylekit.train.distributed import DistInfo, all_reduce_mean


class RunningMeans:
    """Sums of training statistics between two reads (a tick, a log interval, an epoch), kept on the device.

    `add` never reads a value back to Python; `means` all-reduces the means over the processes with
    one collective and reads them once (every process must add the same names). A nan/inf added
    anywhere since the last read shows in its mean, so one finite check per read covers every step.
    """

    def __init__(self, device: torch.device) -> None:
        self.dtype = torch.float32 if device.type == "mps" else torch.float64
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}

    def add(self, name: str, value: torch.Tensor) -> None:
        value = value.detach().to(self.dtype, copy=True)
        self.sums[name] = self.sums[name] + value if name in self.sums else value
        self.counts[name] = self.counts.get(name, 0) + 1

    def means(self, dist: DistInfo) -> dict[str, float]:
        keys = sorted(self.sums)
        if not keys:
            return {}
        local = torch.stack([self.sums[k] / self.counts[k] for k in keys])
        values = all_reduce_mean(local, dist).tolist()  # the one read of device values
        self.sums.clear()
        self.counts.clear()
        return dict(zip(keys, values, strict=True))
