"""torchrun / DDP plumbing: process-group set-up, rank info, collectives and a resumable sharded loader.

The same command line runs alone or under `torchrun --nproc_per_node N -m stylekit ...`: torchrun sets
RANK, LOCAL_RANK and WORLD_SIZE; `init_distributed` reads them, starts the process group (NCCL on
CUDA, gloo on CPU) and pins each rank to GPU LOCAL_RANK. Without torchrun everything here degrades to
single-process no-ops, so trainers need no `if distributed:` branches.

Data order: `make_loader` shards one seeded permutation per epoch over the ranks (like
DistributedSampler), so N processes with a per-rank batch B/N see exactly the global batches that one
process with batch B sees, and `set_epoch(epoch, start_batch)` resumes in the middle of an epoch.
"""

from __future__ import annotations

import datetime
import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as tdist
from torch.utils.data import DataLoader, Dataset, Sampler

from stylekit.device import resolve_device
from stylekit.errors import BadInput

WAIT_TIMEOUT_S = 6 * 3600.0  # the control group's timeout: how long ranks may wait for rank 0's own work


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job. `world_size == 1` means no process group."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    control_group: Any = field(default=None, repr=False, compare=False)

    @property
    def is_main(self) -> bool:
        """Only the main rank writes files and prints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError:
        raise BadInput(f"environment variable {name}={value!r} is not an integer", hint="launch with torchrun") from None


def gloo_interface(world: int, local_world: int) -> None:
    """Make sure gloo (the control group on GPU jobs, everything on CPU jobs) can reach other nodes.

    gloo listens on the address this host's name resolves to; on many distributions that is
    127.0.1.1 (an /etc/hosts line), so across nodes it would wait for connections that can never
    come until the timeout. On a multi-node job without GLOO_SOCKET_IFNAME: NCCL_SOCKET_IFNAME, when
    set to plain interface names, is taken for gloo too; otherwise a loopback host address is refused.
    """
    if world <= local_world or os.environ.get("GLOO_SOCKET_IFNAME"):
        return
    nccl = os.environ.get("NCCL_SOCKET_IFNAME", "")
    if nccl and not nccl.startswith(("^", "=")):
        os.environ["GLOO_SOCKET_IFNAME"] = nccl
        return
    import socket

    host = socket.gethostname()
    try:
        address = socket.gethostbyname(host)
    except OSError:
        address = ""
    if address.startswith("127.") or not address:
        raise BadInput(
            f"a job across nodes, but this host's name {host!r} resolves to {address or 'nothing'}: "
            "gloo would listen where the other nodes cannot reach it",
            hint="set GLOO_SOCKET_IFNAME (and NCCL_SOCKET_IFNAME) to the network interface between the nodes, e.g. eth0",
        )


def init_distributed(device_spec: str = "auto", timeout_s: float = 1800.0) -> DistInfo:
    """Read torchrun's environment, start the process group if WORLD_SIZE > 1, return this rank's DistInfo.

    'auto'/'cuda' under torchrun give each rank GPU LOCAL_RANK; a fixed 'cuda:N' is refused there (all
    ranks would share one GPU).
    """
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    if world > 1 and (device_spec or "").strip().lower().startswith("cuda:"):
        raise BadInput(
            f"--device {device_spec} under torchrun would put all {world} processes on one GPU",
            hint="use --device cuda (or auto): each process takes GPU LOCAL_RANK",
        )
    device = resolve_device(device_spec)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world == 1:
        return DistInfo(0, 0, 1, device)
    gloo_interface(world, _env_int("LOCAL_WORLD_SIZE", world))
    backend = "nccl" if device.type == "cuda" else "gloo"
    wait = datetime.timedelta(seconds=max(timeout_s, WAIT_TIMEOUT_S))
    if not tdist.is_initialized():
        # On CPU (gloo) the default group carries the control messages too, with the long timeout.
        kwargs: dict[str, Any] = {"backend": backend, "timeout": datetime.timedelta(seconds=timeout_s) if backend == "nccl" else wait}
        if device.type == "cuda":
            kwargs["device_id"] = device
        tdist.init_process_group(**kwargs)
    # Small control messages (stop flags, RNG states, checkpoint names) and waits for rank 0 (snapshot
    # metrics: a first FID run pushes the whole data set through Inception) go over a gloo group on
    # the CPU: they never stall the GPU stream, and its long timeout lets rank-0-only work outlast
    # the default group's (which still catches a hung GPU collective).
    # On CPU the default group is gloo already: no second group (a process running several jobs would
    # re-create it under a reused name, whose stale rendezvous keys can hang its creation).
    control = tdist.new_group(backend="gloo", timeout=wait) if backend != "gloo" else None
    return DistInfo(rank, local_rank, world, device, control)


def shutdown(dist: DistInfo | None = None, *, clean: bool = True) -> None:
    """Tear down the process groups (safe to call when none was started).

    On a clean end every rank first meets in a barrier on the default group (so no rank closes its
    connections while a peer still has a collective in flight: the cause of a SIGABRT "terminate
    called without an active exception" at exit), the GPU stream is drained, then the control group
    and the default group are destroyed, in that order. After an error (`clean=False`) the barrier is
    skipped: a peer may never reach it.
    """
    if not (tdist.is_available() and tdist.is_initialized()):
        return
    device = dist.device if dist is not None else torch.device("cpu")
    if clean:
        if device.type == "cuda":
            tdist.barrier(device_ids=[device.index])
            torch.cuda.synchronize(device)
        else:
            tdist.barrier()
    if dist is not None and dist.control_group is not None:
        tdist.destroy_process_group(dist.control_group)
    tdist.destroy_process_group()


@contextmanager
def distributed_job(device_spec: str = "auto", timeout_s: float = 1800.0) -> Iterator[DistInfo]:
    """`init_distributed` ... `shutdown` around a job: clean teardown on success and on a stop every rank
    agreed on (Interrupted), a teardown without barrier after any other error."""
    from stylekit.errors import Interrupted

    dist = init_distributed(device_spec, timeout_s)
    try:
        yield dist
    except Interrupted:
        shutdown(dist)
        raise
    except BaseException:
        shutdown(dist, clean=False)
        raise
    shutdown(dist)


def _active(dist: DistInfo | None) -> bool:
    return tdist.is_available() and tdist.is_initialized() and (dist is None or dist.world_size > 1)


def unwrap(module: torch.nn.Module) -> torch.nn.Module:
    """The plain module inside a DDP wrapper and/or torch.compile (what checkpoints and EMA use)."""
    while True:
        if isinstance(module, torch.nn.parallel.DistributedDataParallel):
            module = module.module
        elif hasattr(module, "_orig_mod") and isinstance(module._orig_mod, torch.nn.Module):
            module = module._orig_mod
        else:
            return module


def wrap_ddp(module: torch.nn.Module, dist: DistInfo, **ddp_kwargs: Any) -> torch.nn.Module:
    """DistributedDataParallel over `module` when distributed, else `module` itself.

    Any option set may leave a trainable parameter without a gradient (a loss weighted 0, a head
    another loss does not use); plain DDP then waits for it and fails at the next step. The rule for
    every trainer, instead of a case-by-case `0 * unused.sum()`: DDP searches the autograd graph
    after each forward for the parameters the loss cannot reach (`find_unused_parameters`), a
    host-side walk of the graph that queues no device work and reads nothing back.
    """
    if not dist.distributed:
        return module
    ddp_kwargs.setdefault("find_unused_parameters", True)
    if dist.device.type == "cuda":
        ddp_kwargs.setdefault("device_ids", [dist.device.index])
    return torch.nn.parallel.DistributedDataParallel(module, **ddp_kwargs)


def group_device(dist: DistInfo | None = None, group: Any = None) -> torch.device:
    """The device a collective on `group` (None: the default group) needs: this rank's GPU under NCCL,
    the CPU under gloo."""
    if tdist.get_backend(group) == "nccl":
        if dist is not None and dist.device.type == "cuda":
            return dist.device
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_mean(tensor: torch.Tensor, dist: DistInfo | None = None) -> torch.Tensor:
    """Mean over ranks of a detached copy of a tensor, on the tensor's own device (a copy also when not
    distributed, so the caller may reset its tensor). The copy travels to the group's device first (NCCL takes no CPU tensor, gloo
    here takes CPU ones), so a caller cannot hand a collective a tensor on the wrong device."""
    if not _active(dist):
        return tensor.detach().clone()
    out = tensor.detach().to(group_device(dist), copy=True)
    tdist.all_reduce(out, op=tdist.ReduceOp.SUM)
    out /= tdist.get_world_size()
    return out.to(tensor.device)


def all_reduce_mean_(tensors: list[torch.Tensor], dist: DistInfo | None = None) -> None:
    """Average `tensors` over ranks in place with ONE collective (flattened on the group's device)."""
    tensors = [t for t in tensors if t is not None]
    if not _active(dist) or not tensors:
        return
    device = group_device(dist)
    flat = torch.cat([t.detach().reshape(-1).to(device, tensors[0].dtype) for t in tensors])
    tdist.all_reduce(flat, op=tdist.ReduceOp.SUM)
    flat /= tdist.get_world_size()
    offset = 0
    for t in tensors:
        t.copy_(flat[offset : offset + t.numel()].view_as(t))
        offset += t.numel()


def all_gather_tensors(tensor: torch.Tensor, dist: DistInfo, grad: bool = False) -> torch.Tensor:
    """Every rank's `tensor` (same shape on all ranks) concatenated in rank order on dim 0, on the
    tensor's device. `grad=True` keeps the autograd graph (gradients flow back to each rank's part)."""
    if not _active(dist):
        return tensor
    device = group_device(dist)
    local = tensor.to(device)
    if grad:
        from torch.distributed.nn.functional import all_gather

        # The group is passed explicitly: the function's default is bound when torch imports it, and
        # would name a destroyed group in a process that runs a second job.
        parts = all_gather(local, group=tdist.group.WORLD)
    else:
        parts = [torch.empty_like(local) for _ in range(dist.world_size)]
        tdist.all_gather(parts, local.contiguous())
    return torch.cat(parts).to(tensor.device)


def any_rank(flag: bool, dist: DistInfo) -> bool:
    """True on every rank when `flag` is true on at least one (a CPU all-reduce on the control group:
    a host-side message that never waits for the GPU stream)."""
    if not _active(dist):
        return flag
    t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=group_device(dist, dist.control_group))
    tdist.all_reduce(t, op=tdist.ReduceOp.MAX, group=dist.control_group)
    return bool(t.item())


