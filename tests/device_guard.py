"""Run stylekit commands in a mode where a tensor stylekit creates without naming its device is unusable.

    python tests/device_guard.py JOBS.json REPORT.json
    torchrun --standalone --nproc_per_node 2 tests/device_guard.py JOBS.json REPORT.json

JOBS.json is a list of stylekit argument lists; every job runs in this process (CliRunner), and rank 0
writes REPORT.json: [{"argv", "exit_code", "output", "error"}, ...].

While the jobs run, every tensor constructor (torch.zeros, torch.tensor, torch.randn, ...) called from
stylekit's own code without `device=` creates its tensor on the `meta` device, which holds no data:
reading it, mixing it with the run's tensors or handing it to a collective fails. On a GPU such a
tensor would silently be a CPU tensor, and CUDA ops or NCCL would reject it (issue 12, item 1).
Left alone: constructors in torch and other libraries, and those inside an nn.Module's `__init__`
(parameters and buffers are built on the CPU and moved with the module by `.to(device)`).
"""

from __future__ import annotations

import faulthandler
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._device import _device_constructors

import stylekit

PACKAGE = str(Path(stylekit.__file__).resolve().parent) + os.sep


def _unplaced(frame: Any) -> bool:
    """The constructor was called from stylekit code outside a module's __init__."""
    if not frame.f_code.co_filename.startswith(PACKAGE):
        return False
    return not (frame.f_code.co_name == "__init__" and isinstance(frame.f_locals.get("self"), torch.nn.Module))


class StrayTensorsOnMeta(TorchFunctionMode):
    """Constructors without a device, called from stylekit, build meta tensors (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.constructors = _device_constructors()
        self.caught: dict[str, int] = {}

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if func in self.constructors and kwargs.get("device") is None:
            frame = sys._getframe(1)
            if _unplaced(frame):
                where = f"{Path(frame.f_code.co_filename).name}:{frame.f_lineno}"
                self.caught[where] = self.caught.get(where, 0) + 1
                kwargs = {**kwargs, "device": "meta"}
        return func(*args, **kwargs)


def run_jobs(jobs: list[list[str]]) -> list[dict[str, Any]]:
    from typer.testing import CliRunner

    from stylekit.cli.app import app

    report = []
    mode = StrayTensorsOnMeta()
    with mode:
        for argv in jobs:
            result = CliRunner().invoke(app, argv)
            error = "".join(traceback.format_exception(*result.exc_info)) if result.exc_info and result.exit_code else ""
            report.append({"argv": argv, "exit_code": result.exit_code, "output": result.output[-3000:], "error": error[-3000:],
                           "unplaced": dict(mode.caught)})
            mode.caught.clear()
    return report


def main(argv: list[str]) -> int:
    jobs_file, report_file = argv
    faulthandler.dump_traceback_later(float(os.environ.get("DEVICE_GUARD_TIMEOUT", "600")), exit=True)  # a hang: stacks, exit
    os.environ.setdefault("STYLEKIT_DEBUG", "1")  # the failing line in the report, not a one-line error
    report = run_jobs(json.loads(Path(jobs_file).read_text()))
    if os.environ.get("RANK", "0") == "0":
        Path(report_file).write_text(json.dumps(report, indent=1))
    return 0 if all(r["exit_code"] == 0 for r in report) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
