"""finetune-stylegan speed: sec/kimg for the tiny test config (whole loop) and for 256px paper256 (per phase).

The 256px figure times each phase of a minibatch once (after one warm-up minibatch) and amortises the
lazy regularisation as the loop does: (Gmain + Dmain + Greg/4 + Dreg/16) per minibatch.
Prints one JSON line per measurement; asserts nothing.

    python benchmarks/finetune.py [--device cpu] [--threads 2] [--repeats 1] [--batch256 4] [--skip-256]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import Bench, add_args, best_of, count_flops, start


def bench_tiny(bench: Bench, kimg: float) -> None:
    from stylekit.data.toy import generate_toy_styles
    from stylekit.nets.stylegan2.load import save_network
    from stylekit.nets.stylegan2.tiny import tiny_discriminator, tiny_generator
    from stylekit.train.stylegan import FinetuneConfig, finetune_stylegan

    device = str(bench.device)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate_toy_styles(root / "toy", size=32, per_style=20, styles=1, seed=0)
        save_network(root / "src.safetensors", G=tiny_generator(32), G_ema=tiny_generator(32), D=tiny_discriminator(32))
        cfg = FinetuneConfig(data=str(root / "toy" / "pop"), out=str(root / "run"), resume=str(root / "src.safetensors"),
                             batch=4, kimg=kimg, tick_kimg=kimg, snap=1000, device=device, grid_seeds=4)
        t = time.perf_counter()
        r = finetune_stylegan(cfg)
        secs = time.perf_counter() - t
    bench.result("finetune-stylegan sec/kimg (whole loop)",
                 {"resolution": 32, "net": "tiny (channel_base 512, channel_max 64, map 2)", "batch": 4, "kimg": kimg,
                  "augpipe": "bgc", "device": device, "threads": torch.get_num_threads()},
                 secs, items=kimg * 1000, sec_per_kimg=r.sec_per_kimg)


def bench_256(bench: Bench, batch: int, repeats: int) -> None:
    from stylekit.nets.stylegan2.augment import AugmentPipe, BatchRandom
    from stylekit.train.distributed import DistInfo
    from stylekit.train.stylegan import FinetuneConfig, _scratch_networks, resolve_hparams
    from stylekit.train.stylegan_loss import LossConfig, StyleGAN2Loss

    device = bench.device
    hp = resolve_hparams(FinetuneConfig(data="-", out="-", cfg="paper256", batch=batch, mbstd_group=min(batch, 8)), 256, 1, True)
    nets = _scratch_networks(FinetuneConfig(data="-", out="-", seed=0), 256, hp)
    G, D = nets.G.to(device).train(), nets.D.to(device).train()
    D.b4.mbstd.group_size = hp["mbstd_group"]
    aug = AugmentPipe("bgc", p=0.2).to(device)
    loss = StyleGAN2Loss(G, D, aug, LossConfig(r1_gamma=hp["gamma"]), DistInfo(device=device))
    real = torch.rand(batch, 3, 256, 256, device=device) * 2 - 1

    def rnd(phase: int, n: int) -> BatchRandom:
        return BatchRandom(torch.Generator().manual_seed(phase), total=n, device=device)

    phases = {
        "Gmain": lambda: loss.gen_main(rnd(0, batch), batch, None).backward(),
        "Greg": lambda: loss.gen_pl(rnd(1, max(batch // 2, 1)), max(batch // 2, 1), None)[0].backward(),
        "Dmain": lambda: loss.disc_main(rnd(2, batch), batch, real, None)[0].backward(),
        "Dreg": lambda: loss.disc_r1(rnd(3, batch), real, None)[0].backward(),
    }

    def run(fn):
        def call() -> None:
            fn()
            G.zero_grad(set_to_none=True)
            D.zero_grad(set_to_none=True)
        return call

    calls = {name: run(fn) for name, fn in phases.items()}
    flops = {name: count_flops(fn) for name, fn in calls.items()}
    times = best_of(calls, repeats, device, warmup=0)  # the FLOP-counting call was the warm-up
    per_batch = times["Gmain"] + times["Dmain"] + times["Greg"] / 4 + times["Dreg"] / 16
    flops_batch = flops["Gmain"] + flops["Dmain"] + flops["Greg"] // 4 + flops["Dreg"] // 16
    bench.result("finetune-stylegan sec/kimg (per-phase, amortised)",
                 {"resolution": 256, "cfg": "paper256", "net": "channel_base 16384, map 8",
                  "G_params_M": round(sum(p.numel() for p in G.parameters()) / 1e6, 2),
                  "D_params_M": round(sum(p.numel() for p in D.parameters()) / 1e6, 2),
                  "batch": batch, "augpipe": "bgc p=0.2", "device": str(device), "threads": torch.get_num_threads(),
                  "repeats": repeats, "stat": "min per phase, interleaved",
                  "phase_seconds": {k: round(v, 3) for k, v in times.items()},
                  "phase_gflop": {k: round(v / 1e9, 1) for k, v in flops.items()}},
                 per_batch, items=batch, flops=flops_batch, sec_per_kimg=round(per_batch / batch * 1000, 1))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    add_args(ap, repeats=1)
    ap.add_argument("--tiny-kimg", type=float, default=0.08)
    ap.add_argument("--batch256", type=int, default=4)
    ap.add_argument("--skip-256", action="store_true")
    args = ap.parse_args(argv)
    bench = start("finetune", args)
    bench_tiny(bench, args.tiny_kimg)
    if not args.skip_256:
        bench_256(bench, args.batch256, args.repeats)


if __name__ == "__main__":
    sys.exit(main())
