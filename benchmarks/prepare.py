"""images/s of `stylekit prepare` (1 and 2 workers) vs a plain single-process PIL loop on the same files.

Input: toy-styles rendered at 256px; both sides centre-crop, Lanczos-resize to 64px and write PNGs
(zlib level 1, as prepare does). prepare additionally validates, splits, hashes and writes a
manifest. Prints one JSON line per measurement; asserts nothing.

    .venv/bin/python benchmarks/prepare.py [--per-style 60] [--styles 4] [--size 64]
"""

import argparse
import json
import resource
import shutil
import tempfile
import time
from pathlib import Path

from PIL import Image

from stylekit.data.images import list_images
from stylekit.data.prepare import PrepareConfig, prepare
from stylekit.data.toy import generate_toy_styles
from stylekit.io.console import configure


def _peak_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round(max(own, children) / 1024, 1)


def _emit(what: str, config: dict, seconds: float, n: int) -> None:
    print(json.dumps({"what": what, "config": config, "seconds": round(seconds, 3),
                      "throughput": round(n / seconds, 1), "unit": "images/s", "peak_mem_mb": _peak_mb()}), flush=True)


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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-style", type=int, default=60)
    ap.add_argument("--styles", type=int, default=4)
    ap.add_argument("--size", type=int, default=64)
    args = ap.parse_args()
    configure(quiet=True)
    work = Path(tempfile.mkdtemp(prefix="stylekit-bench-prepare-"))
    try:
        start = time.perf_counter()
        toy = generate_toy_styles(work / "toy", size=256, per_style=args.per_style, styles=args.styles, seed=0)
        _emit("toy-styles generate", {"size": 256, "styles": args.styles, "per_style": args.per_style},
              time.perf_counter() - start, toy.files)
        files = list_images(work / "toy")
        start = time.perf_counter()
        pil_loop(files, work / "pil", args.size)
        _emit("PIL loop (1 process)", {"images": len(files), "src_px": 256, "size": args.size}, time.perf_counter() - start, len(files))
        for workers in (1, 2):
            start = time.perf_counter()
            rep = prepare(PrepareConfig(src=work / "toy", out=work / f"prep{workers}", size=args.size, workers=workers))
            _emit("stylekit prepare", {"images": rep.used, "src_px": 256, "size": args.size, "workers": workers, "format": "folder"},
                  time.perf_counter() - start, rep.used)
        start = time.perf_counter()
        rep = prepare(PrepareConfig(src=work / "toy", out=work / "zip", size=args.size, workers=2, format="stylegan-zip"))
        _emit("stylekit prepare", {"images": rep.used, "src_px": 256, "size": args.size, "workers": 2, "format": "stylegan-zip"},
              time.perf_counter() - start, rep.used)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