def barrier(dist: DistInfo | None = None) -> None:
    """Wait for every rank (no-op alone)."""
    if _active(dist):
        tdist.barrier(group=dist.control_group if dist is not None else None)


def broadcast_object(obj: Any, dist: DistInfo, src: int = 0) -> Any:
    """`obj` from rank `src` on every rank (small picklable objects from our own processes only)."""
    if not _active(dist):
        return obj
    box = [obj]
    tdist.broadcast_object_list(box, src=src, group=dist.control_group)
    return box[0]


def all_gather_object(obj: Any, dist: DistInfo) -> list[Any]:
    """Every rank's `obj`, in rank order, on every rank."""
    if not _active(dist):
        return [obj]
    out: list[Any] = [None] * dist.world_size
    tdist.all_gather_object(out, obj, group=dist.control_group)
    return out


@torch.no_grad()
def broadcast_module(module: torch.nn.Module, dist: DistInfo, src: int = 0) -> None:
    """Copy parameters and buffers of rank `src` to every rank (e.g. an EMA copy made before DDP)."""
    if not _active(dist):
        return
    device = group_device(dist)
    for tensor in list(module.parameters()) + list(module.buffers()):
        if tensor.device == device:
            tdist.broadcast(tensor.data, src=src)
        else:
            moved = tensor.data.to(device)
            tdist.broadcast(moved, src=src)
            tensor.data.copy_(moved)


