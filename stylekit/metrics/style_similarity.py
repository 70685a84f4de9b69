"""Style similarity between two image sets in a style embedding space.

Embedders (`--style-model`):
- a style model export from `stylekit train-classifier` (issue #3; loaded by
  stylekit.metrics.style.load_style_model, `.embed(images) -> [N, D]` L2-normalised);
- `clip`: raw CLIP image embeddings, L2-normalised (the default: no training needed);
- `gram`: the 1280-d Gram sketch of VGG19 features (metrics.gram.GramSketchExtractor).

With u_i the L2-normalised embeddings of A and v_j those of B:
- cosine  = 1/(|A||B|) sum_ij u_i.v_j = (mean u).(mean v)   (1 = identical direction; higher = closer)
- fd      = Fréchet distance between Gaussians fitted to {u_i} and {v_j} ("style-FD"; lower = closer)
- nn_label_agreement (when both sets are class folders): the fraction of B images whose nearest
  A image (cosine) carries the same class-folder label.
- pairs (--pairs, A and B matched by relative path without extension): per-pair cosine u_a.v_b.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from stylekit.data.imageset import ImageItem
from stylekit.metrics.frechet import frechet_distance_features
from stylekit.metrics.mmd import l2_normalise


@dataclass
class StyleScores:
    cosine: float
    fd: float | None  # None when a set has one image: a Gaussian needs a spread
    nn_label_agreement: float | None
    nn_labelled: int  # B images that entered the agreement (0 when no labels)

    def to_dict(self) -> dict[str, Any]:
        return {"cosine": self.cosine, "fd": self.fd, "nn_label_agreement": self.nn_label_agreement, "nn_labelled": self.nn_labelled}


def mean_cross_cosine(emb_a: np.ndarray, emb_b: np.ndarray) -> float:
    u, v = l2_normalise(emb_a), l2_normalise(emb_b)
    return float(u.mean(0) @ v.mean(0))


def nn_label_agreement(emb_a: np.ndarray, labels_a: list[str | None], emb_b: np.ndarray, labels_b: list[str | None]) -> tuple[float | None, int]:
    """Fraction of labelled B rows whose nearest labelled A row (cosine) has the same label."""
    ia = [i for i, lab in enumerate(labels_a) if lab is not None]
    ib = [j for j, lab in enumerate(labels_b) if lab is not None]
    if not ia or not ib:
        return None, 0
    u, v = l2_normalise(emb_a[ia]), l2_normalise(emb_b[ib])
    nearest = np.argmax(v @ u.T, axis=1)
    hits = sum(labels_b[ib[j]] == labels_a[ia[k]] for j, k in enumerate(nearest))
    return hits / len(ib), len(ib)


def style_scores(emb_a: np.ndarray, labels_a: list[str | None], emb_b: np.ndarray, labels_b: list[str | None]) -> StyleScores:
    """Style scores of embeddings A vs B; labels (class folders, None for unlabelled) feed nn-label agreement.
    Style-FD needs two images per side (null otherwise)."""
    agreement, n = nn_label_agreement(emb_a, labels_a, emb_b, labels_b)
    fd = frechet_distance_features(l2_normalise(emb_a), l2_normalise(emb_b)) if min(len(emb_a), len(emb_b)) >= 2 else None
    return StyleScores(mean_cross_cosine(emb_a, emb_b), fd, agreement, n)


def match_pairs(items_a: list[ImageItem], items_b: list[ImageItem]) -> tuple[list[tuple[ImageItem, ImageItem]], list[str], list[str]]:
    """Pair A and B by relative path without extension; fall back to the bare file stem when that is
    unique on both sides. Returns (pairs, unmatched A names, unmatched B names)."""
    by_rel_b = {b.stem: b for b in items_b}
    pairs: list[tuple[ImageItem, ImageItem]] = []
    used_b: set[str] = set()
    rest_a = []
    for a in items_a:
        b = by_rel_b.get(a.stem)
        if b is not None and b.key_path not in used_b:
            pairs.append((a, b))
            used_b.add(b.key_path)
        else:
            rest_a.append(a)

    def base(it: ImageItem) -> str:
        return it.stem.rsplit("/", 1)[-1]

    rest_b = [b for b in items_b if b.key_path not in used_b]
    count_a: dict[str, int] = {}
    count_b: dict[str, int] = {}
    for it in rest_a:
        count_a[base(it)] = count_a.get(base(it), 0) + 1
    for it in rest_b:
        count_b[base(it)] = count_b.get(base(it), 0) + 1
    b_by_base = {base(b): b for b in rest_b}
    unmatched_a = []
    for a in rest_a:
        name = base(a)
        if count_a.get(name) == 1 and count_b.get(name) == 1:
            b = b_by_base[name]
            pairs.append((a, b))
            used_b.add(b.key_path)
        else:
            unmatched_a.append(a.rel)
    unmatched_b = [b.rel for b in items_b if b.key_path not in used_b]
    return pairs, unmatched_a, unmatched_b


def pair_cosines(pairs: list[tuple[ImageItem, ImageItem]], emb_a: np.ndarray, items_a: list[ImageItem],
                 emb_b: np.ndarray, items_b: list[ImageItem]) -> dict[str, float]:
    """Cosine similarity per matched pair (pairs whose images were skipped are left out)."""
    ia = {it.key_path: i for i, it in enumerate(items_a)}
    ib = {it.key_path: i for i, it in enumerate(items_b)}
    u, v = l2_normalise(emb_a), l2_normalise(emb_b)
    return {a.stem: float(u[ia[a.key_path]] @ v[ib[b.key_path]]) for a, b in pairs if a.key_path in ia and b.key_path in ib}
