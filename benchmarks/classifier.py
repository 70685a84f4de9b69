"""train-classifier throughput (train and embed images/s) and the Gram-matrix retrieval baseline.

    python benchmarks/classifier.py                      # speed: toy config (small-cnn 64px) and resnet50 224px
    python benchmarks/classifier.py --gram DATA          # Gram baseline retrieval on DATA's test split

One JSON line per measurement (benchmarks/common.py: achieved GFLOP/s beside the matmul peaks).
Random-init weights everywhere (no downloads). Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from common import Bench, add_args, best_of, count_flops, start

from stylekit.nets.style_embedding import StyleNet, StyleNetConfig
from stylekit.train.losses import LossConfig, style_loss


def _emit(**doc: object) -> None:
    print(json.dumps(doc), flush=True)


def bench_model(bench: Bench, backbone: str, size: int, batch: int, repeats: int, classes: int = 8) -> None:
    device = bench.device
    net = StyleNet(StyleNetConfig(backbone, classes, 256)).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    loss_cfg = LossConfig("ce+supcon")
    x = torch.rand(batch, 3, size, size, device=device)
    y = torch.arange(batch, device=device) % classes
    config = {"backbone": backbone, "size": size, "batch": batch, "device": str(device), "threads": torch.get_num_threads(),
              "loss": "ce+supcon", "repeats": repeats, "stat": "min"}

    def train_step() -> None:
        logits, z = net(x)
        loss, _ = style_loss(loss_cfg, logits, z, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def embed() -> None:
        with torch.no_grad():
            net.embed(x)

    net.train()
    flops = count_flops(train_step)
    seconds = best_of({"train": train_step}, repeats, device)["train"]
    bench.result("train-classifier train step", config, seconds, items=batch, flops=flops, unit="images/s")
    net.eval()
    flops = count_flops(embed)
    seconds = best_of({"embed": embed}, repeats, device)["embed"]
    bench.result("style embed (inference)", config, seconds, items=batch, flops=flops, unit="images/s")


@torch.no_grad()
def gram_baseline(data: Path, layers: tuple[str, ...], seed: int = 0, size: int | None = None) -> dict[str, object]:
    """Retrieval with Gram matrices of a random-init VGG19 (test queries vs train database, like train-classifier)."""
    from stylekit.data.datasets import load_style_splits, resize_center_crop
    from stylekit.data.images import load_tensor
    from stylekit.metrics.retrieval import retrieval_metrics
    from stylekit.nets.vgg import VGGFeatures, gram_matrix

    splits = load_style_splits(data, seed=seed)
    vgg = VGGFeatures("vgg19", layers=layers, weights=None, seed=seed)

    def features(items: list[tuple[Path, int]]) -> torch.Tensor:
        out = []
        for first in range(0, len(items), 64):
            imgs = [load_tensor(p) for p, _ in items[first : first + 64]]
            x = torch.stack([resize_center_crop(i, size or i.shape[-1]) for i in imgs])
            feats = vgg(x)
            parts = []
            for name in layers:
                g = gram_matrix(feats[name])
                iu = torch.triu_indices(g.shape[1], g.shape[2])
                parts.append(torch.nn.functional.normalize(g[:, iu[0], iu[1]], dim=1))
            out.append(torch.nn.functional.normalize(torch.cat(parts, dim=1), dim=1))
        return torch.cat(out)

    t = time.perf_counter()
    q, db = features(splits.items["test"]), features(splits.items["train"])
    m = retrieval_metrics(q, torch.tensor(splits.labels("test")), db, torch.tensor(splits.labels("train")), k=10)
    return {"what": "gram baseline retrieval (random-init VGG19)", "config": {"data": str(data), "layers": list(layers),
            "queries": len(splits.items["test"]), "database": len(splits.items["train"]), "seed": seed},
            "seconds": round(time.perf_counter() - t, 2), **m}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gram", type=Path, help="run the Gram baseline on this data folder instead of the speed runs")
    ap.add_argument("--layers", default="relu1_1,relu2_1,relu3_1")
    add_args(ap, repeats=3)
    args = ap.parse_args()
    if args.gram:
        _emit(**gram_baseline(args.gram, tuple(args.layers.split(","))))
        return
    bench = start("classifier", args)
    bench_model(bench, "small-cnn", 64, 64, args.repeats)
    bench_model(bench, "resnet50", 224, 16 if bench.device.type == "cpu" else 64, args.repeats, classes=27)


if __name__ == "__main__":
    main()
