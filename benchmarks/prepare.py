"""`stylekit prepare` images/s (folder and stylegan-zip) beside NVlabs dataset_tool and a plain PIL loop.

Input: toy-styles rendered at 256 px (default 1000 images); every contender centre-crops and
Lanczos-resizes to 64 px. dataset_tool and `prepare --format stylegan-zip` write a StyleGAN zip;
prepare also validates, splits, hashes and writes a manifest. Timed interleaved, best of N, each call
into a fresh output folder.

    python benchmarks/prepare.py [--images 1000] [--size 64] [--workers 2] [--reference PATH-TO-stylegan2-ada-pytorch]

With --reference, NVlabs' dataset_tool.py (from a local clone) runs in this process through its click
command (`--transform center-crop --width --height`, single process as it is written). One JSON line
per measurement; asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import os
import shutil
import tempfile
import time
from pathlib import Path

from common import add_args, best_of, reference_path, start
from PIL import Image

from stylekit.data.images import list_images
from stylekit.data.prepare import PrepareConfig, prepare
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_args(parser, repeats=3, reference="NVlabs/stylegan2-ada-pytorch (its dataset_tool.py)", env="NVLABS")
    parser.add_argument("--images", type=int, default=1000, help="toy images to convert (8 styles)")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2, help="prepare's worker processes")
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

        fns = {"PIL loop (1 process)": lambda: pil_loop(files, out("pil"), args.size),
               "stylekit prepare folder, 1 worker": run_prepare(1, "folder"),
               f"stylekit prepare folder, {args.workers} workers": run_prepare(args.workers, "folder"),
               f"stylekit prepare stylegan-zip, {args.workers} workers": run_prepare(args.workers, "stylegan-zip")}
        if args.reference:
            fns["NVlabs dataset_tool (zip)"] = lambda: dataset_tool(src, out("nv") / "data.zip", args.size)
        best = best_of(fns, args.repeats, warmup=0)
        config = {"images": len(files), "src_px": 256, "size": args.size, "crop": "center", "filter": "lanczos",
                  "repeats": args.repeats, "stat": "min, interleaved", "cores": os.cpu_count()}
        zip_name = f"stylekit prepare stylegan-zip, {args.workers} workers"
        for name, seconds in best.items():
            extra = {}
            if name == zip_name and "NVlabs dataset_tool (zip)" in best:
                extra["speedup_vs_dataset_tool"] = round(best["NVlabs dataset_tool (zip)"] / seconds, 3)
            bench.result(name, config, seconds, items=len(files), unit="images/s", **extra)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
