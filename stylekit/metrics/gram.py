"""Gram-matrix style distance (the Gatys et al. style representation) and a compact Gram embedding.

Gram matrices G_l = F_l F_l^T / (C_l H_l W_l) of VGG19 features at relu1_1..relu5_1 (nets.vgg),
images resized to `size` x `size` (shorter side + centre crop, Lanczos).

- Set distance: gram(A, B) = 1/L sum_l || mean_{a in A} G_l(a) - mean_{b in B} G_l(b) ||_F.
  It streams (only the running sums are kept), so set size costs time, not memory.
- Pair distance (--pairs): gram(a, b) = 1/L sum_l || G_l(a) - G_l(b) ||_F, and its mean over pairs.
- `GramSketchExtractor` (`--style-model gram`): per layer the upper triangle of G_l (off-diagonal
  entries x sqrt(2), so Euclidean geometry equals the Frobenius one) is count-sketched to 256
  dimensions with a fixed seed (random bucket and sign per entry: inner products are preserved in
  expectation), L2-normalised per layer, concatenated (5 x 256 = 1280-d) and L2-normalised again.
  Gram matrices themselves are 305k numbers per image, too large to cache; the sketch is cacheable.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from stylekit.data.images import ImageReport
from stylekit.data.imageset import ImageItem, SquareResize, decode_item, iter_images
from stylekit.errors import BadImage
from stylekit.io.console import get_console
from stylekit.nets.vgg import VGGFeatures, gram_matrix
from stylekit.train.distributed import DistInfo, all_gather_object, gather_lists, gather_rows

GRAM_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
SKETCH_DIM = 256


def load_gram_vgg(weights: str | None = None, device: torch.device | str = "cpu", random_init: bool = False) -> Any:
    """VGG19 features at GRAM_LAYERS: registry `vgg19` unless `weights` is a path (random only for tests)."""

    net = VGGFeatures(arch="vgg19", layers=GRAM_LAYERS, weights=None if random_init else (weights or "vgg19"), pooling="max")
    return net.to(device).eval()


def grams(net: Any, images: torch.Tensor) -> dict[str, torch.Tensor]:

    device = next(net.parameters()).device
    with torch.inference_mode():
        feats = net(images.to(device))
    return {name: gram_matrix(f) for name, f in feats.items()}


@dataclass
class GramAccumulator:
    """Running sum of Gram matrices per layer."""

    sums: dict[str, torch.Tensor] = field(default_factory=dict)
    count: int = 0
    per_rank: list[int] = field(default_factory=list)  # after `gathered` under torchrun: images each rank summed

    def add(self, g: dict[str, torch.Tensor]) -> None:
        for name, mats in g.items():
            s = mats.double().sum(0).cpu()
            self.sums[name] = self.sums[name] + s if name in self.sums else s
        self.count += next(iter(g.values())).shape[0]

    def mean(self) -> dict[str, torch.Tensor]:
        return {k: v / max(self.count, 1) for k, v in self.sums.items()}

    def gathered(self, dist: DistInfo | None) -> GramAccumulator:
        """The job's accumulator on every rank: the ranks' float64 sums added and their counts (under
        torchrun each rank summed its block of a set; a rank without readable images sent no layers)."""
        if dist is None or not dist.distributed:
            return self
        layouts = all_gather_object([(k, tuple(v.shape)) for k, v in self.sums.items()], dist)
        layout = next((entry for entry in layouts if entry), [])
        flat = np.concatenate([self.sums[k].numpy().ravel() if k in self.sums else np.zeros(math.prod(shape))
                               for k, shape in layout]) if layout else np.zeros(0)
        total = gather_rows(flat[None], dist).sum(0)
        sums, at = {}, 0
        for name, shape in layout:
            size = math.prod(shape)
            sums[name] = torch.from_numpy(total[at : at + size].reshape(shape).copy())
            at += size
        counts = gather_lists([self.count], dist)
        return GramAccumulator(sums, sum(counts), counts)


def set_gram_stats(net: Any, items: list[ImageItem], size: int, batch_size: int, workers: int,
                   report: ImageReport, description: str) -> GramAccumulator:
    acc = GramAccumulator()
    for batch in iter_images(items, size, batch_size, workers, report, description):
        acc.add(grams(net, batch.images))
    return acc


def gram_distance(mean_a: dict[str, torch.Tensor], mean_b: dict[str, torch.Tensor]) -> tuple[float, dict[str, float]]:
    per_layer = {k: float(torch.linalg.matrix_norm(mean_a[k] - mean_b[k])) for k in mean_a}
    return float(np.mean(list(per_layer.values()))), per_layer


def _load_pair_image(item: ImageItem, prep: SquareResize, report: ImageReport) -> torch.Tensor | None:
    try:
        return prep(decode_item(item))
    except BadImage as exc:
        report.skip(item.key_path if item.member is None else f"{item.file}::{item.member}", exc.reason)
        return None


def pair_gram_distances(net: Any, pairs: list[tuple[ImageItem, ImageItem]], size: int, batch_size: int,
                        report: ImageReport) -> dict[str, float]:
    """Mean-over-layers Frobenius distance per matched pair, keyed by the pair's relative name."""

    prep = SquareResize(size, Image.Resampling.LANCZOS)
    out: dict[str, float] = {}
    with get_console().progress(len(pairs), "gram pairs") as task:
        for start in range(0, len(pairs), max(1, batch_size)):
            chunk = pairs[start : start + max(1, batch_size)]
            loaded = [(a, _load_pair_image(a, prep, report), _load_pair_image(b, prep, report)) for a, b in chunk]
            loaded = [(a, ta, tb) for a, ta, tb in loaded if ta is not None and tb is not None]
            task.advance(len(chunk))
            if not loaded:
                continue
            ga = grams(net, torch.stack([t for _, t, _ in loaded]))
            gb = grams(net, torch.stack([t for _, _, t in loaded]))
            dist = torch.stack([torch.linalg.matrix_norm(ga[k] - gb[k]) for k in ga]).mean(0)
            for (a, _, _), d in zip(loaded, dist.tolist(), strict=True):
                out[a.stem] = float(d)
    return out


