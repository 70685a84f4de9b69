"""Benchmark `stylekit similar`: index build (img/s, empty cache) and query latency (cached index) at
1k and 10k toy-styles images, plus the exact search alone over 100k random embeddings.

The toy images are generated once (the 1k case is a .txt list of the first 1000 files, so generation
does not count). The style model is a random-init small-cnn export (cost of the real architecture;
the neighbours are meaningless). Prints one JSON line per case; asserts nothing.

    python benchmarks/similar.py [--sizes 1000,10000] [--px 64] [--device cpu] [--data /tmp/toy-10k]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch
from common import add_args, count_flops, start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_args(parser, repeats=3)
    parser.add_argument("--sizes", default="1000,10000", help="collection sizes (comma list)")
    parser.add_argument("--px", type=int, default=64, help="toy image side = style model input size")
    parser.add_argument("--search-n", type=int, default=100_000, help="random embeddings for the search-only case")
    parser.add_argument("--data", type=Path, default=None, help="keep the toy images here and reuse them on the next run")
    args = parser.parse_args()
    bench = start("similar", args)

    from stylekit.configs.search import SimilarConfig
    from stylekit.data.toy import TOY_STYLES, generate_toy_styles
    from stylekit.metrics.retrieval import nearest_neighbours
    from stylekit.metrics.search import similar_images
    from stylekit.metrics.style import export_style_model
    from stylekit.nets.style_embedding import StyleNet, StyleNetConfig

    sizes = [int(s) for s in args.sizes.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="stylekit-bench-similar-"))
    os.environ["STYLEKIT_HOME"] = str(tmp / "home")
    styles = len(TOY_STYLES)
    data = args.data or tmp / "toy"
    per_style = -(-max(sizes) // styles)
    files = sorted(p for p in data.rglob("*.png") if p.parent.name != "content") if data.is_dir() else []
    if len(files) < max(sizes):
        t = time.perf_counter()
        generate_toy_styles(data, size=args.px, per_style=per_style, styles=styles, seed=0)
        files = sorted(p for p in data.rglob("*.png") if p.parent.name != "content")
        bench.result("toy generation (not part of any case)", {"images": len(files), "px": args.px},
                     time.perf_counter() - t, items=len(files))

    torch.manual_seed(0)
    model = tmp / "model"
    net = StyleNet(StyleNetConfig("small-cnn", styles, 256)).eval()
    export_style_model(net, model, {"size": args.px, "classes": list(TOY_STYLES)})
    with torch.no_grad():
        flops_per_image = count_flops(lambda: net.embed(torch.zeros(1, 3, args.px, args.px)))
    query = str(files[0])
    for n in sizes:
        listing = tmp / f"collection-{n}.txt"
        listing.write_text("\n".join(str(p) for p in files[:n]) + "\n")
        cfg = SimilarConfig(queries=[query], collection=[str(listing)], style_model=str(model), k=10, device=args.device, batch=64,
                            cache_dir=str(tmp / f"cache-{n}"))  # each case starts from an empty index
        config = {"collection": n, "px": args.px, "embedder": "style (small-cnn, 256-d)", "k": 10, "device": args.device,
                  "threads": torch.get_num_threads()}
        t = time.perf_counter()
        first = similar_images(cfg)
        seconds = time.perf_counter() - t
        bench.result("similar: index build (empty cache, 1 query)", config, seconds, items=n,
                     flops=flops_per_image * (n + 1), images_embedded=first.features["collection"]["computed"])
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            again = similar_images(cfg)
            times.append(time.perf_counter() - t)
        bench.result(f"similar: query latency (cached index, best of {args.repeats})", config, min(times),
                     images_embedded=again.features["collection"]["computed"])

    g = torch.Generator().manual_seed(0)
    db = torch.nn.functional.normalize(torch.randn(args.search_n, 256, generator=g), dim=1).to(args.device)
    q = torch.nn.functional.normalize(torch.randn(10, 256, generator=g), dim=1).to(args.device)
    t = time.perf_counter()
    nearest_neighbours(q, db, 10)
    bench.result("exact search only (10 queries, chunked matmul)", {"collection": args.search_n, "dim": 256, "device": args.device},
                 time.perf_counter() - t, flops=2 * 10 * args.search_n * 256, embeddings_mb=round(db.numel() * 4 / 2**20, 1))


if __name__ == "__main__":
    main()
