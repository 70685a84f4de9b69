"""The one train/val/test split every command uses (prepare --split, train-classifier --split, pix2pix).

A split is a function of the *keys* (paths relative to DATA), their labels, the fractions and the
seed only, never of listing order or of the command: the same folder and seed give the same split
in `stylekit prepare` and in `stylekit train-classifier`. Within each label the keys are sorted,
shuffled with a generator seeded by (seed, crc32(label)), and cut by largest-remainder quotas; a
split with a positive fraction gets at least one key when the label has enough keys for every such
split (so three images at 0.8,0.1,0.1 give one each, not three train images).
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from stylekit.data.manifest import SPLITS


def split_counts(n: int, fractions: Sequence[float]) -> list[int]:
    """How many of `n` keys go to each split: largest remainder, then >= 1 per positive fraction if n allows."""
    quotas = [f * n for f in fractions]
    counts = [int(q) for q in quotas]
    for k in sorted(range(len(fractions)), key=lambda k: (-(quotas[k] - counts[k]), k))[: n - sum(counts)]:
        counts[k] += 1
    wanted = [k for k, f in enumerate(fractions) if f > 0]
    if n >= len(wanted):
        for k in wanted:
            if counts[k] == 0:
                donor = max(range(len(counts)), key=lambda j: (counts[j], -j))
                counts[donor] -= 1
                counts[k] += 1
    return counts


def split_keys(keys: Sequence[str], fractions: Sequence[float], seed: int,
               labels: Sequence[str] | None = None) -> list[str]:
    """Split name ("train", "val", "test"; one per fraction) for each key, stratified by `labels`."""
    names = SPLITS[: len(fractions)]
    by_label: dict[str, list[int]] = defaultdict(list)
    for i in range(len(keys)):
        by_label[labels[i] if labels is not None else ""].append(i)
    out = [""] * len(keys)
    for label, idx in sorted(by_label.items()):
        idx = sorted(idx, key=lambda i: (keys[i], i))
        perm = np.random.default_rng([seed, zlib.crc32(label.encode("utf-8", "surrogateescape"))]).permutation(len(idx))
        pos = 0
        for name, count in zip(names, split_counts(len(idx), fractions), strict=True):
            for j in perm[pos : pos + count]:
                out[idx[j]] = name
            pos += count
    return out


def split_groups(groups: Sequence[str], fractions: Sequence[float], seed: int) -> list[str]:
    """Split name per position, whole groups at a time: every pair of one composition (one A image)
    lands in the same split, so held-out pairs show compositions never trained on."""
    unique = sorted(set(groups))
    per_group = dict(zip(unique, split_keys(unique, fractions, seed), strict=True))
    return [per_group[g] for g in groups]
