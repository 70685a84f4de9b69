"""Benchmark `stylekit score` (fid,kid) against calling clean-fid directly, and the cached rerun.

No Inception weights offline: BOTH sides use the same randomly initialised torchvision Inception-v3
(2048-d pool features, the real network's cost) injected as clean-fid's `custom_feat_extractor` and
as stylekit's "inception" extractor. Same files, same clean-mode resize, so the FIDs must agree.
Prints one JSON line per measurement; asserts nothing.

    python benchmarks/score.py [--n 200] [--size 128] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def make_set(folder: Path, n: int, size: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        small = rng.random((8, 8, 3))
        img = Image.fromarray((small * 255).astype(np.uint8)).resize((size, size), Image.Resampling.BICUBIC)
        img.save(folder / f"{i:05d}.png")


class RandomInception(torch.nn.Module):
    """torchvision Inception-v3, random init, pool features; input clean-fid style [N,3,299,299] in [0,255]."""

    def __init__(self) -> None:
        super().__init__()
        from torchvision.models import inception_v3

        torch.manual_seed(0)
        self.net = inception_v3(weights=None, aux_logits=False, init_weights=True)
        self.net.fc = torch.nn.Identity()
        self.net.eval()

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # 2048 pool features averaged in groups of 64 -> 32-d, so that a small benchmark set (n > 32)
        # has a full-rank covariance: clean-fid's frechet_distance raises on the singular 2048-d case.
        return self.net((x - 128) / 128).view(x.shape[0], 32, 64).mean(2)


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def emit(what: str, config: dict, seconds: float, images: int) -> None:
    print(json.dumps({"what": what, "config": config, "seconds": round(seconds, 3),
                      "throughput": round(images / seconds, 2) if seconds > 0 else None, "peak_mem_mb": round(peak_mb(), 1)}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200, help="images per set")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="stylekit-bench-score-"))
    os.environ["STYLEKIT_HOME"] = str(tmp / "home")
    a, b = tmp / "a", tmp / "b"
    make_set(a, args.n, args.size, 0)
    make_set(b, args.n, args.size, 1)
    device = torch.device(args.device)
    model = RandomInception().to(device)
    config = {"n_per_set": args.n, "size": args.size, "batch": args.batch, "device": str(device),
              "threads": torch.get_num_threads(), "extractor": "random-init torchvision inception_v3, pool features grouped to 32-d (both sides)"}

    from cleanfid import fid as cleanfid

    start = time.perf_counter()
    fid_cf = cleanfid.compute_fid(str(a), str(b), mode="clean", custom_feat_extractor=model, num_workers=0,
                                  batch_size=args.batch, device=device, verbose=False, use_dataparallel=False)
    t_cf = time.perf_counter() - start
    emit("score/clean-fid compute_fid (direct)", {**config, "fid": float(fid_cf)}, t_cf, 2 * args.n)

    from stylekit.io.console import configure
    from stylekit.metrics import score as score_mod
    from stylekit.metrics.fid import InceptionExtractor

    configure(quiet=True)
    score_mod.EXTRACTORS["inception"] = lambda cfg, dev: InceptionExtractor(cfg.mode, dev, model=model, name="bench-random-inception", dim=32)
    cfg = score_mod.ScoreConfig(a=str(a), b=str(b), metrics=["fid", "kid"], device=str(device), batch=args.batch, workers=0)
    start = time.perf_counter()
    first = score_mod.score_sets(cfg)
    t_first = time.perf_counter() - start
    emit("score/stylekit first run (fid+kid, empty cache)",
         {**config, "fid": first.metrics["fid"]["value"], "fid_abs_diff_vs_cleanfid": abs(first.metrics["fid"]["value"] - float(fid_cf))},
         t_first, 2 * args.n)

    start = time.perf_counter()
    second = score_mod.score_sets(cfg)
    t_second = time.perf_counter() - start
    emit("score/stylekit cached rerun (fid+kid)",
         {**config, "fid": second.metrics["fid"]["value"], "speedup_vs_first": round(t_first / t_second, 1),
          "speedup_vs_cleanfid": round(t_cf / t_second, 1), "computed": sum(f["computed"] for f in second.features)},
         t_second, 2 * args.n)

    # One changed file: only it is recomputed.
    victim = a / "00000.png"
    Image.open(a / "00001.png").save(victim)
    os.utime(victim, ns=(time.time_ns(), time.time_ns() + 10**9))
    start = time.perf_counter()
    third = score_mod.score_sets(cfg)
    t_third = time.perf_counter() - start
    emit("score/stylekit rerun after 1 changed file", {**config, "computed": sum(f["computed"] for f in third.features)}, t_third, 2 * args.n)


if __name__ == "__main__":
    sys.exit(main())
