"""finetune-stylegan speed: sec/kimg for the tiny test config (whole loop) and for paper256 (per phase).

The per-phase figure (256 px by default, `--res`) times each phase of a minibatch, interleaved, after
one warm-up call, and amortises the lazy regularisation as the loop does. D's phases include their
optimiser steps. On a Dreg minibatch the loop runs D once on the reals for both the real loss and R1
("Dboth"); the separate R1 pass it replaced ("Dreg separate": a second D forward on the reals) is timed
beside it, so one run gives both:
    before = Gmain + Greg/4 + Dmain + (Dreg separate)/16
    after  = Gmain + Greg/4 + (15 Dmain + Dboth)/16
Prints one JSON line per measurement; asserts nothing.

    python benchmarks/finetune.py [--device cpu] [--threads 2] [--repeats 1] [--batch256 4] [--res 256] [--skip-256]
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
    from stylekit.configs.finetune import FinetuneConfig
    from stylekit.data.toy import generate_toy_styles
    from stylekit.nets.stylegan2.load import save_network
    from stylekit.nets.stylegan2.tiny import tiny_discriminator, tiny_generator
    from stylekit.train.stylegan import finetune_stylegan

    device = str(bench.device)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate_toy_styles(root / "toy", size=32, per_style=20, styles=1, seed=0)
        save_network(root / "src.safetensors", G=tiny_generator(32), G_ema=tiny_generator(32), D=tiny_discriminator(32))
        cfg = FinetuneConfig(data=root / "toy" / "pop", out=root / "run", network=str(root / "src.safetensors"),
                             batch=4, kimg=kimg, tick_kimg=kimg, snap=1000, device=device, grid_seeds=4)
        t, cpu = time.perf_counter(), time.process_time()
        r = finetune_stylegan(cfg)
        secs, cpu = time.perf_counter() - t, time.process_time() - cpu
    bench.result("finetune-stylegan sec/kimg (whole loop)",
                 {"resolution": 32, "net": "tiny (channel_base 512, channel_max 64, map 2)", "batch": 4, "kimg": kimg,
                  "augpipe": "bgc", "device": device, "threads": torch.get_num_threads()},
                 secs, items=kimg * 1000, sec_per_kimg=r.sec_per_kimg, cpu_seconds=round(cpu, 2),
                 cpu_sec_per_kimg=round(cpu / kimg, 1))


def bench_phases(bench: Bench, res: int, batch: int, repeats: int) -> None:
    from stylekit.configs.finetune import FinetuneConfig
    from stylekit.nets.stylegan2.augment import AugmentPipe, BatchRandom
    from stylekit.train.distributed import DistInfo
    from stylekit.train.stats import RunningMeans
    from stylekit.train.stylegan import (
        Phases,
        _scratch_networks,
        phase_random,
        resolve_hparams,
    )
    from stylekit.train.stylegan_loss import LossConfig, StyleGAN2Loss, lazy_adam

    device = bench.device
    hp = resolve_hparams(FinetuneConfig(data="-", out="-", network="none", cfg="paper256", batch=batch, mbstd_group=min(batch, 8)), res, 1, True)
    nets = _scratch_networks(FinetuneConfig(data="-", out="-", network="none", seed=0), res, hp)
    G, D = nets.G.to(device).train(), nets.D.to(device).train()
    D.b4.mbstd.group_size = hp["mbstd_group"]
    aug = AugmentPipe("bgc", p=0.2).to(device)
    dist = DistInfo(device=device)
    loss = StyleGAN2Loss(G, D, aug, LossConfig(r1_gamma=hp["gamma"]), dist)
    params_D = list(D.parameters())
    opt_D = lazy_adam(params_D, hp["lr"], 16)
    phases = Phases(loss, lazy_adam(list(G.parameters()), hp["lr"], 4), opt_D, list(G.parameters()), params_D,
                    RunningMeans(device), dist)
    real = torch.rand(batch, 3, res, res, device=device) * 2 - 1

    def rnd(phase: int) -> BatchRandom:  # the loop's draws of minibatch 1
        return phase_random(0, 1, phase, dist)

    def dreg_separate() -> None:  # the pass the fused Dboth replaced: a second D forward on the reals
        opt_D.zero_grad(set_to_none=True)
        loss.disc_real(rnd(3), real, None, r1=True).r1_loss.backward()
        opt_D.step()

    phases_fns = {
        "Gmain": lambda: loss.gen_main(rnd(0), batch, None).backward(),
        "Greg": lambda: loss.gen_pl(rnd(1), max(batch // 2, 1), None)[0].backward(),
        "Dmain": lambda: phases.disc(rnd(2), real, batch, dreg=False),
        "Dreg separate": dreg_separate,
        "Dboth": lambda: phases.disc(rnd(2), real, batch, dreg=True),
    }

    def run(fn):
        def call() -> None:
            fn()
            G.zero_grad(set_to_none=True)
            D.zero_grad(set_to_none=True)
        return call

    calls = {name: run(fn) for name, fn in phases_fns.items()}
    flops = {name: count_flops(fn) for name, fn in calls.items()}
    times = best_of(calls, repeats, device, warmup=0)  # the FLOP-counting call was the warm-up
    common = times["Gmain"] + times["Greg"] / 4
    before = common + times["Dmain"] + times["Dreg separate"] / 16
    after = common + (15 * times["Dmain"] + times["Dboth"]) / 16
    flops_batch = flops["Gmain"] + flops["Greg"] // 4 + (15 * flops["Dmain"] + flops["Dboth"]) // 16
    bench.result("finetune-stylegan sec/kimg (per-phase, amortised)",
                 {"resolution": res, "cfg": "paper256",
                  "G_params_M": round(sum(p.numel() for p in G.parameters()) / 1e6, 2),
                  "D_params_M": round(sum(p.numel() for p in D.parameters()) / 1e6, 2),
                  "batch": batch, "augpipe": "bgc p=0.2", "device": str(device), "threads": torch.get_num_threads(),
                  "repeats": repeats, "stat": "min per phase, interleaved",
                  "phase_seconds": {k: round(v, 3) for k, v in times.items()},
                  "phase_gflop": {k: round(v / 1e9, 1) for k, v in flops.items()}},
                 after, items=batch, flops=flops_batch, sec_per_kimg=round(after / batch * 1000, 1),
                 sec_per_kimg_separate_r1=round(before / batch * 1000, 1),
                 dreg_minibatch_d_seconds={"separate": round(times["Dmain"] + times["Dreg separate"], 3),
                                           "fused": round(times["Dboth"], 3)})


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    add_args(ap, repeats=1)
    ap.add_argument("--tiny-kimg", type=float, default=0.08)
    ap.add_argument("--batch256", type=int, default=4, help="batch of the per-phase timing")
    ap.add_argument("--res", type=int, default=256, help="resolution of the per-phase timing")
    ap.add_argument("--skip-256", action="store_true", help="skip the per-phase timing")
    ap.add_argument("--skip-tiny", action="store_true", help="skip the tiny whole-loop run")
    args = ap.parse_args(argv)
    bench = start("finetune", args)
    if not args.skip_tiny:
        bench_tiny(bench, args.tiny_kimg)
    if not args.skip_256:
        bench_phases(bench, args.res, args.batch256, args.repeats)


if __name__ == "__main__":
    sys.exit(main())
