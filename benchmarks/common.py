"""Shared harness of the benchmarks: machine facts, the machine's matmul peaks, FLOP counts, interleaved timing.

Every benchmark prints one JSON line per measurement (`emit`). A measurement that knows its FLOPs also
prints the achieved GFLOP/s next to the fp32 and bf16 2048x2048 matmul rates measured in the same
process with the same thread count, so each figure says how far it is from what the CPU can do.
Side-by-side runs (`--reference PATH`) time stylekit and the reference code interleaved, best of N,
on identical inputs and weights (`best_of`). Speeds are reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from stylekit import host_memory
from stylekit.host_memory import keep_freed_host_memory

BF16_FLAGS = ("avx512_bf16", "amx_bf16")
REPORTED_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")


def cpu_flags() -> set[str]:
    """The kernel's CPU flags (Linux /proc/cpuinfo); empty elsewhere."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_model() -> str:
    """lscpu's "Model name" (falls back to platform.processor())."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    for line in out.splitlines():
        if line.strip().startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def native_bf16(device: torch.device | None = None) -> bool:
    """True where bf16 runs natively: AVX512-BF16/AMX on CPU, is_bf16_supported without emulation on CUDA."""
    if device is not None and device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    return bool(cpu_flags() & set(BF16_FLAGS))


def machine() -> dict[str, object]:
    flags = cpu_flags()
    return {
        "cpu": cpu_model(),
        "flags": [f for f in REPORTED_FLAGS if f in flags],
        "native_bf16": native_bf16(),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "host_allocator": "glibc, freed memory kept (stylekit/host_memory.py)" if host_memory.available() else "system default",
    }


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_gflops(dtype: torch.dtype, n: int = 2048, repeats: int = 5, device: torch.device | None = None) -> float:
    """Best-of-`repeats` GFLOP/s of an n x n x n matmul in `dtype` at the current thread count."""
    device = device or torch.device("cpu")
    g = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, generator=g, device=device).to(dtype)
    b = torch.randn(n, n, generator=g, device=device).to(dtype)
    torch.mm(a, b)  # warm-up: oneDNN/BLAS kernel selection
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        torch.mm(a, b)
        sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


class _NoModuleTracking:
    """Stands in for FlopCounterMode's per-module tracker, whose backward hooks break
    torch.autograd.grad(create_graph=True) (R1 / path-length regularisation); only the total is used."""

    parents = ("Global",)

    def __enter__(self) -> _NoModuleTracking:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of one call of `fn` as torch.utils.flop_counter counts them (matmuls and convolutions, fwd+bwd)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    counter.mod_tracker = _NoModuleTracking()
    with counter:
        fn()
    return int(counter.get_total_flops())


def as_reference(fn: Callable[[], object]) -> Callable[[], object]:
    """`fn` run under glibc's default allocator policy, as the reference's own users run it.

    The stylekit CLI keeps freed host memory for reuse (stylekit/host_memory.py) and `start` does the
    same for the whole benchmark process; a reference contender switches back to the default around
    each call. The network benchmarks (stylegan, pix2pix, transfer) also time the reference without
    this wrapper ("same allocator"), so the gain of the code alone is reported next to the gain users see.
    """
    def call() -> object:
        keep_freed_host_memory(False)
        try:
            return fn()
        finally:
            keep_freed_host_memory(True)
    return call


def op_profile(fn: Callable[[], object], top: int = 8) -> dict[str, object]:
    """Where one call of `fn` spends its time: the `top` aten ops by self CPU time with their share,
    and the convolution/matmul share (the FLOP-bound part; the rest is element-wise, copies, optimizer)."""
    from torch.profiler import ProfilerActivity, profile

    fn()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    events = [e for e in prof.key_averages() if e.key.startswith("aten::")]
    total = sum(e.self_cpu_time_total for e in events) or 1
    compute = ("conv", "mm", "addmm", "bmm", "linear")
    heavy = sum(e.self_cpu_time_total for e in events if any(k in e.key for k in compute))
    ranked = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
    return {"compute_ops_share": round(heavy / total, 3),
            "top_ops": [{"op": e.key, "share": round(e.self_cpu_time_total / total, 3), "calls": e.count} for e in ranked]}


def best_of(fns: dict[str, Callable[[], object]], repeats: int, device: torch.device | None = None,
            warmup: int = 1) -> dict[str, float]:
    """Minimum wall seconds per call of each function, the functions interleaved round by round.

    Interleaving spreads any change in the machine's load over every contender instead of favouring
    whichever ran in the quiet moment; the minimum is the least disturbed call.
    """
    device = device or torch.device("cpu")
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    best = {name: float("inf") for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def peak_mem_mb(device: torch.device | None = None) -> float:
    if device is not None and device.type == "cuda":
        return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round(max(own, children) / 1024, 1)


def emit(doc: dict[str, object]) -> None:
    """One JSON line on stdout."""
    print(json.dumps(doc), flush=True)


@dataclass
class Bench:
    """The per-run context: machine facts and peaks (measured once, at the start), and the emitter."""

    name: str
    device: torch.device
    peaks: dict[str, float] = field(default_factory=dict)

    def header(self, args: argparse.Namespace) -> None:
        on_cpu = self.device.type == "cpu"
        self.peaks = {"fp32": round(matmul_gflops(torch.float32, device=self.device), 1),
                      "bf16": round(matmul_gflops(torch.bfloat16, device=self.device), 1)}
        emit({"what": f"{self.name}: machine", "machine": machine(), "device": str(self.device),
              "command": " ".join([Path(sys.executable).name, *sys.argv]),
              "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "matmul_gflops": {"n": 2048, **self.peaks, "threads": torch.get_num_threads() if on_cpu else None},
              "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}})

    def result(self, what: str, config: dict[str, object], seconds: float, *, items: float = 1.0,
               flops: int | None = None, **extra: object) -> dict[str, object]:
        """Emit one measurement: seconds per call, items/s, and achieved GFLOP/s against the peaks."""
        doc: dict[str, object] = {"what": what, "config": config, "seconds": round(seconds, 4),
                                  "throughput": round(items / seconds, 3) if seconds > 0 else None}
        if flops is not None:
            achieved = flops / seconds / 1e9 if seconds > 0 else 0.0
            doc.update(gflop_per_call=round(flops / 1e9, 2), achieved_gflops=round(achieved, 1),
                       peak_fp32_gflops=self.peaks.get("fp32"), peak_bf16_gflops=self.peaks.get("bf16"),
                       fraction_of_fp32_peak=round(achieved / self.peaks["fp32"], 3) if self.peaks.get("fp32") else None)
        doc.update(extra)
        doc["peak_mem_mb"] = peak_mem_mb(self.device)
        emit(doc)
        return doc


def add_args(parser: argparse.ArgumentParser, *, repeats: int, reference: str | None = None, env: str | None = None) -> None:
    """The options every benchmark shares; `reference` names the code `--reference PATH` points at,
    `env` the environment variable that gives its default (`make bench NVLABS=... JUNYANZ=...`)."""
    parser.add_argument("--threads", type=int, default=int(os.environ.get("STYLEKIT_BENCH_THREADS", "0")) or os.cpu_count(),
                        help="torch.set_num_threads for the whole run (peaks included); default: all cores")
    parser.add_argument("--repeats", type=int, default=repeats, help="best of N, interleaved")
    parser.add_argument("--device", default="cpu")
    if reference:
        default = os.environ.get(env) if env else None
        parser.add_argument("--reference", type=Path, default=Path(default) if default else None, metavar="PATH",
                            help=f"local clone of {reference}: time it beside stylekit in the same run"
                                 + (f" (default: ${env})" if env else ""))


def start(name: str, args: argparse.Namespace) -> Bench:
    """Apply the shared options, measure the peaks and print the machine line."""
    torch.set_num_threads(args.threads)
    keep_freed_host_memory(True)  # as `stylekit.cli.app.main` does
    from stylekit.io.console import configure

    configure(quiet=True)
    bench = Bench(name, torch.device(args.device))
    bench.header(args)
    return bench


def reference_path(path: Path) -> Path:
    """Put a reference clone first on sys.path for the rest of the run (one clone per benchmark process)."""
    root = Path(path).expanduser().resolve()
    if not root.is_dir():
        raise SystemExit(f"--reference {path}: not a folder (give a local clone of the reference repository)")
    sys.path.insert(0, str(root))
    return root
