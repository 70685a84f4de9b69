"""Generated images as a metric source: `score --network N --num-gen 50000 REF` without writing PNGs.

Sample i is seed `seed + i`, mapped and synthesised exactly as `stylekit generate --seeds` does
(NVlabs' z of a seed, --trunc, constant noise, the same uint8 quantisation), so the features equal
those of the PNG files `generate` would write (up to float differences between batch layouts). The
generator runs on the device in batches; each uint8 batch goes through the extractor's own per-image
preprocessing (clean-fid's resize for Inception) and model, the path a decoded PNG takes. Features
are kept in memory, so several metrics on one extractor generate once.

Under torchrun (`dist`) each rank generates its contiguous block of the seeds (`shard`) and the
features are gathered in rank order, i.e. seed order: every rank holds all n rows, as one process would.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from PIL import Image

from stylekit.errors import BadInput
from stylekit.io.console import get_console
from stylekit.metrics.features import FeatureExtractor, run_model
from stylekit.nets.stylegan2.sampling import map_seeds, synthesize, to_uint8
from stylekit.train.distributed import DistInfo, agree, gather_lists, gather_rows, shard


class GeneratorSource:
    def __init__(self, G: Any, source: str, seed: int = 0, trunc: float = 1.0, batch: int = 32,
                 dist: DistInfo | None = None) -> None:
        if getattr(G, "c_dim", 0):
            raise BadInput(f"--network {source}: a conditional network ({G.c_dim} classes); score --network needs an unconditional one",
                           hint="generate per class with `stylekit generate --class K` and score the folders")
        self.G = G
        self.source = source
        self.seed = seed
        self.trunc = trunc
        self.batch = max(1, batch)
        self.dist = dist
        self.generated = 0  # the job's samples (all ranks together)
        self.per_rank: list[int] = []  # under torchrun: samples each rank generated for the largest count, in rank order
        self._feats: dict[str, np.ndarray] = {}

    def seeds(self, n: int) -> list[int]:
        """Seeds of the first n samples (ScoreConfig checked that they stay below 2^32)."""
        return list(range(self.seed, self.seed + n))

    def uint8_batches(self, n: int, description: str = "generate") -> Iterator[np.ndarray]:
        """[b, R, R, C] uint8 batches of this rank's block of the first n samples (all n in one process)."""

        block = shard(n, self.dist)
        seeds = self.seeds(n)[block.start : block.stop]
        ranks = self.dist.world_size if self.dist is not None else 1
        with get_console().progress(n, description, ranks=ranks) as task:
            for i in range(0, len(seeds), self.batch):
                chunk = seeds[i : i + self.batch]
                ws = map_seeds(self.G, chunk, self.trunc)
                yield to_uint8(synthesize(self.G, ws, "const", chunk, self.batch))
                task.advance(len(chunk))

    def features(self, extractor: FeatureExtractor, n: int) -> np.ndarray:
        """[n, dim] features of the first n samples (computed once per extractor, sliced after); under
        torchrun every rank computes its block and every rank returns all n rows in seed order."""
        have = self._feats.get(extractor.name)
        if have is not None and len(have) >= n:
            return have[:n]
        mine = agree(lambda: self._block_features(extractor, n), self.dist)
        feats = gather_rows(mine, self.dist)
        if self.dist is not None and self.dist.distributed and n >= self.generated:
            self.per_rank = gather_lists([len(mine)], self.dist)
        self.generated = max(self.generated, n)
        self._feats[extractor.name] = feats
        return feats

    def _block_features(self, extractor: FeatureExtractor, n: int) -> np.ndarray:
        """[block, dim] features of this rank's block of the first n samples."""
        rows: list[np.ndarray] = []

        def prepare(a: np.ndarray) -> Any:
            return extractor.preprocess(Image.fromarray(a if a.shape[-1] != 1 else a[..., 0]).convert("RGB"))

        # The per-image resize runs on the CPU (clean-fid's PIL resize releases the GIL): threads keep
        # it from starving the device at 50k images; map() keeps the order.
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            for arr in self.uint8_batches(n, f"{extractor.name} features of generated images"):
                rows += run_model(extractor, list(pool.map(prepare, arr)))
        feats = np.stack(rows).astype(np.float32) if rows else np.zeros((0, extractor.dim), np.float32)
        if feats.shape[1] != extractor.dim:
            raise BadInput(f"extractor {extractor.name} returned {feats.shape[1]} values, expected {extractor.dim}")
        return feats

    def summary(self) -> dict[str, Any]:
        last = self.seed + self.generated - 1
        out = {"source": self.source, "network": self.source, "n": self.generated, "used": self.generated,
               "seeds": f"{self.seed}-{last}" if self.generated else None, "trunc": self.trunc, "noise_mode": "const", "skipped": []}
        return out | ({"generated_per_rank": self.per_rank} if self.per_rank else {})
