"""Metrics at training snapshots (`finetune-stylegan --metrics fid10k,kid10k,ppl2_wend`), from the one registry.

The trainer calls `parse_snapshot_metrics` once (bad names fail before training starts),
`missing_weights` once (missing feature-net weights skip the metrics with a warning instead of
stopping a long run), and `snapshot_metrics` at each snapshot on every rank: the metrics of the
in-memory G_ema against the training data through `score_sets` in the trainer's job (no PNGs written;
each rank generates its block of the seeds and computes its block of the data's uncached features, which
come from the feature cache after the first snapshot; rank 0 writes). Each metric is also appended to the run's
`metric-<name>.jsonl` in NVlabs' format ({"results", "metric", "total_time", "total_time_str",
"num_gpus", "snapshot_pkl", "timestamp"}), so NVlabs' tooling reads stylekit runs.
"""

from __future__ import annotations

import time
from typing import Any

from stylekit.errors import BadInput, MissingResource
from stylekit.metrics.registry import FAMILIES, MetricSpec, check_counts, parse_metrics
from stylekit.metrics.score import ScoreConfig, required_weights, score_sets
from stylekit.train.distributed import DistInfo, agree
from stylekit.weights import weights_path


def parse_snapshot_metrics(names: list[str], num_gen: int | None = None) -> list[MetricSpec]:
    """--metrics names ("none" = no metrics) with --num-gen `num_gen`; a metric that needs two
    image sets, or more images than it would get, is refused."""
    wanted = [n for n in names if n.strip().lower() != "none"]
    specs = parse_metrics(wanted) if wanted else []
    if num_gen is not None:
        check_counts(specs, lambda s: s.num_gen or num_gen, f"--num-gen {num_gen}")
    for spec in specs:
        if FAMILIES[spec.family].images_only:
            raise BadInput(f"--metrics {spec.name} compares two image sets; it cannot score the generator",
                           hint="use fid, kid, pr, is or ppl names (e.g. fid10k,kid10k,ppl2_wend)")
    return specs


def missing_weights(specs: list[MetricSpec]) -> str | None:
    """Why the metrics cannot run (a weights file that is not cached), or None when they can."""

    kinds = [k for s in specs for k in FAMILIES[s.family].features] + (["lpips"] if any(s.family == "ppl" for s in specs) else [])
    for name in required_weights(list(dict.fromkeys(kinds))):
        try:
            weights_path(name)
        except MissingResource as exc:
            return f"{exc.message}; fetch them with `stylekit download {name}` and rerun"
    return None


def _time_str(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}h {s // 60 % 60:02d}m {s % 60:02d}s" if s >= 3600 else f"{s // 60}m {s % 60:02d}s" if s >= 60 else f"{s}s"


def snapshot_metrics(G: Any, specs: list[MetricSpec], data: str, run_dir: Any, snapshot: str, dist: DistInfo,
                     num_gen: int, seed: int = 0) -> dict[str, float]:
    """The metrics of generator G vs `data`, computed by every rank of the trainer's job `dist` (each its
    share; called by all of them); returns NVlabs' flat results ({"fid10k": ..., "pr50k3_full_precision": ...})
    on every rank. Rank 0 appends the metric-<name>.jsonl lines."""

    report = score_sets(ScoreConfig(b=data, network=snapshot, generator=G, metrics=[s.name for s in specs], default_num_gen=num_gen,
                                    device=str(dist.device), seed=seed, kid_subset_size=min(1000, num_gen)), dist)
    flat: dict[str, float] = {}
    lines: list[tuple[str, dict[str, Any]]] = []
    for spec in specs:
        doc = report.metrics[spec.name]
        results = FAMILIES[spec.family].results(spec.name, doc)
        flat.update(results)
        lines.append((f"metric-{spec.name}.jsonl", {
            "results": results, "metric": spec.name, "total_time": doc["seconds"], "total_time_str": _time_str(doc["seconds"]),
            "num_gpus": dist.world_size, "snapshot_pkl": snapshot, "timestamp": time.time()}))

    def write() -> None:
        for name, record in lines:
            run_dir.append_jsonl(name, record)

    agree(lambda: write() if dist.is_main else None, dist)
    return flat
