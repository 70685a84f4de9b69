"""Inversion speed (steps/s) for the perceptual losses, and the validity figures of docs/performance.md.

    python benchmarks/invert.py                 # steps/s: lpips and vgg, 64px and 256px generators, fp32 and --amp, CPU
    python benchmarks/invert.py --validity      # PSNR curves of W / W+ inversion of a known latent (tiny G)
    python benchmarks/invert.py --validity --amp  # the same under --amp (compare its final PSNRs with fp32's)

Random weights throughout (no downloads): speed does not depend on the values. One JSON line each.
fp32 and `--amp` (autocast to `stylekit.device.amp_dtype`: bf16 on CPUs with AVX512-BF16/AMX; not
timed where the device has no native low-precision type) are timed interleaved on the same target
from the same start, best of `--repeats`; the --amp line also gives its final loss and PSNR against
the fp32 run's after the same steps.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from common import Bench, add_args, best_of, count_flops, start

from stylekit.configs.edit import DEFAULT_MSE_WEIGHT
from stylekit.edit import invert as inv
from stylekit.nets.stylegan2.tiny import randomize_, tiny_generator

CONFIGS = {  # as the StyleGAN2 CPU figures in REFERENCES.md
    "64px": dict(resolution=64, z_dim=512, channel_base=8192, channel_max=512, mapping_layers=8),
    "256px": dict(resolution=256, z_dim=512, channel_base=16384, channel_max=512, mapping_layers=8),
}


def speed(bench: Bench, config: str, loss: str, space: str, steps: int, repeats: int) -> None:
    from stylekit.device import amp_dtype

    device = bench.device
    G = tiny_generator(**CONFIGS[config]).to(device).requires_grad_(False)
    target = torch.rand(1, 3, G.img_resolution, G.img_resolution, generator=torch.Generator().manual_seed(0))
    w_avg, w_std = inv.w_stats(G, 1000)
    dtype = amp_dtype(device)
    precisions = {"fp32": False, **({"amp": True} if dtype is not None else {})}
    objectives = {name: inv.Objective(loss, target * 2 - 1, DEFAULT_MSE_WEIGHT[loss], "random", device, amp=amp)
                  for name, amp in precisions.items()}
    results: dict[str, inv.Projection] = {}

    def run(name: str, n: int = steps):
        def call() -> None:
            results[name] = inv.project(G, target, objectives[name], space=space, steps=n, w_avg=w_avg, w_std=w_std,
                                        log_every=n, amp=precisions[name])
        return call

    flops = count_flops(run("fp32", 1))  # + warm-up of fp32
    if "amp" in precisions:
        run("amp", 1)()  # warm-up (oneDNN bf16 kernel selection)
    times = best_of({name: run(name) for name in precisions}, repeats, device, warmup=0)
    psnr = {name: inv.psnr(inv.quantize(p.image)[0], target[0]) for name, p in results.items()}
    for name in precisions:
        extra: dict[str, object] = {"final_loss": round(results[name].final_loss, 6), "psnr": round(psnr[name], 3)}
        if name == "amp":
            extra.update(speedup_vs_fp32=round(times["fp32"] / times["amp"], 3),
                         final_loss_rel_diff_vs_fp32=round(results["amp"].final_loss / results["fp32"].final_loss - 1, 4),
                         psnr_diff_vs_fp32=round(psnr["amp"] - psnr["fp32"], 3))
        bench.result("invert-step", {"generator": config, "loss": loss, "space": space, "steps": steps, "repeats": repeats,
                                     "precision": "fp32" if name == "fp32" else f"--amp ({str(dtype).removeprefix('torch.')})",
                                     "device": str(device), "threads": torch.get_num_threads()},
                     times[name] / steps, flops=flops, unit="steps/s", **extra)


def validity_generator() -> torch.nn.Module:
    """Same as tests/test_invert.py: 32px tiny G, outputs kept inside [-1, 1], no per-pixel noise."""
    G = randomize_(tiny_generator(32, seed=0), 0, noise_strength=0.0)
    with torch.no_grad():
        for name, p in G.named_parameters():
            if ".torgb." in name and "affine" not in name:
                p.mul_(0.3)
    return G.eval().requires_grad_(False)


def validity(steps: int, amp: bool) -> None:
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
                obj = inv.Objective(loss, target * 2 - 1, DEFAULT_MSE_WEIGHT[loss], "random", torch.device("cpu"), amp)
                t0 = time.perf_counter()
                proj = inv.project(G, target, obj, space=space, steps=steps, initial_noise=0.0, noise_reg=0.0,
                                   w_avg=w_avg, w_std=w_std, log_every=max(1, steps // 10), amp=amp)
                final = inv.psnr(inv.quantize(proj.image)[0], target[0])
                print(json.dumps({"what": "invert-validity", "config": {"target": target_name, "loss": loss, "space": space,
                                  "steps": steps, "amp": amp, "generator": "32px tiny, random"}, "seconds": round(time.perf_counter() - t0, 2),
                                  "final_psnr": round(final, 2),
                                  "curve": [[c["step"], round(c["dist"], 5), c["psnr"]] for c in proj.curve]}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--validity", action="store_true")
    ap.add_argument("--amp", action="store_true", help="--validity under --amp (device.amp_dtype on the CPU)")
    ap.add_argument("--steps", type=int, default=None, help="steps per timed run (default: 5 at 64 px, 2 at 256 px; --validity 300)")
    ap.add_argument("--configs", default=",".join(CONFIGS), help=f"generators to time, of {', '.join(CONFIGS)}")
    ap.add_argument("--losses", default="lpips,vgg", help="perceptual losses to time")
    add_args(ap, repeats=1)
    args = ap.parse_args()
    if args.validity:
        torch.set_num_threads(args.threads)
        validity(args.steps or 300, args.amp)
        return
    bench = start("invert", args)
    for config in args.configs.split(","):
        for loss in args.losses.split(","):
            speed(bench, config, loss, "w", args.steps or (5 if config == "64px" else 2), args.repeats)


if __name__ == "__main__":
    main()
