"""Run stylekit commands in a mode where a tensor stylekit creates without naming its device is unusable.

    python tests/device_guard.py JOBS.json REPORT.json
    torchrun --standalone --nproc_per_node 2 tests/device_guard.py JOBS.json REPORT.json

JOBS.json is a list of stylekit argument lists; every job runs in this process (CliRunner), and rank 0
writes REPORT.json: [{"argv", "exit_code", "stdout", "output", "error"}, ...]. DEVICE_GUARD_SETUP=module:function
names a function (importable from tests/) every process calls before the jobs, e.g. one that puts tiny
feature models in stylekit.metrics.score.EXTRACTORS, the table tests replace entries of. Tests launch it with
`run_guarded` (which the DDP equivalence tests use for their torchrun runs too, so one torchrun job
proves both the equivalence and the device discipline of a trainer under DDP).

While the jobs run, every tensor constructor (torch.zeros, torch.tensor, torch.randn, ...) called from
stylekit's own code without `device=` creates its tensor on the `meta` device, which holds no data:
reading it, mixing it with the run's tensors or handing it to a collective fails. On a GPU such a
tensor would silently be a CPU tensor, and CUDA ops or NCCL would reject it (issue 12, item 1).
Left alone: constructors in torch and other libraries, and those inside an nn.Module's `__init__`
(parameters and buffers are built on the CPU and moved with the module by `.to(device)`).
"""

from __future__ import annotations

import contextlib
import faulthandler
import gc
import json
import os
import subprocess
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
            while frame.f_code.co_name == "__torch_function__" and frame.f_back is not None:
                frame = frame.f_back  # another mode forwarding the call (io/limits.py's allocation budget): look past it
            if _unplaced(frame):
                where = f"{Path(frame.f_code.co_filename).name}:{frame.f_lineno}"
                self.caught[where] = self.caught.get(where, 0) + 1
                kwargs = {**kwargs, "device": "meta"}
        return func(*args, **kwargs)


@contextlib.contextmanager
def one_process_group() -> Any:
    """Under torchrun, every job of this process shares one default process group: a job's clean teardown
    keeps it, and it is destroyed once at the end. torch cannot re-create the default group in one
    process reliably (the second group's rendezvous reuses the first one's store keys, and its gloo
    connect can hang), while users run one command per launch; so the harness, not stylekit, reuses it."""
    import torch.distributed as tdist

    destroy = tdist.destroy_process_group

    def keep_default(group: Any = None) -> None:
        if group is not None and group is not tdist.GroupMember.WORLD:
            destroy(group)

    tdist.destroy_process_group = keep_default
    try:
        yield
    finally:
        tdist.destroy_process_group = destroy
        # A job's networks (a DDP reducer holds the group) must be freed before the group is destroyed: a
        # group that outlives destroy_process_group is torn down at interpreter exit, where gloo's threads
        # abort the process ("terminate called without an active exception", SIGABRT about one run in six).
        gc.collect()
        if tdist.is_initialized():
            destroy()


def _job_report(result: Any, argv: list[str], caught: dict[str, int]) -> dict[str, Any]:
    """What the report keeps of a job: text only, so the job's frames (its networks) are not kept alive."""
    error = "".join(traceback.format_exception(*result.exc_info)) if result.exc_info and result.exit_code else ""
    return {"argv": argv, "exit_code": result.exit_code, "stdout": result.stdout, "output": result.output[-3000:],
            "error": error[-3000:], "unplaced": dict(caught)}


def run_jobs(jobs: list[list[str]]) -> list[dict[str, Any]]:
    from typer.testing import CliRunner

    from stylekit.cli.app import app

    report = []
    mode = StrayTensorsOnMeta()
    with mode, one_process_group():
        for argv in jobs:
            report.append(_job_report(CliRunner().invoke(app, argv), argv, mode.caught))
            mode.caught.clear()
    return report


def guard_env() -> dict[str, str]:
    """The environment of a guarded launch: no inherited torchrun variables, one thread, this folder importable."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE")}
    env.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parent), *sys.path]))
    return env


def run_guarded(tmp_path: Path, jobs: list[list[str]], nproc: int = 1, timeout_s: float = 600, setup: str | None = None,
                check: bool = True) -> list[dict[str, Any]]:
    """Run `jobs` guarded in one process (nproc 1) or under `torchrun --nproc_per_node nproc`; every job
    must exit 0 (unless `check` is False: a test of failing jobs reads their exit codes) with no device-less
    tensor in use. `setup`: "module:function" called in every process first. Returns rank 0's report. A launch
    still running after `timeout_s` (a rank stuck in a collective) dumps its stacks and fails instead of hanging the suite."""
    name = f"{nproc}-{jobs[0][0]}"
    jobs_file, report = tmp_path / f"jobs-{name}.json", tmp_path / f"report-{name}.json"
    jobs_file.write_text(json.dumps(jobs))
    torchrun = Path(sys.executable).parent / "torchrun"
    launch = [sys.executable] if nproc == 1 else [str(torchrun), "--standalone", "--nproc_per_node", str(nproc)]
    env = guard_env() | {"DEVICE_GUARD_TIMEOUT": str(timeout_s)} | ({"DEVICE_GUARD_SETUP": setup} if setup else {})
    proc = subprocess.run([*launch, str(Path(__file__).resolve()), str(jobs_file), str(report)], env=env, capture_output=True,
                          text=True, timeout=timeout_s + 120)
    assert report.exists(), proc.stderr[-3000:]
    results = json.loads(report.read_text())
    if check:
        for r in results:
            assert r["exit_code"] == 0, (r["argv"][0], r["output"][-1500:], r["error"][-3000:])
        assert proc.returncode == 0, proc.stderr[-3000:]
    return results


def main(argv: list[str]) -> int:
    jobs_file, report_file = argv
    faulthandler.dump_traceback_later(float(os.environ.get("DEVICE_GUARD_TIMEOUT", "600")), exit=True)  # a hang: stacks, exit
    os.environ.setdefault("STYLEKIT_DEBUG", "1")  # the failing line in the report, not a one-line error
    if os.environ.get("DEVICE_GUARD_SETUP"):
        import importlib

        module, function = os.environ["DEVICE_GUARD_SETUP"].split(":")
        getattr(importlib.import_module(module), function)()
    report = run_jobs(json.loads(Path(jobs_file).read_text()))
    if os.environ.get("RANK", "0") == "0":
        Path(report_file).write_text(json.dumps(report, indent=1))
    return 0 if all(r["exit_code"] == 0 for r in report) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