class GramSketchExtractor:
    """A 1280-d L2-normalised embedding of an image's Gram matrices (see module docstring)."""

    cleanfid_decode = False

    def __init__(self, net: Any, size: int = 256, weights_id: str = "vgg19", seed: int = 0, layers: Iterable[str] = GRAM_LAYERS) -> None:
        self.net = net
        self.layers = tuple(layers)
        self.name = f"gram-sketch:{weights_id}:seed{seed}"
        self.mode = f"{size}px"
        self.dim = SKETCH_DIM * len(self.layers)
        self.preprocess = SquareResize(size)
        self._plans: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        self.seed = seed

    def _plan(self, c: int, layer_index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        if c not in self._plans:
            rows, cols = torch.triu_indices(c, c)
            gen = torch.Generator(device="cpu").manual_seed(self.seed * 1000 + layer_index)
            bucket = torch.randint(0, SKETCH_DIM, (rows.numel(),), generator=gen, device="cpu")
            sign = torch.randint(0, 2, (rows.numel(),), generator=gen, device="cpu").float() * 2 - 1
            sign = sign * torch.where(rows == cols, 1.0, math.sqrt(2.0))
            self._plans[c] = (rows, cols, bucket, sign)
        return self._plans[c]

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        g = grams(self.net, batch)
        parts = []
        for index, name in enumerate(self.layers):
            mats = g[name].cpu()
            rows, cols, bucket, sign = self._plan(mats.shape[-1], index)
            vec = mats[:, rows, cols] * sign
            sketch = torch.zeros(mats.shape[0], SKETCH_DIM, device="cpu").index_add_(1, bucket, vec)
            parts.append(F.normalize(sketch, dim=1))
        return F.normalize(torch.cat(parts, dim=1), dim=1)
