"""Batch samplers that build one *global* batch per step and hand each rank its interleaved share.

Both samplers are seeded by (seed, epoch) only, so a run on 1 process and on N processes sees the
same global batches in the same order: rank r of N gets rows r, r+N, r+2N, ... of each global batch.
Interleaved, not contiguous: a P x K batch is class-major, so a contiguous slice would give each
rank only P/N classes, and per-GPU BatchNorm statistics (and the per-rank SupCon positives) would
see a few classes only; interleaved, every rank sees every class of the batch.
Call `set_epoch(e)` before iterating each epoch.

`BalancedBatchSampler` draws P classes x K images per batch (class-major), so every batch holds
same-class positives for SupCon; classes are drawn uniformly, so rare styles are seen as often as
common ones. `ShuffledBatchSampler` is the plain shuffled version.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch

from stylekit.errors import BadInput


def _check_world(batch: int, world_size: int, rank: int) -> None:
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"bad rank {rank} / world size {world_size}")
    if batch % world_size:
        raise BadInput(
            f"global batch {batch} is not divisible by the {world_size} processes",
            hint="choose --batch (or --classes-per-batch x --per-class) as a multiple of the process count",
        )


class _EpochSampler:
    def __init__(self, seed: int, world_size: int, rank: int) -> None:
        self.seed = seed
        self.world_size = world_size
        self.rank = rank
        self.epoch = 0
        self.start_batch = 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Select the epoch's batches; `start_batch` skips the first ones (resume mid-epoch)."""
        self.epoch = epoch
        self.start_batch = start_batch

    def _generator(self) -> torch.Generator:
        g = torch.Generator(device="cpu")
        g.manual_seed(self.seed * 1_000_003 + self.epoch)
        return g

    def _share(self, batch: list[int]) -> list[int]:
        return batch[self.rank :: self.world_size]


class ShuffledBatchSampler(_EpochSampler):
    """A seeded permutation cut into global batches of `batch` (the incomplete last batch is dropped)."""

    def __init__(self, n: int, batch: int, seed: int = 0, world_size: int = 1, rank: int = 0) -> None:
        super().__init__(seed, world_size, rank)
        _check_world(batch, world_size, rank)
        if n < batch:
            raise BadInput(f"only {n} training images for a batch of {batch}", hint="lower --batch")
        self.n = n
        self.batch = batch

    def __len__(self) -> int:
        return self.n // self.batch

    def global_batches(self) -> list[list[int]]:
        perm = torch.randperm(self.n, generator=self._generator(), device="cpu").tolist()
        return [perm[i * self.batch : (i + 1) * self.batch] for i in range(len(self))]

    def __iter__(self) -> Iterator[list[int]]:
        for b in self.global_batches()[self.start_batch :]:
            yield self._share(b)


class BalancedBatchSampler(_EpochSampler):
    """P classes x K images per global batch; `len(self)` batches per epoch (default n // (P*K)).

    Each class keeps a shuffled pool that is consumed and reshuffled when empty, so over an epoch
    every image of a class is used before any repeats. A class with fewer than K images repeats
    images inside a batch (their augmentations differ).
    """

    def __init__(
        self,
        labels: Sequence[int],
        classes_per_batch: int,
        per_class: int,
        seed: int = 0,
        world_size: int = 1,
        rank: int = 0,
        batches_per_epoch: int | None = None,
    ) -> None:
        super().__init__(seed, world_size, rank)
        self.labels = list(int(x) for x in labels)
        self.by_class: dict[int, list[int]] = {}
        for i, c in enumerate(self.labels):
            self.by_class.setdefault(c, []).append(i)
        self.classes = sorted(self.by_class)
        if classes_per_batch < 1 or per_class < 2:
            raise BadInput("the balanced sampler needs --classes-per-batch >= 1 and --per-class >= 2")
        if classes_per_batch > len(self.classes):
            raise BadInput(
                f"--classes-per-batch {classes_per_batch} exceeds the {len(self.classes)} classes in the training split",
                hint=f"use at most {len(self.classes)}",
            )
        self.P = classes_per_batch
        self.K = per_class
        self.batch = self.P * self.K
        _check_world(self.batch, world_size, rank)
        self.batches_per_epoch = batches_per_epoch or max(1, len(self.labels) // self.batch)

    def __len__(self) -> int:
        return self.batches_per_epoch

    def global_batches(self) -> list[list[int]]:
        g = self._generator()
        pools: dict[int, list[int]] = {c: [] for c in self.classes}

        def take(c: int, k: int) -> list[int]:
            members = self.by_class[c]
            out: list[int] = []
            while len(out) < k:
                if not pools[c]:
                    perm = [members[j] for j in torch.randperm(len(members), generator=g, device="cpu").tolist()]
                    if len(members) >= k:  # images already in this batch go last: no repeats within a batch
                        perm = [i for i in perm if i not in out] + [i for i in perm if i in out]
                    pools[c] = perm
                out.append(pools[c].pop(0))
            return out

        batches = []
        for _ in range(len(self)):
            picked = torch.randperm(len(self.classes), generator=g, device="cpu")[: self.P].tolist()
            batch: list[int] = []
            for ci in picked:
                batch += take(self.classes[ci], self.K)
            batches.append(batch)
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        for b in self.global_batches()[self.start_batch :]:
            yield self._share(b)


def derive_pk(batch: int, num_classes: int, classes_per_batch: int | None, per_class: int | None,
              world_size: int = 1) -> tuple[int, int]:
    """P classes x K images per global batch from --batch and the options given, for `world_size` processes.

    P keeps as many classes as the batch allows (--batch // 4, capped at the class count; fewer only
    where no P*K fits); K grows to fill the batch; the global batch P*K is the largest multiple of the
    process count not above --batch (each rank takes an equal interleaved share), so it lies within
    lcm(P, world size) of --batch. Explicit --classes-per-batch and --per-class are taken as given.
    """
    if classes_per_batch and per_class:
        return classes_per_batch, per_class
    if per_class:
        top = max(1, min(num_classes, batch // per_class))
        fitting = [p for p in range(top, 0, -1) if p * per_class % world_size == 0]
        return (fitting[0] if fitting else top), per_class
    top = classes_per_batch or max(1, min(num_classes, batch // 4))
    for p in [top] if classes_per_batch else range(top, 0, -1):  # fewer classes only when P*K cannot fit
        step = world_size // math.gcd(p, world_size)  # K a multiple of this: P*K % world_size == 0
        k = batch // p // step * step
        if k >= 2:
            return p, k
    step = world_size // math.gcd(top, world_size)  # a batch too small for its process count: the smallest that splits
    return top, step * math.ceil(2 / step)
