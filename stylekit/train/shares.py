"""The torchrun pattern of the commands that write one output per item (generate, invert, transfer).

Every rank runs the same checks; rank 0 alone locks --out and applies the rerun rule (`on_main`: an error
there, Busy included, ends every rank with its exit code); then each rank takes its contiguous block of
the items left to do and writes those outputs itself (`run_share`), and rank 0 writes what combines them
from gathered data. In one process both helpers simply call their work.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from stylekit.train.distributed import DistInfo, agree, gather_lists, shard

T = TypeVar("T")


def on_main(work: Callable[[], T], dist: DistInfo) -> T | None:
    """`work()` on rank 0 only, agreed by every rank: rank 0's value there, None on the others."""
    return agree(lambda: work() if dist.is_main else None, dist)


def run_share(count: int, work: Callable[[range], T], dist: DistInfo) -> tuple[T, list[int]]:
    """`work(block)` for this rank's block of `range(count)`, agreed (a failure on one rank ends every rank);
    returns this rank's result and every rank's block size in rank order ([] in one process)."""
    block = shard(count, dist)
    result = agree(lambda: work(block), dist)
    return result, gather_lists([len(block)], dist) if dist.distributed else []
