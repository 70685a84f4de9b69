"""What train-classifier writes at the end: metrics JSON, per-class table, confusion matrix, curves,
nearest-neighbour sheet. Plots use matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import torch

from stylekit.data.datasets import resize_center_crop
from stylekit.data.grid import save_labelled_grid
from stylekit.data.images import load_tensor
from stylekit.io.atomic import write_atomic, write_json_atomic, write_text_atomic


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save_figure(fig: Any, path: Path) -> Path:

    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))
    _plt().close(fig)
    return path


def write_per_class(out: Path, classes: list[str], cm: torch.Tensor, accuracy: list[float | None]) -> None:
    """per_class_accuracy.json and .csv: class, support, correct, accuracy."""
    rows = []
    for i, name in enumerate(classes):
        rows.append({"class": name, "support": int(cm[i].sum()), "correct": int(cm[i, i]), "accuracy": accuracy[i]})
    write_json_atomic(out / "per_class_accuracy.json", rows)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["class", "support", "correct", "accuracy"], lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({**r, "accuracy": "" if r["accuracy"] is None else f"{r['accuracy']:.4f}"})
    write_text_atomic(out / "per_class_accuracy.csv", buf.getvalue())


def plot_confusion(path: Path, classes: list[str], cm: torch.Tensor, title: str) -> Path:
    """Row-normalised confusion matrix (rows: true style, columns: predicted)."""
    plt = _plt()
    c = len(classes)
    norm = cm.double() / cm.sum(1, keepdim=True).clamp(min=1)
    side = min(4 + 0.35 * c, 16)
    fig, ax = plt.subplots(figsize=(side, side))
    im = ax.imshow(norm.numpy(), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(c), labels=classes, rotation=90, fontsize=8)
    ax.set_yticks(range(c), labels=classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if c <= 16:
        for i in range(c):
            for j in range(c):
                if cm[i, j]:
                    ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    return _save_figure(fig, path)


def plot_curves(path: Path, records: list[dict[str, Any]]) -> Path | None:
    """Train loss parts and val top-1 / mAP@10 / Recall@1 per epoch."""
    records = [r for r in records if "epoch" in r]
    if not records:
        return None
    plt = _plt()
    epochs = [r["epoch"] for r in records]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for key in ("train_loss", "train_ce", "train_supcon"):
        if any(key in r for r in records):
            a.plot(epochs, [r.get(key, float("nan")) for r in records], marker="o", label=key.removeprefix("train_"))
    a.set_xlabel("epoch")
    a.set_title("training loss")
    a.legend()
    for key in ("val_top1", "val_map@10", "val_recall@1", "val_macro_f1"):
        if any(key in r for r in records):
            b.plot(epochs, [r.get(key, float("nan")) for r in records], marker="o", label=key.removeprefix("val_"))
    b.set_xlabel("epoch")
    from matplotlib.ticker import MaxNLocator

    for ax in (a, b):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    b.set_ylim(0, 1.02)
    b.set_title("validation")
    b.legend()
    return _save_figure(fig, path)


def _framed(image: torch.Tensor, colour: tuple[float, float, float] | None, width: int = 3) -> torch.Tensor:
    if colour is None:
        return image
    out = image.clone()
    c = torch.tensor(colour, device="cpu").view(3, 1, 1)
    out[:, :width, :] = c
    out[:, -width:, :] = c
    out[:, :, :width] = c
    out[:, :, -width:] = c
    return out


def plot_neighbours(
    path: Path,
    query_items: list[tuple[Path, int]],
    db_items: list[tuple[Path, int]],
    neighbour_idx: torch.Tensor,
    size: int,
    classes: list[str],
    queries: int = 32,
    k: int = 5,
) -> Path | None:
    """One labelled row per style (up to `queries`): a query of that style, then its k nearest database
    images (green frame = same style, red = different), under "query | 1 | 2 ..." headers."""

    if not query_items or not db_items:
        return None
    chosen: list[int] = []
    seen: set[int] = set()
    for i, (_, c) in enumerate(query_items):
        if c not in seen:
            seen.add(c)
            chosen.append(i)
        if len(chosen) == queries:
            break
    chosen.sort(key=lambda i: query_items[i][1])
    tile = max(64, min(size, 128))
    rows = []
    kk = min(k, neighbour_idx.shape[1])
    for qi in chosen:
        qpath, qc = query_items[qi]
        row = [_framed(resize_center_crop(load_tensor(qpath), tile), (0.2, 0.2, 0.9))]
        for j in neighbour_idx[qi, :kk].tolist():
            dpath, dc = db_items[j]
            colour = (0.1, 0.75, 0.2) if dc == qc else (0.9, 0.15, 0.1)
            row.append(_framed(resize_center_crop(load_tensor(dpath), tile), colour))
        rows.append(row)
    labels = [classes[query_items[qi][1]] for qi in chosen]
    return save_labelled_grid(path, rows, ["query", *(f"neighbour {r + 1}" for r in range(kk))], labels)
