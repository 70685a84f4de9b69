"""`stylekit prepare` images/s (folder and stylegan-zip) beside NVlabs dataset_tool and a plain PIL loop.

Input: toy-styles rendered at 256 px (default 1000 images); every contender centre-crops and
Lanczos-resizes to 64 px. dataset_tool and `prepare --format stylegan-zip` write a StyleGAN zip;
prepare also validates, splits, hashes and writes a manifest. Timed interleaved, best of N, each call
into a fresh output folder.

    python benchmarks/prepare.py [--images 1000] [--size 64] [--workers N] [--reference PATH-TO-stylegan2-ada-pytorch]

With --reference, NVlabs' dataset_tool.py (from a local clone) runs in this process through its click
command (`--transform center-crop --width --height`, single process as it is written). One JSON line
per contender: best wall seconds, the CPU seconds of that process and its workers (best call), and
with --reference `speedup_vs_dataset_tool` (its best time / the contender's, same run). Asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

from common import add_args, as_reference, best_of, reference_path, start
from PIL import Image

from stylekit.configs.prepare import PrepareConfig
from stylekit.data.images import list_images
from stylekit.data.prepare import prepare, resolved_workers
from stylekit.data.toy import generate_toy_styles

STYLES = 8


def pil_loop(files: list[Path], out: Path, size: int) -> None:
    """The baseline: what a notebook would do, one file after another."""
    out.mkdir(parents=True, exist_ok=True)
    for i, path in enumerate(files):
        with Image.open(path) as img:
            img = img.convert("RGB")
            w, h = img.size
            side = min(w, h)
            img = img.crop(((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side))
            img.resize((size, size), Image.Resampling.LANCZOS).save(out / f"{i:06d}.png", compress_level=1)


def dataset_tool(src: Path, dest: Path, size: int) -> None:
    import dataset_tool as nv  # from the --reference clone

    with contextlib.redirect_stderr(io.StringIO()):  # its tqdm progress bar
        nv.convert_dataset.main(["--source", str(src), "--dest", str(dest), "--transform", "center-crop",
                                 "--width", str(size), "--height", str(size)], standalone_mode=False)


def cpu_seconds() -> float:
    """CPU seconds of this process and of its waited-for children (prepare's pool processes)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def with_cpu(fn, cpu: dict[str, float], name: str):
    """`fn`, recording its least CPU time per call under `name` (wall time under load is noisy; CPU less so)."""
    def call() -> None:
        start = cpu_seconds()
        fn()
        cpu[name] = min(cpu.get(name, float("inf")), cpu_seconds() - start)
    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_args(parser, repeats=3, reference="NVlabs/stylegan2-ada-pytorch (its dataset_tool.py)", env="NVLABS")
    parser.add_argument("--images", type=int, default=1000, help="toy images to convert (8 styles)")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=None, help="prepare's worker processes (default: its auto)")
    args = parser.parse_args()
    if args.reference:
        reference_path(args.reference)
    bench = start("prepare", args)
    work = Path(tempfile.mkdtemp(prefix="stylekit-bench-prepare-"))
    try:
        t0 = time.perf_counter()
        toy = generate_toy_styles(work / "toy", size=256, per_style=-(-args.images // STYLES), styles=STYLES, seed=0)
        bench.result("toy-styles generate", {"size": 256, "styles": STYLES, "images": toy.files},
                     time.perf_counter() - t0, items=toy.files)
        src = work / "toy"
        files = list_images(src)
        fresh = itertools.count()

        def out(tag: str) -> Path:
            return work / f"{tag}-{next(fresh)}"

        def run_prepare(workers: int, fmt: str):
            return lambda: prepare(PrepareConfig(src=src, out=out(f"prep{workers}{fmt}"), size=args.size,
                                                 workers=workers, format=fmt))

        workers = resolved_workers(PrepareConfig(src=src, out=work / "unused", workers=args.workers))
        reference = "NVlabs dataset_tool (zip, 1 process)"
        fns = {"PIL loop (1 process)": lambda: pil_loop(files, out("pil"), args.size)}
        for fmt in ("folder", "stylegan-zip"):
            for j in sorted({1, workers}):
                fns[f"stylekit prepare {fmt}, -j{j}"] = run_prepare(j, fmt)
        if args.reference:
            fns[reference] = as_reference(lambda: dataset_tool(src, out("nv") / "data.zip", args.size))
        cpu: dict[str, float] = {}
        best = best_of({name: with_cpu(fn, cpu, name) for name, fn in fns.items()}, args.repeats, warmup=0)
        config = {"images": len(files), "src_px": 256, "size": args.size, "crop": "center", "filter": "lanczos",
                  "repeats": args.repeats, "stat": "min, interleaved", "cores": os.cpu_count(), "auto_workers": workers,
                  "load_avg_1m_end": round(os.getloadavg()[0], 2)}
        for name, seconds in best.items():
            extra: dict[str, object] = {"cpu_seconds": round(cpu[name], 3),
                                        "cpu_ms_per_image": round(1000 * cpu[name] / len(files), 3)}
            if reference in best:
                extra["speedup_vs_dataset_tool"] = round(best[reference] / seconds, 3)
                extra["cpu_vs_dataset_tool"] = round(cpu[reference] / cpu[name], 3)
            bench.result(name, config, seconds, items=len(files), unit="images/s", **extra)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
