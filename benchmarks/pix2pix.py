"""train-pix2pix step speed: 256px, batch 1, --refs 0 (plain pix2pix) and --refs 5, default widths.

One step = G forward, D step (real + fake), G step (GAN + L1), as in stylekit/train/pix2pix.py.
Prints one JSON line per configuration. junyanz's unet_256 + basic D on this CPU: 1.31 s per step
(G 54.41M, D 2.77M parameters).

    python benchmarks/pix2pix.py [--size 256] [--steps 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import torch
import torch.nn.functional as F

from stylekit.nets.patchgan import PatchGAN
from stylekit.nets.unet import GeneratorConfig, RefUNet
from stylekit.train.pix2pix import count_params, gan_loss


def bench(refs: int, size: int, steps: int, device: torch.device) -> dict:
    torch.manual_seed(0)
    g = RefUNet(GeneratorConfig(size=size, refs=refs, ref_size=min(size, 128))).to(device)
    d = PatchGAN().to(device)
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    params_g, params_d = count_params(g), count_params(d)
    a, b = torch.rand(1, 3, size, size, device=device) * 2 - 1, torch.rand(1, 3, size, size, device=device) * 2 - 1
    r = torch.rand(1, refs, 3, min(size, 128), min(size, 128), device=device) if refs else None

    def step() -> None:
        fake = g(a, r)
        d.requires_grad_(True)
        opt_d.zero_grad(set_to_none=True)
        loss_d = 0.5 * (gan_loss(d(a, fake.detach()), False, "vanilla") + gan_loss(d(a, b), True, "vanilla"))
        loss_d.backward()
        opt_d.step()
        d.requires_grad_(False)
        opt_g.zero_grad(set_to_none=True)
        loss_g = gan_loss(d(a, fake), True, "vanilla") + 100 * F.l1_loss(fake, b)
        loss_g.backward()
        opt_g.step()

    step()  # warm-up (allocations, oneDNN kernel selection)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / steps
    cpu_seconds = (time.process_time() - cpu_start) / steps  # on a shared CPU: the part not spent waiting
    peak = (torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {
        "what": "train-pix2pix step",
        "config": {"size": size, "batch": 1, "refs": refs, "ngf": 64, "ndf": 64, "ref_encoder": "small-cnn",
                   "ref_inject": "adain", "device": str(device), "threads": torch.get_num_threads(),
                   "params_g": params_g, "params_d": params_d},
        "seconds": round(seconds, 4),
        "cpu_seconds": round(cpu_seconds, 4),
        "throughput": round(1.0 / seconds, 4),
        "peak_mem_mb": round(peak, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    for refs in (0, 5):
        print(json.dumps(bench(refs, args.size, args.steps, device)), flush=True)


if __name__ == "__main__":
    main()
