"""Inversion speed (steps/s) for the perceptual losses, and the validity figures of docs/performance.md.

    python benchmarks/invert.py                 # steps/s: lpips and vgg, 64px and 256px generators, CPU
    python benchmarks/invert.py --validity      # PSNR curves of W / W+ inversion of a known latent (tiny G)

Random weights throughout (no downloads): speed does not depend on the values. One JSON line each.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from common import Bench, add_args, count_flops, start

from stylekit.edit import invert as inv
from stylekit.nets.stylegan2.tiny import randomize_, tiny_generator

CONFIGS = {  # as the StyleGAN2 CPU figures in REFERENCES.md
    "64px": dict(resolution=64, z_dim=512, channel_base=8192, channel_max=512, mapping_layers=8),
    "256px": dict(resolution=256, z_dim=512, channel_base=16384, channel_max=512, mapping_layers=8),
}


def speed(bench: Bench, config: str, loss: str, space: str, steps: int) -> None:
    device = bench.device
    G = tiny_generator(**CONFIGS[config]).to(device).requires_grad_(False)
    target = torch.rand(1, 3, G.img_resolution, G.img_resolution)
    w_avg, w_std = inv.w_stats(G, 1000)
    obj = inv.Objective(loss, target * 2 - 1, inv.DEFAULT_MSE_WEIGHT[loss], inv.RANDOM_WEIGHTS, device)
    flops = count_flops(lambda: inv.project(G, target, obj, space=space, steps=1, w_avg=w_avg, w_std=w_std))  # + warm-up
    t0 = time.perf_counter()
    inv.project(G, target, obj, space=space, steps=steps, w_avg=w_avg, w_std=w_std, log_every=steps)
    seconds = (time.perf_counter() - t0) / steps
    bench.result("invert-step", {"generator": config, "loss": loss, "space": space, "steps": steps,
                                 "device": str(device), "threads": torch.get_num_threads()},
                 seconds, flops=flops, unit="steps/s")


def validity_generator() -> torch.nn.Module:
    """Same as tests/test_invert.py: 32px tiny G, outputs kept inside [-1, 1], no per-pixel noise."""
    G = randomize_(tiny_generator(32, seed=0), 0, noise_strength=0.0)
    with torch.no_grad():
        for name, p in G.named_parameters():
            if ".torgb." in name and "affine" not in name:
                p.mul_(0.3)
    return G.eval().requires_grad_(False)


def validity(steps: int) -> None:
    from stylekit.edit.generate import map_seeds

    G = validity_generator()
    w_a = map_seeds(G, [7])
    mixed = w_a.clone()
    mixed[:, 4:] = map_seeds(G, [11])[:, 4:]
    w_avg, w_std = inv.w_stats(G, 10000)
    for target_name, ws in (("single-w", w_a), ("mixed-w+", mixed)):
        with torch.no_grad():
            target = inv.quantize(G.synthesis(ws, noise_mode="const"))
        for loss in ("mse", "lpips", "vgg"):
            for space in ("w+", "w"):
                obj = inv.Objective(loss, target * 2 - 1, inv.DEFAULT_MSE_WEIGHT[loss], inv.RANDOM_WEIGHTS, torch.device("cpu"))
                t0 = time.perf_counter()
                proj = inv.project(G, target, obj, space=space, steps=steps, initial_noise=0.0, noise_reg=0.0,
                                   w_avg=w_avg, w_std=w_std, log_every=max(1, steps // 10))
                final = inv.psnr(inv.quantize(proj.image)[0], target[0])
                print(json.dumps({"what": "invert-validity", "config": {"target": target_name, "loss": loss, "space": space,
                                  "steps": steps, "generator": "32px tiny, random"}, "seconds": round(time.perf_counter() - t0, 2),
                                  "final_psnr": round(final, 2),
                                  "curve": [[c["step"], round(c["dist"], 5), c["psnr"]] for c in proj.curve]}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--validity", action="store_true")
    ap.add_argument("--steps", type=int, default=None)
    add_args(ap, repeats=1)
    args = ap.parse_args()
    if args.validity:
        torch.set_num_threads(args.threads)
        validity(args.steps or 300)
        return
    bench = start("invert", args)
    for config in CONFIGS:
        for loss in ("lpips", "vgg"):
            speed(bench, config, loss, "w", args.steps or (5 if config == "64px" else 2))


if __name__ == "__main__":
    main()
