"""Device selection and mixed precision, shared by every command that runs a network."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from stylekit.errors import BadInput


def resolve_device(spec: str = "auto") -> torch.device:
    """'auto' (CUDA when present, else CPU), 'cpu', 'cuda' or 'cuda:N'. Under torchrun, 'auto'/'cuda'
    pick the LOCAL_RANK GPU."""
    import os

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
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        try:
            index = int(spec.split(":", 1)[1])
        except (IndexError, ValueError):
            raise BadInput(f"bad --device '{spec}'", hint="use auto, cpu, cuda or cuda:N") from None
        if index >= torch.cuda.device_count():
            raise BadInput(f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s)", hint="pick an existing index")
        return torch.device("cuda", index)
    raise BadInput(f"bad --device '{spec}'", hint="use auto, cpu, cuda or cuda:N")


def amp_dtype(device: torch.device) -> torch.dtype:
    """bf16 where the GPU supports it, else fp16."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


@contextlib.contextmanager
def autocast(device: torch.device, enabled: bool) -> Iterator[None]:
    """Mixed precision on CUDA when enabled; a no-op elsewhere (CPU runs stay fp32 and reproducible)."""
    if enabled and device.type == "cuda":
        with torch.autocast("cuda", dtype=amp_dtype(device)):
            yield
    else:
        yield
