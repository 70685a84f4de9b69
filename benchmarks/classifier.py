"""train-classifier throughput (train and embed images/s) and the Gram-matrix retrieval baseline.

    python benchmarks/classifier.py                      # speed: toy config (small-cnn 64px) and resnet50 224px
    python benchmarks/classifier.py --gram DATA          # Gram baseline retrieval on DATA's test split

One JSON line per measurement: {"what", "config", "seconds", "throughput", "peak_mem_mb", ...}.
Random-init weights everywhere (no downloads). Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stylekit.nets.style_embedding import StyleNet, StyleNetConfig  # noqa: E402
from stylekit.train.losses import LossConfig, style_loss  # noqa: E402


def _peak_mb() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _emit(**doc: object) -> None:
    print(json.dumps(doc), flush=True)


def bench_model(backbone: str, size: int, batch: int, steps: int, device: torch.device, classes: int = 8) -> None:
    net = StyleNet(StyleNetConfig(backbone, classes, 256)).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    loss_cfg = LossConfig("ce+supcon")
    x = torch.rand(batch, 3, size, size, device=device)
    y = torch.arange(batch, device=device) % classes
    config = {"backbone": backbone, "size": size, "batch": batch, "device": str(device), "threads": torch.get_num_threads(),
              "loss": "ce+supcon"}

    def train_step() -> None:
        logits, z = net(x)
        loss, _ = style_loss(loss_cfg, logits, z, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    net.train()
    train_step()  # warm-up
    t = time.perf_counter()
    for _ in range(steps):
        train_step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t
    _emit(what="train-classifier train step", config=config, seconds=round(dt / steps, 4),
          throughput=round(batch * steps / dt, 1), unit="images/s", peak_mem_mb=round(_peak_mb(), 1))
    net.eval()
    with torch.no_grad():
        net.embed(x)
        t = time.perf_counter()
        for _ in range(steps):
            net.embed(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t
    _emit(what="style embed (inference)", config=config, seconds=round(dt / steps, 4),
          throughput=round(batch * steps / dt, 1), unit="images/s", peak_mem_mb=round(_peak_mb(), 1))


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
        for start in range(0, len(items), 64):
            imgs = [load_tensor(p) for p, _ in items[start : start + 64]]
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
    ap.add_argument("--device", default="auto")
    ap.add_argument("--steps", type=int, default=3)
    args = ap.parse_args()
    if args.gram:
        _emit(**gram_baseline(args.gram, tuple(args.layers.split(","))))
        return
    from stylekit.device import resolve_device

    device = resolve_device(args.device)
    bench_model("small-cnn", 64, 64, args.steps, device)
    bench_model("resnet50", 224, 16 if device.type == "cpu" else 64, args.steps, device, classes=27)


if __name__ == "__main__":
    main()