class ShardSampler(Sampler[int]):
    """One seeded permutation per epoch, padded (or cut) to a multiple of world_size, this rank's share.

    Same index order as torch's DistributedSampler; `set_epoch(epoch, start)` also skips the first
    `start` indices of this rank's share (resuming in the middle of an epoch).
    """

    def __init__(self, size: int, rank: int = 0, world_size: int = 1, shuffle: bool = True, seed: int = 0, drop_last: bool = True) -> None:
        self.size = size
        self.rank = rank
        self.world_size = world_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.epoch = 0
        self.start = 0
        if drop_last:
            self.per_rank = size // world_size
        else:
            self.per_rank = -(-size // world_size)

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch = epoch
        self.start = start

    def indices(self) -> list[int]:
        """This rank's full share for the current epoch."""
        if self.shuffle:
            g = torch.Generator(device="cpu").manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.size, generator=g, device="cpu").tolist()
        else:
            order = list(range(self.size))
        total = self.per_rank * self.world_size
        if total > len(order) and order:
            order = (order * (total // len(order) + 1))[:total]
        order = order[:total]
        return order[self.rank : total : self.world_size]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices()[self.start :])

    def __len__(self) -> int:
        return max(self.per_rank - self.start, 0)


class _WorkerInit:
    """Loader workers ignore SIGINT: Ctrl-C reaches the whole process group, and the main process must
    be the one that saves and exits (a dead worker would turn that into a crash)."""

    def __init__(self, user_fn: Callable[[int], None] | None) -> None:
        self.user_fn = user_fn

    def __call__(self, worker_id: int) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if self.user_fn is not None:
            self.user_fn(worker_id)


class EpochLoader(DataLoader):
    """A DataLoader over this rank's shard with resumable epochs. Build it with `make_loader`."""

    def __init__(self, dataset: Dataset, sampler: ShardSampler, batch_size: int, seed: int, **kwargs: Any) -> None:
        kwargs["worker_init_fn"] = _WorkerInit(kwargs.get("worker_init_fn"))
        super().__init__(dataset, batch_size=batch_size, sampler=sampler, generator=torch.Generator(device="cpu"), **kwargs)
        self.shard = sampler
        self.seed = seed
        self.steps_per_epoch = sampler.per_rank // batch_size if self.drop_last else -(-sampler.per_rank // batch_size)

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Order for `epoch`, skipping the first `start_batch` batches (already trained before a resume).

        Also reseeds the loader's own generator, so worker seeds depend on (seed, epoch) only and the
        global RNG (restored on resume) is never consumed by the loader.
        """
        self.shard.set_epoch(epoch, start_batch * self.batch_size)
        self.generator.manual_seed((self.seed * 1_000_003 + epoch) % (2**63))

    def batches(self, epoch: int = 0, start_batch: int = 0, count: int | None = None) -> Iterator[tuple[int, int, Any]]:
        """(epoch, batch_index, batch) epoch after epoch from (epoch, start_batch), `count` batches in all
        (None: without end). Bounding by `count` rather than breaking out of the loop keeps the loop's
        own epoch/batch counters on the last batch trained, and loads no batch that is not used.
        """
        done = 0
        while count is None or done < count:
            self.set_epoch(epoch, start_batch)
            for i, batch in enumerate(self, start=start_batch):
                yield epoch, i, batch
                done += 1
                if count is not None and done >= count:
                    return
            epoch, start_batch = epoch + 1, 0


def make_loader(
    dataset: Dataset,
    dist: DistInfo,
    batch_size: int,
    *,
    shuffle: bool = True,
    seed: int = 0,
    drop_last: bool = True,
    num_workers: int = 0,
    **loader_kwargs: Any,
) -> EpochLoader:
    """A loader of this rank's share of each global batch of `batch_size` items.

    `batch_size` is the global batch (the --batch option); every rank loads batch_size / world_size.
    Call `loader.set_epoch(epoch, start_batch)` before each epoch, or iterate `loader.batches(...)`.
    """
    if batch_size < 1 or batch_size % dist.world_size:
        raise BadInput(
            f"--batch {batch_size} cannot be split over {dist.world_size} processes",
            hint=f"use a multiple of {dist.world_size}",
        )
    per_rank = batch_size // dist.world_size
    size = len(dataset)  # type: ignore[arg-type]
    if drop_last and size < batch_size:
        raise BadInput(f"the data set has {size} items, fewer than one batch of {batch_size}", hint="lower --batch or add data")
    sampler = ShardSampler(size, dist.rank, dist.world_size, shuffle=shuffle, seed=seed, drop_last=drop_last)
    return EpochLoader(dataset, sampler, per_rank, seed, num_workers=num_workers, drop_last=drop_last, **loader_kwargs)


# ----------------------------------------------------------------------------------- reading commands
# score, stats, similar, classify, generate, invert and transfer split their images or seeds over the
# ranks: rank r takes one contiguous block (`shard`), so concatenating the blocks in rank order gives
# back the one-process order. Results travel over the control group (gloo, CPU) as host arrays and
# objects: these commands gather features once per phase, not once per step.


def shard(n: int, dist: DistInfo | None) -> range:
    """This rank's contiguous block of `range(n)`: block sizes differ by at most one, rank order is index order."""
    if dist is None or not dist.distributed:
        return range(n)
    return range(n * dist.rank // dist.world_size, n * (dist.rank + 1) // dist.world_size)


def gather_lists(items: list[Any], dist: DistInfo | None) -> list[Any]:
    """Every rank's list (small picklable objects from our own processes), concatenated in rank order, on every rank."""
    if dist is None or not _active(dist):
        return list(items)
    return [x for part in all_gather_object(items, dist) for x in part]


def gather_rows(rows: Any, dist: DistInfo | None) -> Any:
    """Every rank's [n_r, ...] numpy array concatenated in rank order on every rank (the row counts may differ).

    The rows go as CPU tensors over the control group (gloo), padded to the longest block: one
    collective for the sizes and one for the data, never a pickle of a large array.
    """
    import numpy as np

    if dist is None or not _active(dist):
        return rows
    array = np.ascontiguousarray(rows)
    counts = all_gather_object(int(array.shape[0]), dist)
    longest = max(counts)
    padded = torch.zeros((longest, *array.shape[1:]), dtype=torch.from_numpy(array[:0]).dtype, device="cpu")
    padded[: array.shape[0]] = torch.from_numpy(array)
    parts = [torch.empty_like(padded) for _ in range(dist.world_size)]
    tdist.all_gather(parts, padded, group=dist.control_group)
    return np.concatenate([p[:c].numpy() for p, c in zip(parts, counts, strict=True)])


def broadcast_rows(rows: Any, dist: DistInfo | None, src: int = 0) -> Any:
    """Rank `src`'s numpy array on every rank (the other ranks pass None): shape and dtype as an object,
    the data as one CPU tensor over the control group."""
    import numpy as np

    if dist is None or not _active(dist):
        return rows
    meta = broadcast_object(None if dist.rank != src else (tuple(rows.shape), str(rows.dtype)), dist, src)
    shape, dtype = meta
    buffer = torch.from_numpy(np.ascontiguousarray(rows)) if dist.rank == src else torch.from_numpy(np.empty(shape, dtype))
    tdist.broadcast(buffer, src=src, group=dist.control_group)
    return buffer.numpy()


def agree(work: Callable[[], Any], dist: DistInfo | None) -> Any:
    """Run `work()` on this rank; if it raised on any rank, every rank raises (none is left waiting in a
    later collective): the failing rank its own exception, the others `FailedOnAnotherRank` with that
    rank's message, hint and exit code. Call it around a rank's share of work before the results are gathered."""
    from stylekit.errors import FailedOnAnotherRank, StylekitError

    if dist is None or not _active(dist):
        return work()
    error: BaseException | None = None
    result = None
    try:
        result = work()
    except Exception as exc:  # noqa: BLE001 - every error is agreed on, then re-raised unchanged on its own rank
        error = exc
    summary = None
    if error is not None:
        code = error.exit_code if isinstance(error, StylekitError) else 1
        hint = error.hint if isinstance(error, StylekitError) else None
        message = error.message if isinstance(error, StylekitError) else f"{type(error).__name__}: {error}"
        summary = (dist.rank, message, hint, code)
    first = next((s for s in all_gather_object(summary, dist) if s is not None), None)
    if error is not None:
        raise error
    if first is not None:
        rank, message, hint, code = first
        raise FailedOnAnotherRank(rank, message, hint, code)
    return result
