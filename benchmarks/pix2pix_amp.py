"""Held-out L1 of a short train-pix2pix toy run with `--amp` (bf16 autocast) against the same run in fp32.

    python benchmarks/pix2pix_amp.py [--size 32] [--epochs 4] [--refs 3]

Two runs of `train_pix2pix` on the same generated toy-styles data with the same seed, differing only in
`amp`; each reports its held-out L1 (right-style references) and wall time. Issue 15's goal: the bf16
run's L1 within 5% of the fp32 run's. Where the CPU has no native bf16, `--amp` runs fp32 and the line
says so. One JSON line per run plus the comparison; asserts nothing.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from common import add_args, emit, native_bf16, start

from stylekit.data.toy import generate_toy_styles
from stylekit.train.pix2pix import Pix2PixConfig, train_pix2pix


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_args(parser, repeats=1)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--styles", type=int, default=6)
    parser.add_argument("--per-style", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--refs", type=int, default=3)
    parser.add_argument("--ngf", type=int, default=16, help="generator and discriminator width")
    args = parser.parse_args()
    bench = start("pix2pix-amp", args)
    work = Path(tempfile.mkdtemp(prefix="stylekit-bench-p2p-amp-"))
    data = work / "toy"
    generate_toy_styles(data, size=args.size, per_style=args.per_style, styles=args.styles, seed=0)
    config = {"size": args.size, "styles": args.styles, "per_style": args.per_style, "epochs": args.epochs,
              "refs": args.refs, "ngf": args.ngf, "batch": 4, "seed": 0, "val_fraction": 0.2}
    l1: dict[bool, float] = {}
    for amp in (False, True):
        cfg = Pix2PixConfig(data=data, out=work / ("amp" if amp else "fp32"), refs=args.refs, size=args.size,
                            epochs=args.epochs, decay_epochs=0, batch=4, ngf=args.ngf, ndf=args.ngf, device=args.device,
                            seed=0, val_fraction=0.2, samples=2, amp=amp)
        t0 = time.perf_counter()
        result = train_pix2pix(cfg)
        l1[amp] = float(result.val_l1 or 0.0)
        precision = ("bf16 autocast" if native_bf16(bench.device) else "fp32 (no native bf16: --amp is a no-op)") if amp else "fp32"
        bench.result("train-pix2pix toy run", {**config, "precision": precision}, time.perf_counter() - t0,
                     items=result.steps, val_l1=round(l1[amp], 5), val_l1_wrong_refs=round(result.val_l1_wrong_refs or 0, 5),
                     steps=result.steps)
    relative = abs(l1[True] - l1[False]) / l1[False] if l1[False] else None
    emit({"what": "train-pix2pix --amp vs fp32 held-out L1", "config": config, "val_l1_fp32": round(l1[False], 5),
          "val_l1_amp": round(l1[True], 5), "relative_difference": round(relative, 4) if relative is not None else None,
          "goal": "<= 0.05"})


if __name__ == "__main__":
    main()
