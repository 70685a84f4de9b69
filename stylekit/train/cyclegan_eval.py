"""train-cyclegan's per-epoch measurements on held-out images, the samples sheet and the run's index.html.

Cycle error: mean |F(G(a)) - a| over held-out A (and |G(F(b)) - b| over held-out B), in [0, 1] pixel
units. With a judge (a `train-classifier` style model, `--judge`), also:

- `judge_share_b`: the share of translated held-out A, G(a), that the judge classifies as B's style;
  `judge_share_b_untranslated`: the same share for the held-out A images as they are (the baseline).
- `judge_style_distance`: 1 - cosine similarity between the mean style embedding of G(a) and that of
  the held-out real B images (0 = the same style centroid, up to 2); `..._untranslated`: for A itself.

Each process takes every world_size-th image; sums are reduced over the processes in one collective
and read once, at the epoch boundary.
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import torch
from torch import nn

from stylekit.data.grid import save_labelled_grid
from stylekit.data.unpaired import HeldOut
from stylekit.device import autocast
from stylekit.errors import BadInput
from stylekit.io.atomic import write_text_atomic
from stylekit.metrics.style import load_style_model
from stylekit.train.distributed import DistInfo, all_reduce_mean

CHUNK = 16


@dataclass
class Judge:
    """A loaded style model and the index of B's style among its classes."""

    model: Any  # stylekit.metrics.style.StyleModel
    b_class: str
    b_index: int


def load_judge(path: Path, b_class: str | None, b_source: Path, device: torch.device) -> Judge:
    """The judge style model on `device`; BadInput when it is not a classifier or has no class for B."""

    try:
        model = load_style_model(path, device)
        model.require_head()
    except BadInput as exc:
        raise BadInput(f"--judge: {exc.message}", hint=exc.hint) from None
    name = b_class or (b_source.stem if b_source.is_file() else b_source.name)
    if name not in model.classes:
        raise BadInput(f"--judge {path}: B's style '{name}' is not one of its classes ({', '.join(model.classes)})",
                       hint="name B's class with --judge-class NAME")
    return Judge(model, name, model.classes.index(name))


