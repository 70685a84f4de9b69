"""Benchmark `stylekit score` (fid,kid) against calling clean-fid directly, and the cached rerun.

No Inception weights offline: BOTH sides use the same randomly initialised torchvision Inception-v3
(2048-d pool features, the real network's cost) injected as clean-fid's `custom_feat_extractor` and
as stylekit's "inception" extractor. Same files, same clean-mode resize, so the FIDs must agree.
Prints one JSON line per measurement; asserts nothing.

clean-fid is an installed package, so it always runs beside stylekit (no --reference needed); the first
runs are timed interleaved, best of N, stylekit with an empty feature cache each time: with its
default decoding (--workers auto: on CPU a thread decodes the next batch while Inception runs) and
with serial decoding (--workers 0), each line with its ratio to clean-fid from the same run.

    python benchmarks/score.py [--n 64] [--size 128] [--repeats 2] [--device cpu] [--workers N]
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import add_args, as_reference, best_of, count_flops, start
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_args(parser, repeats=2)
    parser.add_argument("--n", type=int, default=64, help="images per set")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=None, help="stylekit's --batch (default: the library's)")
    parser.add_argument("--workers", type=int, default=None, help="stylekit's --workers (default: the library's)")
    parser.add_argument("--cleanfid-batch", type=int, default=32, help="clean-fid batch_size (its default 32)")
    parser.add_argument("--cleanfid-workers", type=int, default=12, help="clean-fid num_workers (its default 12)")
    args = parser.parse_args()
    bench = start("score", args)
    device = bench.device

    tmp = Path(tempfile.mkdtemp(prefix="stylekit-bench-score-"))
    os.environ["STYLEKIT_HOME"] = str(tmp / "home")
    a, b = tmp / "a", tmp / "b"
    make_set(a, args.n, args.size, 0)
    make_set(b, args.n, args.size, 1)
    model = RandomInception().to(device)
    flops = count_flops(lambda: model(torch.zeros(1, 3, 299, 299, device=device))) * 2 * args.n

    from cleanfid import fid as cleanfid

    from stylekit.configs.score import ScoreConfig
    from stylekit.metrics import score as score_mod
    from stylekit.metrics.fid import InceptionExtractor

    score_mod.EXTRACTORS["inception"] = lambda cfg, dev: InceptionExtractor(cfg.mode, dev, model=model, name="bench-random-inception", dim=32)
    overrides = {k: v for k, v in (("batch", args.batch), ("workers", args.workers)) if v is not None}
    fresh = itertools.count()
    results: dict[str, float] = {}

    def cfg(cache_dir: Path) -> ScoreConfig:
        return ScoreConfig(a=str(a), b=str(b), metrics=["fid", "kid"], device=str(device), cache_dir=str(cache_dir),
                                     **overrides)

    def run_cleanfid() -> None:
        results["clean-fid"] = float(cleanfid.compute_fid(
            str(a), str(b), mode="clean", custom_feat_extractor=model, num_workers=args.cleanfid_workers,
            batch_size=args.cleanfid_batch, device=device, verbose=False, use_dataparallel=False))

    def first_run(key: str, **extra: object):
        def run() -> None:  # an empty feature cache every call
            cfg_ = cfg(tmp / f"cache-{next(fresh)}")
            for name, value in extra.items():
                setattr(cfg_, name, value)
            results[key] = score_mod.score_sets(cfg_).metrics["fid"]["value"]
        return run

    first, serial = "stylekit first run", "stylekit first run, serial decoding (--workers 0)"
    fns = {"clean-fid compute_fid": as_reference(run_cleanfid), first: first_run(first)}
    if overrides.get("workers") != 0:
        fns[serial] = first_run(serial, workers=0)
    best = best_of(fns, args.repeats, device, warmup=0)
    used = cfg(tmp / "unused")
    config = {"n_per_set": args.n, "size": args.size, "device": str(device), "threads": torch.get_num_threads(),
              "stylekit_batch": used.batch, "stylekit_workers": "auto" if used.workers is None else used.workers,
              "cleanfid_batch": args.cleanfid_batch, "cleanfid_workers": args.cleanfid_workers, "repeats": args.repeats,
              "stat": "min, interleaved", "load_avg_1m_end": round(os.getloadavg()[0], 2),
              "extractor": "random-init torchvision inception_v3, pool features grouped to 32-d (both sides)"}
    t_cf, t_first = best["clean-fid compute_fid"], best[first]
    bench.result("score/clean-fid compute_fid (direct)", {**config, "fid": results["clean-fid"]}, t_cf,
                 items=2 * args.n, flops=flops, speedup_vs_cleanfid=1.0)
    for name in (first, serial):
        if name in best:
            cfg_used = config if name == first else {**config, "stylekit_workers": 0}
            bench.result(f"score/{name} (fid+kid, empty cache)", cfg_used, best[name], items=2 * args.n, flops=flops,
                         fid=results[name], fid_abs_diff_vs_cleanfid=abs(results[name] - results["clean-fid"]),
                         fid_rel_diff_vs_cleanfid=abs(results[name] - results["clean-fid"]) / max(abs(results["clean-fid"]), 1e-12),
                         speedup_vs_cleanfid=round(t_cf / best[name], 3))

    warm = cfg(tmp / "cache-warm")
    score_mod.score_sets(warm)
    t_second = best_of({"cached": lambda: score_mod.score_sets(warm)}, args.repeats, warmup=0)["cached"]
    second = score_mod.score_sets(warm)
    bench.result("score/stylekit cached rerun (fid+kid)", config, t_second, items=2 * args.n,
                 fid=second.metrics["fid"]["value"], speedup_vs_first=round(t_first / t_second, 1),
                 speedup_vs_cleanfid=round(t_cf / t_second, 1), computed=sum(f["computed"] for f in second.features))

    # One changed file: only it is recomputed.
    victim = a / "00000.png"
    Image.open(a / "00001.png").save(victim)
    os.utime(victim, ns=(time.time_ns(), time.time_ns() + 10**9))
    t0 = time.perf_counter()
    third = score_mod.score_sets(warm)
    bench.result("score/stylekit rerun after 1 changed file", config, time.perf_counter() - t0, items=2 * args.n,
                 computed=sum(f["computed"] for f in third.features))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
