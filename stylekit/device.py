"""Device selection, mixed precision and backend policy, shared by every command that runs a network.

One place decides what `--amp` means on a device (`amp_dtype`): bf16 where the hardware executes it
natively (Ampere+ GPUs; CPUs with AVX512-BF16 or AMX), fp16 on older GPUs (which then need a
GradScaler: `needs_grad_scaler`), nothing on a CPU without native bf16 (emulated bf16 is slower than
fp32 and only loses precision). `torch.cuda.is_bf16_supported()` alone also says True on V100/T4
through emulation, so it is always asked with `including_emulation=False`.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from pathlib import Path

import torch

from stylekit.errors import BadInput


def local_cuda_index(local_rank: int) -> int:
    """The GPU of local rank `local_rank`: device LOCAL_RANK, or device 0 where a launcher pins one
    GPU per process (CUDA_VISIBLE_DEVICES naming a single device).

    More processes on a node than visible GPUs is refused on every rank (exit 2), never wrapped
    around with a modulo: two processes on one GPU halve its memory, and NCCL refuses or hangs on
    two ranks sharing a device, far from the launch line that caused it.
    """
    count = torch.cuda.device_count()
    if count == 0:
        return 0
    pinned = count == 1 and len([d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]) == 1
    if pinned:
        return 0
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "0") or 0)
    if local_rank >= count or local_world > count:
        raise BadInput(
            f"{max(local_world, local_rank + 1)} processes on this node but {count} visible CUDA device(s): "
            "processes would share a GPU",
            hint=f"launch with torchrun --nproc_per_node {count} (or fewer), or pin one GPU per process with CUDA_VISIBLE_DEVICES",
        )
    return local_rank


def resolve_device(spec: str = "auto") -> torch.device:
    """'auto' (CUDA when present, else CPU), 'cpu', 'cuda' or 'cuda:N'. Under torchrun, 'auto'/'cuda'
    pick GPU LOCAL_RANK (`local_cuda_index`)."""
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "mps":
        if not torch.backends.mps.is_available():
            raise BadInput("--device mps asked but MPS is not available", hint="use --device cpu")
        return torch.device("mps")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise BadInput(f"--device {spec} asked but CUDA is not available on this machine", hint="use --device cpu or auto")
        if spec == "cuda":
            return torch.device("cuda", local_cuda_index(int(os.environ.get("LOCAL_RANK", "0") or 0)))
        try:
            index = int(spec.split(":", 1)[1])
        except (IndexError, ValueError):
            raise BadInput(f"bad --device '{spec}'", hint="use auto, cpu, cuda or cuda:N") from None
        if index >= torch.cuda.device_count():
            raise BadInput(f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s)", hint="pick an existing index")
        return torch.device("cuda", index)
    raise BadInput(f"bad --device '{spec}'", hint="use auto, cpu, cuda or cuda:N")


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True when this CPU executes bf16 natively (AVX512-BF16 or AMX): only then does bf16 pay off.

    Reads the kernel's CPU flags (Linux); torch's `get_cpu_capability()` only names the vector ISA
    ("AVX512"), which does not tell whether the bf16 instructions are there.
    """
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            return bool(flags & {"avx512_bf16", "amx_bf16"})
    return False


def native_bf16(device: torch.device | str) -> bool:
    """bf16 runs natively on `device` (never through emulation)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        return cpu_has_native_bf16()
    return False


def amp_dtype(device: torch.device | str) -> torch.dtype | None:
    """What `--amp` autocasts to on `device`: bf16 where native, fp16 on CUDA without native bf16,
    None where no low-precision type pays off (then --amp runs fp32)."""
    device = torch.device(device)
    if native_bf16(device):
        return torch.bfloat16
    if device.type == "cuda":
        return torch.float16
    return None


def needs_grad_scaler(device: torch.device | str, amp: bool) -> bool:
    """fp16 gradients underflow without loss scaling; bf16 has fp32's range and needs none."""
    return amp and amp_dtype(device) == torch.float16


def grad_scaler(device: torch.device | str, amp: bool) -> torch.amp.GradScaler:
    """A GradScaler for `device`, enabled exactly when the amp dtype is fp16 (a no-op otherwise)."""
    device = torch.device(device)
    return torch.amp.GradScaler(device.type, enabled=needs_grad_scaler(device, amp))


@contextlib.contextmanager
def autocast(device: torch.device, enabled: bool) -> Iterator[None]:
    """Autocast to `amp_dtype(device)` when enabled; fp32 where the device has no native low precision."""
    dtype = amp_dtype(device) if enabled else None
    if dtype is None:
        yield
        return
    with torch.autocast(device.type, dtype=dtype):
        yield


def configure_backends(device: torch.device, *, training: bool, tf32: bool) -> None:
    """The cuDNN/TF32 policy, set deliberately by each command (no-op on CPU).

    `training` turns on cudnn.benchmark (fixed shapes: the autotuner pays off after the first steps;
    unless deterministic kernels were asked for). `tf32=False` keeps matmuls and convolutions in full
    fp32 (NVlabs does so for StyleGAN; FID features must not depend on the GPU generation).
    """
    if device.type != "cuda":
        return
    if training and not torch.backends.cudnn.deterministic:
        torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32


@contextlib.contextmanager
def full_fp32() -> Iterator[None]:
    """Full fp32 matmuls and convolutions inside the block, the previous policy restored after.

    For numbers that must not depend on the hardware: metrics (PPL's epsilon-difference is below
    TF32's precision) and precision-sensitive optimisation. Turns off TF32 for cuBLAS matmuls and
    cuDNN convolutions, and the reduced-precision fp32 matmuls `set_float32_matmul_precision` allows
    on CPUs (oneDNN bf16). The flags are process-wide, so this is applied whatever the device.
    """
    saved = (torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32)
    torch.set_float32_matmul_precision("highest")  # also cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(saved[0])
        torch.backends.cudnn.allow_tf32 = saved[1]


def tf32_state() -> tuple[bool, bool, str]:
    """(matmul TF32, cuDNN TF32, fp32 matmul precision): what `full_fp32` turns off."""
    return torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.get_float32_matmul_precision()