def _judge_sums(judge: Judge, images: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(number classified as B, sum of the L2-normalised embeddings) of images in [-1, 1]."""
    hits = torch.zeros((), device=judge.model.device, dtype=torch.float64)
    emb = torch.zeros(judge.model.embed_dim, device=judge.model.device, dtype=torch.float64)
    for start in range(0, len(images), CHUNK):
        x = (torch.stack(images[start : start + CHUNK]).float() + 1) / 2
        hits += (judge.model.classify(x).argmax(1) == judge.b_index).sum()
        emb += judge.model.embed(x).double().sum(0)
    return hits, emb


def _distance(u: torch.Tensor, v: torch.Tensor) -> float:
    return float(1 - torch.nn.functional.cosine_similarity(u[None], v[None]).item())


@torch.no_grad()
def evaluate(g_ab: nn.Module, g_ba: nn.Module, val_a: HeldOut, val_b: HeldOut, dist: DistInfo, limit: int, amp: bool,
             judge: Judge | None) -> dict[str, float | None]:
    """Held-out cycle errors (and the judge's figures); None where a set is empty."""
    device = dist.device
    was = g_ab.training, g_ba.training
    g_ab.eval()
    g_ba.eval()
    parts: list[torch.Tensor] = []
    translated: list[torch.Tensor] = []
    originals: list[torch.Tensor] = []
    real_b: list[torch.Tensor] = []
    for val, fwd, back, is_a in ((val_a, g_ab, g_ba, True), (val_b, g_ba, g_ab, False)):
        n = min(len(val), limit) if limit > 0 else len(val)
        total = torch.zeros(2, device=device, dtype=torch.float64)
        for j in range(dist.rank, n, dist.world_size):
            x = val[j * len(val) // n][None].to(device)  # evenly spread over the held-out set
            with autocast(device, amp):
                y = fwd(x)
                rec = back(y)
            total[0] += ((rec.float() - x).abs().mean() / 2).double()
            total[1] += 1
            if judge is not None and is_a:
                translated.append(y[0].float())
                originals.append(x[0])
            elif judge is not None:
                real_b.append(x[0])
        parts.append(total)
    if judge is not None:
        for images in (translated, originals, real_b):
            hits, emb = _judge_sums(judge, images)
            parts += [hits[None].to(device), emb.to(device)]
    g_ab.train(was[0])
    g_ba.train(was[1])
    flat = all_reduce_mean(torch.cat(parts), dist).cpu()  # sums / world: every ratio below is unaffected
    out: dict[str, float | None] = {
        "cycle_error_a": float(flat[0] / flat[1]) if flat[1] > 0 else None,
        "cycle_error_b": float(flat[2] / flat[3]) if flat[3] > 0 else None,
    }
    if judge is not None:
        d = judge.model.embed_dim
        off = 4
        hits_t, emb_t = flat[off], flat[off + 1 : off + 1 + d]
        hits_o, emb_o = flat[off + 1 + d], flat[off + 2 + d : off + 2 + 2 * d]
        emb_b = flat[off + 3 + 2 * d : off + 3 + 3 * d]
        n_a = flat[1]
        out |= {
            "judge_share_b": float(hits_t / n_a) if n_a > 0 else None,
            "judge_share_b_untranslated": float(hits_o / n_a) if n_a > 0 else None,
            "judge_style_distance": _distance(emb_t, emb_b) if n_a > 0 and flat[3] > 0 else None,
            "judge_style_distance_untranslated": _distance(emb_o, emb_b) if n_a > 0 and flat[3] > 0 else None,
        }
    return out


# ---------------------------------------------------------------------------------- samples sheet
COLUMNS = ("A", "A->B", "A->B->A", "B", "B->A", "B->A->B")


@torch.no_grad()
def sample_sheet(g_ab: nn.Module, g_ba: nn.Module, a_images: list[torch.Tensor], b_images: list[torch.Tensor],
                 device: torch.device, amp: bool, path: Path) -> Path:
    """One row per (A, B) pair under labelled columns: A | A->B | A->B->A | B | B->A | B->A->B."""

    was = g_ab.training, g_ba.training
    g_ab.eval()
    g_ba.eval()
    rows: list[list[torch.Tensor]] = []
    for a, b in zip(a_images, b_images, strict=False):
        row: list[torch.Tensor] = []
        for x, fwd, back in ((a, g_ab, g_ba), (b, g_ba, g_ab)):
            x = x[None].to(device)
            with autocast(device, amp):
                y = fwd(x)
                rec = back(y)
            row += [(t[0].float().cpu() + 1) / 2 for t in (x, y, rec)]
        rows.append(row)
    g_ab.train(was[0])
    g_ba.train(was[1])
    return save_labelled_grid(path, rows, list(COLUMNS))


# ------------------------------------------------------------------------------------ index.html
PAGE = "index.html"
_SHOWN = ("cycle_error_a", "cycle_error_b", "judge_share_b", "judge_share_b_untranslated", "judge_style_distance", "lr")


def write_index(out: Path, epochs: list[dict[str, Any]], samples: Path, title: str) -> Path:
    """OUT/index.html: one section per epoch, newest first, with its samples sheet and held-out figures."""

    blocks = []
    for record in sorted(epochs, key=lambda r: -int(r.get("epoch", 0))):
        epoch = int(record.get("epoch", 0))
        figures = ", ".join(f"{k} {record[k]:.4g}" for k in _SHOWN if isinstance(record.get(k), int | float))
        sheet = samples / f"epoch-{epoch:04d}.png"
        image = ""
        if sheet.is_file():
            href = quote(os.path.relpath(sheet, out).replace(os.sep, "/"))
            image = f'<p><a href="{href}"><img src="{href}" style="max-width:100%"></a></p>'
        blocks.append(f"<h3>epoch {epoch} (step {int(record.get('step', 0))})</h3>\n<p>{html.escape(figures)}</p>\n{image}")
    body = "\n".join(blocks) or "<p>no epoch finished yet</p>"
    page = (f"<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title></head>\n<body>\n"
            f"<h1>{html.escape(title)}</h1>\n<p>columns: {' | '.join(html.escape(c) for c in COLUMNS)}</p>\n{body}\n</body></html>\n")
    return write_text_atomic(out / PAGE, page)
