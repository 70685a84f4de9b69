"""Training: the shared runner (DDP, checkpoints, resume, signals, EMA, metrics) and one module per trainer.

Trainers import what they need from here; see docs/training.md for the API and an example loop.
"""

from stylekit.train.distributed import (
    DistInfo,
    EpochLoader,
    all_reduce_mean,
    barrier,
    broadcast_module,
    broadcast_object,
    init_distributed,
    make_loader,
    shutdown,
    unwrap,
    wrap_ddp,
)
from stylekit.train.ema import EMA, ema_beta
from stylekit.train.runner import NonFiniteLoss, TrainRunner, reapply_schedule, seed_everything

__all__ = [
    "EMA",
    "DistInfo",
    "EpochLoader",
    "NonFiniteLoss",
    "TrainRunner",
    "all_reduce_mean",
    "barrier",
    "broadcast_module",
    "broadcast_object",
    "ema_beta",
    "init_distributed",
    "make_loader",
    "reapply_schedule",
    "seed_everything",
    "shutdown",
    "unwrap",
    "wrap_ddp",
]
