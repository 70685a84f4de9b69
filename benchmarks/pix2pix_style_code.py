"""The pix2pix reference code as a style metric: retrieval mAP@10 with and without the code losses,
against the Gram baseline, and the held-out L1 right/wrong-reference ratio of both runs.

    python benchmarks/pix2pix_style_code.py                 # toy-styles 32 px, 6 styles x 24, 4 epochs, ngf 16 (docs/pix2pix.md)
    python benchmarks/pix2pix_style_code.py --size 64 --epochs 8 --ngf 32   # a longer study

Two train-pix2pix runs on the same toy-styles data (same seed): plain (`--ref-cls-weight 0
--ref-metric-weight 0`) and with both code losses. Each run's exported style model embeds a
held-out toy-styles set (new random layouts, seed 1); per style, half the images query the other
half. Gram baseline: random-init VGG19 Gram matrices (relu1_1..relu3_1), L2-normalised, same
queries. Prints one JSON line per model.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch


def _emit(**doc: object) -> None:
    print(json.dumps(doc), flush=True)


def _eval_set(root: Path, per_style: int, styles: int, size: int) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    from stylekit.data.images import list_images, load_tensor
    from stylekit.data.toy import generate_toy_styles

    generate_toy_styles(root, size=size, per_style=per_style, styles=styles, seed=1)
    names = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name != "content")
    images, labels = [], []
    for i, name in enumerate(names):
        for path in list_images(root / name):
            images.append(load_tensor(path))
            labels.append(i)
    return torch.stack(images), torch.tensor(labels), names


def _map10(z: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Per style, even-indexed images query the odd-indexed ones."""
    from stylekit.metrics.retrieval import retrieval_metrics

    order = torch.arange(len(labels))
    rank_in_style = torch.zeros_like(order)
    for c in labels.unique():
        idx = order[labels == c]
        rank_in_style[idx] = torch.arange(len(idx))
    q, db = rank_in_style % 2 == 0, rank_in_style % 2 == 1
    return retrieval_metrics(z[q], labels[q], z[db], labels[db], k=10)


def _gram_embed(images: torch.Tensor) -> torch.Tensor:
    from stylekit.metrics.gram import grams, load_gram_vgg

    net = load_gram_vgg(random_init=True)
    with torch.no_grad():
        g = grams(net, images)
    keep = [k for k in g if k in ("relu1_1", "relu2_1", "relu3_1")] or list(g)
    return torch.nn.functional.normalize(torch.cat([g[k].flatten(1) for k in keep], dim=1), dim=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--styles", type=int, default=6)
    ap.add_argument("--per-style", type=int, default=24)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--refs", type=int, default=3)
    ap.add_argument("--ngf", type=int, default=16, help="generator and discriminator width")
    ap.add_argument("--weights", default="1,1", help="--ref-cls-weight,--ref-metric-weight of the second run")
    ap.add_argument("--work", type=Path, default=None, help="keep the runs here (default: a temp folder)")
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))

    from stylekit.data.toy import generate_toy_styles
    from stylekit.metrics.style import load_style_model
    from stylekit.train.pix2pix import Pix2PixConfig, train_pix2pix

    work = args.work or Path(tempfile.mkdtemp(prefix="p2p-code-"))
    data = work / "toy"
    if not data.exists():
        generate_toy_styles(data, size=args.size, per_style=args.per_style, styles=args.styles, seed=0)
    images, labels, names = _eval_set(work / "eval", max(4, args.per_style // 2), args.styles, args.size)
    cls_w, metric_w = (float(x) for x in args.weights.split(","))
    for tag, (cw, mw) in (("plain", (0.0, 0.0)), ("code-losses", (cls_w, metric_w))):
        cfg = Pix2PixConfig(data=data, out=work / tag, refs=args.refs, size=args.size, epochs=args.epochs, decay_epochs=0,
                            batch=4, ngf=args.ngf, ndf=args.ngf, style_dim=64, device="cpu", seed=0, val_fraction=0.2,
                            samples=2, ref_cls_weight=cw, ref_metric_weight=mw)
        t0 = time.perf_counter()
        result = train_pix2pix(cfg)
        seconds = time.perf_counter() - t0
        model = load_style_model(work / tag)
        m = _map10(model.embed(images), labels)
        _emit(what="pix2pix reference code as style metric", run=tag, ref_cls_weight=cw, ref_metric_weight=mw,
              epochs=args.epochs, refs=args.refs, size=args.size, ngf=args.ngf, styles=args.styles, train_pairs=result.train_pairs,
              eval_images=len(labels), train_seconds=round(seconds, 1), **{k: round(float(v), 4) for k, v in m.items()},
              val_l1=round(result.val_l1 or 0, 4), val_l1_wrong_refs=round(result.val_l1_wrong_refs or 0, 4),
              val_ratio=round(result.ratio or 0, 4))
    m = _map10(_gram_embed(images), labels)
    _emit(what="pix2pix reference code as style metric", run="gram-baseline (random VGG19 relu1_1..3_1)",
          eval_images=len(labels), **{k: round(float(v), 4) for k, v in m.items()})


if __name__ == "__main__":
    main()
