"""BatchNorm over the global batch of every process, with no device-to-host read.

torch's SyncBatchNorm drops empty ranks' statistics with a boolean mask (`count_all[mask]`): one
host synchronisation per layer per forward, about 25 per pix2pix step with `--norm batch`. Here each
rank's per-channel (mean, biased variance, count) are gathered with gradient and combined on the
device (Chan's parallel formula), so a step only queues work; ranks never have empty batches in the
trainers that use it (equal-size shards). It also runs on gloo, so CPU runs of `--norm batch` under
torchrun train on the global batch like CUDA ones.
"""

from __future__ import annotations

import torch
from torch import nn

from stylekit.train.distributed import DistInfo, all_gather_tensors


class GlobalBatchNorm(nn.BatchNorm2d):
    """A BatchNorm2d whose training statistics (and running-statistics updates) are the global batch's."""

    def __init__(self, source: nn.modules.batchnorm._BatchNorm, dist: DistInfo) -> None:
        super().__init__(source.num_features, source.eps, source.momentum, source.affine, source.track_running_stats)
        self.load_state_dict(source.state_dict())
        self.dist = dist

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and self.dist.distributed):
            return super().forward(x)
        xf = x.float()
        dims = [0, *range(2, x.dim())]
        count = torch.full((x.shape[1],), x.numel() // x.shape[1], dtype=torch.float32, device=x.device)
        local = torch.stack([xf.mean(dims), xf.var(dims, unbiased=False), count])[None]  # [1, 3, C]
        stats = all_gather_tensors(local, self.dist, grad=True)  # [world, 3, C]
        n = stats[:, 2]
        total = n.sum(0)
        mean = (stats[:, 0] * n).sum(0) / total
        var = ((stats[:, 1] + (stats[:, 0] - mean).square()) * n).sum(0) / total
        if self.track_running_stats:
            self._update_running(mean.detach(), var.detach() * total / (total - 1).clamp(min=1))
        shape = (1, -1, *[1] * (x.dim() - 2))
        y = (xf - mean.reshape(shape)) * torch.rsqrt(var.reshape(shape) + self.eps)
        if self.affine:
            y = y * self.weight.reshape(shape) + self.bias.reshape(shape)
        return y.to(x.dtype)

    @torch.no_grad()
    def _update_running(self, mean: torch.Tensor, unbiased_var: torch.Tensor) -> None:
        assert self.num_batches_tracked is not None and self.running_mean is not None and self.running_var is not None
        self.num_batches_tracked.add_(1)
        factor = self.momentum if self.momentum is not None else 1.0 / self.num_batches_tracked.float()
        self.running_mean.lerp_(mean, factor)
        self.running_var.lerp_(unbiased_var, factor)


def global_batchnorm(module: nn.Module, dist: DistInfo) -> nn.Module:
    """`module` with every plain 2d BatchNorm replaced by a GlobalBatchNorm (same parameters and buffers)."""
    if type(module) is nn.BatchNorm2d:
        return GlobalBatchNorm(module, dist)
    for name, child in module.named_children():
        converted = global_batchnorm(child, dist)
        if converted is not child:
            setattr(module, name, converted)
    return module
