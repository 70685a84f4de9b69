"""Count reads of tensor values into Python made by stylekit code, step by step (the host-sync budget).

On a GPU each such read (`.item()`, `float(t)`, `bool(t)`, `int(t)`, `.tolist()`, `.numpy()`, `.cpu()`,
and ops whose output size depends on values: boolean-mask indexing, `nonzero`, `unique`, `masked_select`)
waits for every queued kernel: NVlabs' loop makes none inside a training step. `HostReads` patches
those tensor methods while active and counts the calls whose caller is stylekit code (torch's own
internals, e.g. Adam reading its CPU step counter, are not device reads), outside stylekit/data/: the
data pipeline decodes and augments host tensors, in loader worker processes on GPU runs. Training steps are marked
by a global optimizer-step hook: the steps of the first optimizer that steps delimit the intervals,
so `intervals()` is the number of reads between one step and the next (log, tick and checkpoint
boundaries fall into the interval of the step they follow).
"""

from __future__ import annotations

import collections
import os
import sys
from pathlib import Path
from typing import Any

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

import stylekit

PACKAGE = str(Path(stylekit.__file__).resolve().parent) + os.sep
DATA = PACKAGE + "data" + os.sep
READS = ("item", "tolist", "numpy", "cpu", "__float__", "__int__", "__bool__")
# Ops whose output size depends on the values: the host waits for the device to learn it.
SIZED = ("nonzero", "unique", "masked_select")


def _bool_index(index: Any) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return any(isinstance(p, torch.Tensor) and p.dtype == torch.bool for p in parts)


class HostReads:
    def __init__(self) -> None:
        self.total = 0
        self.sites: collections.Counter[str] = collections.Counter()
        self.marks: list[int] = []  # self.total at each step of the first optimizer
        self._first: int | None = None
        self._saved: dict[str, Any] = {}
        self._hook: Any = None

    def _count(self, name: str) -> None:
        frame = sys._getframe(2)
        where = frame.f_code.co_filename
        if where.startswith(PACKAGE) and not where.startswith(DATA):
            self.total += 1
            self.sites[f"{Path(frame.f_code.co_filename).name}:{frame.f_lineno} {name}"] += 1

    def _patched(self, name: str, original: Any) -> Any:
        def read(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            self._count(name)
            return original(tensor, *args, **kwargs)

        return read

    def _patched_index(self, original: Any) -> Any:
        def index(tensor: torch.Tensor, key: Any) -> Any:
            if _bool_index(key):
                self._count("[bool mask]")
            return original(tensor, key)

        return index

    def _on_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        if self._first is None:
            self._first = id(optimizer)
        if id(optimizer) == self._first:
            self.marks.append(self.total)

    def __enter__(self) -> HostReads:
        for name in (*READS, *SIZED):
            self._saved[name] = getattr(torch.Tensor, name)
            setattr(torch.Tensor, name, self._patched(name, self._saved[name]))
        for name in SIZED:
            self._saved[f"torch.{name}"] = getattr(torch, name)
            setattr(torch, name, self._patched(name, self._saved[f"torch.{name}"]))
        self._saved["__getitem__"] = torch.Tensor.__getitem__
        torch.Tensor.__getitem__ = self._patched_index(self._saved["__getitem__"])
        self._hook = register_optimizer_step_post_hook(self._on_step)
        return self

    def __exit__(self, *exc: object) -> None:
        for name, original in self._saved.items():
            if name.startswith("torch."):
                setattr(torch, name[len("torch."):], original)
            else:
                setattr(torch.Tensor, name, original)
        self._hook.remove()

    def intervals(self) -> list[int]:
        """Reads between consecutive steps of the first optimizer (one entry per step after the first)."""
        return [b - a for a, b in zip(self.marks, self.marks[1:], strict=False)]
