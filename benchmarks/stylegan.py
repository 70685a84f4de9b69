"""StyleGAN2 generator throughput on CPU (images/s), at the configurations of the NVlabs reference figures.

Reference on this project's CPU machine (2 cores, NVlabs reference ops): 13.4 img/s at 64px
(channel_base 8192, batch 8), 1.69 img/s at 256px (channel_base 16384, batch 4).
Prints one JSON line per measurement; asserts nothing. `--variants` also times the alternative
code paths (grouped vs activation-scaled modulation, polyphase vs transposed up-sampling).
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import torch

from stylekit.nets.stylegan2 import ops
from stylekit.nets.stylegan2.networks import Generator

CONFIGS = [
    {"resolution": 64, "channel_base": 8192, "batch": 8},
    {"resolution": 256, "channel_base": 16384, "batch": 4},
]


def measure(cfg: dict, repeats: int, fused: bool | None, up_impl: str) -> dict:
    torch.manual_seed(0)
    G = Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=cfg["resolution"], img_channels=3,
                  mapping_kwargs=dict(num_layers=8),
                  synthesis_kwargs=dict(channel_base=cfg["channel_base"], channel_max=512)).eval()
    z = torch.randn(cfg["batch"], 512)
    ops.UP_IMPL = up_impl
    times = []
    with torch.inference_mode():
        G(z, None, truncation_psi=0.7, noise_mode="const", fused_modconv=fused)  # warm-up
        for _ in range(repeats):
            start = time.perf_counter()
            G(z, None, truncation_psi=0.7, noise_mode="const", fused_modconv=fused)
            times.append(time.perf_counter() - start)
    best = min(times)
    return {
        "what": "stylegan2 G forward (CPU)",
        "config": {**cfg, "mapping_layers": 8, "threads": torch.get_num_threads(),
                   "modconv": {None: "auto", True: "grouped", False: "scaled"}[fused], "up": up_impl,
                   "repeats": repeats, "stat": "min"},
        "seconds": round(best, 4),
        "throughput": round(cfg["batch"] / best, 3),
        "peak_mem_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--variants", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for cfg in CONFIGS:
        variants = [(None, "auto")]
        if args.variants:
            variants += [(False, "transpose"), (True, "transpose"), (False, "polyphase"), (True, "polyphase")]
        for fused, up in variants:
            print(json.dumps(measure(cfg, args.repeats, fused, up)), flush=True)


if __name__ == "__main__":
    main()
