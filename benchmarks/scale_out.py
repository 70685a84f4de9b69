"""The reading commands under torchrun: `score --metrics gram` on two image sets, run as the CLI in one
process and under `torchrun --nproc_per_node N`, each process with one thread, interleaved, best of N.

This is the measurement of issue 27 (before the scale-out, 2 x 40 images took 50 s in one process and
72 s on 2 processes: every rank repeated all the work). Each line gives the wall time of the whole
command (start-up, model build and the gathers included), the processes' share of the images
(`images_per_rank` from the --json report) and the speed-up against one process in the same run. On a
machine with fewer free cores than processes the processes compete: the counts, not the times, are
what carries over to GPUs.

    python benchmarks/scale_out.py [--images 40] [--size 256] [--nproc 1,2] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import add_args, start
from PIL import Image


def _images(folder: Path, n: int, size: int, seed: int) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{i:04d}.png")


def _command(nproc: int, a: Path, b: Path, size: int) -> list[str]:
    bin_dir = Path(sys.executable).parent
    launch = [sys.executable, "-m", "stylekit"] if nproc == 1 else \
        [str(bin_dir / "torchrun"), "--standalone", "--nproc_per_node", str(nproc), "-m", "stylekit"]
    return [*launch, "score", str(a), str(b), "--metrics", "gram", "--vgg-weights", "random", "--size", str(size),
            "--device", "cpu", "--json", "--quiet"]


def _run(cmd: list[str]) -> tuple[float, dict]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return seconds, json.loads(proc.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_args(parser, repeats=2)
    parser.add_argument("--images", type=int, default=40, help="images per set")
    parser.add_argument("--size", type=int, default=256, help="image side and score --size")
    parser.add_argument("--nproc", default="1,2", help="process counts to compare (comma list; 1 is the baseline)")
    args = parser.parse_args()
    bench = start("scale-out", args)
    counts = [int(n) for n in args.nproc.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        a, b = Path(tmp) / "a", Path(tmp) / "b"
        _images(a, args.images, args.size, 1)
        _images(b, args.images, args.size, 2)
        best: dict[int, float] = {}
        shares: dict[int, object] = {}
        values: dict[int, float] = {}
        for _ in range(args.repeats):
            for n in counts:  # interleaved: a drift in the machine's speed hits every count alike
                seconds, doc = _run(_command(n, a, b, args.size))
                best[n] = min(best.get(n, seconds), seconds)
                shares[n] = doc["metrics"]["gram"].get("images_per_rank")
                values[n] = doc["metrics"]["gram"]["value"]
    config = {"command": "score A B --metrics gram --vgg-weights random", "images_per_set": args.images, "size": args.size,
              "threads_per_process": 1, "repeats": args.repeats, "stat": "min, interleaved, whole command"}
    for n in counts:
        bench.result(f"score gram, {n} process{'es' if n > 1 else ''}", {**config, "nproc": n}, best[n], items=2 * args.images,
                     images_per_rank=shares[n], gram_value=values[n],
                     speedup_vs_one_process=round(best[1] / best[n], 3) if 1 in best else None)


if __name__ == "__main__":
    main()
