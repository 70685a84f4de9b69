"""Seconds per style-transfer step (one loss+gradient evaluation) at 256 and 512 px.

VGG19 truncated at relu5_1 (content relu4_2 + the five Gatys style layers), random weights (speed
does not depend on the values), fp32 vs bf16 autocast (bf16 only where the CPU/GPU runs it
natively, unless --force-bf16), channels_last on and off. Prints one JSON line per measurement.

    .venv/bin/python benchmarks/transfer.py [--sizes 256,512] [--steps 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import torch

from stylekit.nets.vgg import VGGFeatures, cpu_has_native_bf16, gram_matrix
from stylekit.transfer.config import DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS
from stylekit.transfer.losses import content_mse, style_loss, tv_loss


def peak_mem_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(size: int, precision: str, channels_last: bool, steps: int, device: torch.device) -> dict:
    layers = DEFAULT_CONTENT_LAYERS + DEFAULT_STYLE_LAYERS
    vgg = VGGFeatures("vgg19", layers, weights=None, precision=precision, channels_last=channels_last).to(device)
    g = torch.Generator().manual_seed(0)
    content = torch.rand(1, 3, size, size, generator=g).to(device)
    style = torch.rand(1, 3, size, size, generator=g).to(device)
    with torch.no_grad():
        c_t = vgg(content)["relu4_2"]
        s_t = {k: gram_matrix(v) for k, v in vgg(style).items() if k in DEFAULT_STYLE_LAYERS}
    x = content.clone().requires_grad_(True)

    def step() -> None:
        x.grad = None
        f = vgg(x)
        loss = 5 * content_mse(f["relu4_2"], c_t) + 100 * sum(style_loss(f[k], s_t[k]) for k in DEFAULT_STYLE_LAYERS) + 1e-3 * tv_loss(x)
        loss.backward()

    step()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / steps
    return {
        "what": "transfer_step",
        "config": {"arch": "vgg19", "to": "relu5_1", "size": size, "precision": precision, "channels_last": channels_last,
                   "device": str(device), "threads": torch.get_num_threads(), "cpu_native_bf16": cpu_has_native_bf16()},
        "seconds": round(seconds, 4),
        "throughput": round(1.0 / seconds, 3),
        "peak_mem_mb": round(peak_mem_mb(device), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="256,512")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--force-bf16", action="store_true", help="measure bf16 even without native support")
    args = parser.parse_args()
    device = torch.device(args.device)
    native = cpu_has_native_bf16() if device.type == "cpu" else torch.cuda.is_bf16_supported()
    precisions = ["fp32"] + (["bf16"] if native or args.force_bf16 else [])
    for size in (int(s) for s in args.sizes.split(",")):
        for precision in precisions:
            for channels_last in (False, True):
                print(json.dumps(measure(size, precision, channels_last, args.steps, device)), flush=True)


if __name__ == "__main__":
    main()
