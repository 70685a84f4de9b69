"""The torchrun pattern of the commands that write one output per item (generate, invert, transfer).

Every rank runs the same checks; rank 0 alone locks --out and applies the rerun rule (`on_main`: an error
there, Busy included, ends every rank with its exit code); then each rank takes its contiguous block of
the items left to do and writes those outputs itself (`run_share`), and rank 0 writes what combines them
from gathered data. In one process both helpers simply call their work.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from stylekit.io.rundir import DirLock, ensure_writable_dir
from stylekit.train.distributed import DistInfo, agree, gather_lists, shard

if TYPE_CHECKING:
    from stylekit.io.rundir import DirLock

T = TypeVar("T")


def on_main(work: Callable[[], T], dist: DistInfo) -> T | None:
    """`work()` on rank 0 only, agreed by every rank: rank 0's value there, None on the others."""
    return agree(lambda: work() if dist.is_main else None, dist)


def lock_on_main(folder: Path, dist: DistInfo, then: Callable[[], None] | None = None) -> DirLock | None:
    """Rank 0 creates and locks `folder` (after every argument check: a refused run leaves no folder), then runs
    `then` under the lock; returns its lock there, None on the other ranks (Busy on rank 0 ends every rank with 75)."""

    def take() -> DirLock:
        lock = DirLock(ensure_writable_dir(folder))
        lock.acquire()
        try:
            if then is not None:
                then()
        except BaseException:
            lock.release()
            raise
        return lock

    return on_main(take, dist)


def run_share(count: int, work: Callable[[range], T], dist: DistInfo) -> tuple[T, list[int]]:
    """`work(block)` for this rank's block of `range(count)`, agreed (a failure on one rank ends every rank);
    returns this rank's result and every rank's block size in rank order ([] in one process)."""
    block = shard(count, dist)
    result = agree(lambda: work(block), dist)
    return result, gather_lists([len(block)], dist) if dist.distributed else []
