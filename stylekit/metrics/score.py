"""`stylekit score A B`: every set-vs-set metric in one call, through one feature cache.

`score_sets(ScoreConfig) -> ScoreReport`. Feature models are built by the factories in EXTRACTORS
(keys "inception", "clip", "style"); tests and benchmarks replace an entry to inject a tiny model.
Models load before any image is decoded, so missing weights fail fast (exit 3).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stylekit.errors import BadInput
from stylekit.io.console import get_console
from stylekit.metrics.embedders import GRAM_SIZE
from stylekit.metrics.features import (
    FeatureExtractor,
    FeatureResult,
    ImageSet,
    clip_extractor,
    extract_features,
    open_image_set,
)

METRICS = ("fid", "kid", "clip-fid", "cmmd", "style", "gram")
DEFAULT_METRICS = ("fid", "kid", "style")
STATS_METRICS = ("fid", "kid")  # what a precomputed-statistics B supports


@dataclass
class ScoreConfig:
    a: str
    b: str
    metrics: list[str] | None = None  # None: DEFAULT_METRICS
    mode: str = "clean"
    clip_model: str = "ViT-B-32"
    clip_weights: str | None = None
    style_model: str = "clip"  # a style model export path, "clip" or "gram"
    vgg_weights: str | None = None
    inception_weights: str | None = None
    size: int | None = None  # image side for gram/VGG inputs (default 256) and style models (default: their own)
    batch: int = 32
    workers: int = 0
    device: str = "auto"
    cache: bool = True
    cache_dir: str | None = None  # default $STYLEKIT_HOME/features
    pairs: bool = False
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    seed: int = 0
    out: str | None = None


@dataclass
class ScoreReport:
    a: dict[str, Any]
    b: dict[str, Any]
    metrics: dict[str, dict[str, Any]]
    models: dict[str, dict[str, Any]]
    features: list[dict[str, Any]]
    warnings: list[str]
    seconds: float
    config: dict[str, Any]
    pairs: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


ExtractorFactory = Callable[[ScoreConfig, torch.device], FeatureExtractor]


def _inception_factory(cfg: ScoreConfig, device: torch.device) -> FeatureExtractor:
    from stylekit.metrics.fid import InceptionExtractor

    return InceptionExtractor(cfg.mode, device, weights=cfg.inception_weights)


def _clip_factory(cfg: ScoreConfig, device: torch.device) -> FeatureExtractor:
    from stylekit.nets.clip import load_clip

    return clip_extractor(load_clip(cfg.clip_model, cfg.clip_weights, device))


def _style_factory(cfg: ScoreConfig, device: torch.device) -> FeatureExtractor:
    from stylekit.metrics.embedders import gram_embedder, load_style_model_or_exit, style_embedder

    spec = cfg.style_model
    if spec == "clip":
        return _get_extractor("clip", cfg, device)
    if spec == "gram":
        return gram_embedder(_vgg(cfg, device), cfg.vgg_weights, cfg.size)
    return style_embedder(load_style_model_or_exit(spec, device), cfg.size)


def _vgg(cfg: ScoreConfig, device: torch.device) -> Any:
    """One VGG19 per run, shared by the gram metric and the gram style embedder."""
    from stylekit.metrics.gram import load_gram_vgg

    if "vgg" not in _nets:
        _nets["vgg"] = load_gram_vgg(cfg.vgg_weights, device)
    return _nets["vgg"]


EXTRACTORS: dict[str, ExtractorFactory] = {"inception": _inception_factory, "clip": _clip_factory, "style": _style_factory}
_built: dict[str, FeatureExtractor] = {}
_nets: dict[str, Any] = {}


def _get_extractor(kind: str, cfg: ScoreConfig, device: torch.device) -> FeatureExtractor:
    if kind not in _built:
        _built[kind] = EXTRACTORS[kind](cfg, device)
    return _built[kind]


def parse_metrics(text: str | list[str] | None) -> list[str]:
    if text is None:
        return list(DEFAULT_METRICS)
    names = [m.strip().lower() for m in (text.split(",") if isinstance(text, str) else text) if m.strip()]
    unknown = [m for m in names if m not in METRICS]
    if unknown or not names:
        raise BadInput(f"unknown metric(s) {', '.join(unknown) or '(none given)'}", hint=f"choose from {','.join(METRICS)}")
    return list(dict.fromkeys(names))


def _describe(ext: FeatureExtractor) -> dict[str, Any]:
    info = {"name": ext.name, "mode": ext.mode, "dim": ext.dim}
    version = getattr(ext, "version", None)
    if version:
        info["version"] = version
    return info


class _SetState:
    def __init__(self, image_set: ImageSet) -> None:
        self.set = image_set
        self.skipped: dict[str, str] = {}
        self.used: int | None = None

    def absorb(self, result: FeatureResult) -> None:
        for s in result.report.skipped:
            self.skipped.setdefault(s.path, s.reason)
        self.used = result.report.used if self.used is None else min(self.used, result.report.used)

    def summary(self) -> dict[str, Any]:
        return {"source": self.set.source, "n": len(self.set), "used": self.used if self.used is not None else len(self.set),
                "skipped": [{"path": p, "reason": r} for p, r in self.skipped.items()]}


def score_sets(cfg: ScoreConfig) -> ScoreReport:
    """Compute the requested metrics between image sets A and B (see the module and docs/metrics.md)."""
    from stylekit.device import resolve_device
    from stylekit.metrics.fid import check_mode, parse_stats_spec

    start = time.perf_counter()
    console = get_console()
    check_mode(cfg.mode)
    ref = parse_stats_spec(cfg.b, cfg.mode)
    metrics = parse_metrics(cfg.metrics)
    if ref is not None:
        if cfg.metrics is None:
            metrics = [m for m in metrics if m in STATS_METRICS]
        bad = [m for m in metrics if m not in STATS_METRICS]
        if bad:
            raise BadInput(f"{', '.join(bad)} cannot be computed against precomputed statistics {cfg.b}",
                           hint="use --metrics fid,kid, or give an image folder as B")
        if cfg.pairs:
            raise BadInput("--pairs needs two image sets, not precomputed statistics")
    if cfg.batch < 1 or cfg.workers < 0 or (cfg.size is not None and cfg.size < 32):
        raise BadInput("--batch must be >= 1, --workers >= 0, --size >= 32")
    if cfg.out:  # fail before the work, not after it
        from stylekit.io.rundir import ensure_writable_dir

        if Path(cfg.out).is_dir():
            raise BadInput(f"--out {cfg.out} is a folder", hint="give a file name for the JSON report, e.g. --out report.json")
        ensure_writable_dir(Path(cfg.out).parent)
    device = resolve_device(cfg.device)

    set_a = _SetState(open_image_set(cfg.a))
    set_b = _SetState(open_image_set(cfg.b)) if ref is None else None
    for state in (set_a, set_b):
        if state is not None and len(state.set) == 0:
            raise BadInput(f"{state.set.source}: no images found", hint="give a folder (searched recursively) or a .zip of .jpg/.png/.webp/... images")

    # Build every model first: missing weights fail before any decoding.
    _built.clear()
    _nets.clear()
    kinds = []
    if {"fid", "kid"} & set(metrics):
        kinds.append("inception")
    if {"clip-fid", "cmmd"} & set(metrics):
        kinds.append("clip")
    if "style" in metrics:
        kinds.append("style")
    extractors = {k: _get_extractor(k, cfg, device) for k in kinds}
    vgg = None
    if "gram" in metrics:
        vgg = _vgg(cfg, device)

    cache: bool | str = (cfg.cache_dir or True) if cfg.cache else False
    warnings: list[str] = []
    feature_stats: list[dict[str, Any]] = []
    feats: dict[tuple[str, str], FeatureResult] = {}

    def features(kind: str, which: str) -> FeatureResult:
        key = (kind, which)
        if key not in feats:
            state = set_a if which == "A" else set_b
            assert state is not None
            ext = extractors[kind]
            result = extract_features(state.set, ext, cache=cache, batch_size=cfg.batch, workers=cfg.workers,
                                      description=f"{kind} features {which}")
            state.absorb(result)
            feature_stats.append({"set": which, **result.stats()})
            if len(result.items) < 2:
                raise BadInput(f"{state.set.source}: only {len(result.items)} of {len(state.set)} images are readable; need at least 2",
                               hint="; ".join(f"{s.path}: {s.reason}" for s in result.report.skipped[:3]) or None)
            feats[key] = result
        return feats[key]

    out: dict[str, dict[str, Any]] = {}
    if "fid" in metrics or "kid" in metrics:
        _inception_metrics(cfg, metrics, ref, features, out, warnings)
    if "clip-fid" in metrics or "cmmd" in metrics:
        from stylekit.metrics.frechet import frechet_distance_features
        from stylekit.metrics.mmd import cmmd

        fa, fb = features("clip", "A").features, features("clip", "B").features
        if "clip-fid" in metrics:
            out["clip-fid"] = {"value": frechet_distance_features(fa, fb), "features": "raw CLIP image embeddings"}
            _small_set_warning(warnings, "clip-fid", fa, fb)
        if "cmmd" in metrics:
            out["cmmd"] = {"value": cmmd(fa, fb), "scale": 1000, "sigma": 10.0, "features": "L2-normalised CLIP image embeddings"}
    pairs_doc: dict[str, Any] | None = None
    pairs: list[Any] = []
    if cfg.pairs:
        from stylekit.metrics.style_similarity import match_pairs

        assert set_b is not None
        pairs, un_a, un_b = match_pairs(set_a.set.items, set_b.set.items)
        if not pairs:
            raise BadInput("--pairs: no file of A has a same-named file in B", hint="name stylised outputs like their inputs (same relative path, any extension)")
        pairs_doc = {"matched": len(pairs), "unmatched_a": un_a, "unmatched_b": un_b, "per_pair": {}}
    if "style" in metrics:
        from stylekit.metrics.style_similarity import pair_cosines, style_scores

        ra, rb = features("style", "A"), features("style", "B")
        scores = style_scores(ra.features, ra.items, rb.features, rb.items)
        out["style"] = {**scores.to_dict(), "embedder": extractors["style"].name}
        _small_set_warning(warnings, "style fd", ra.features, rb.features)
        if pairs_doc is not None:
            cos = pair_cosines(pairs, ra.features, ra.items, rb.features, rb.items)
            out["style"]["pairs_cosine_mean"] = float(np.mean(list(cos.values()))) if cos else None
            for name, value in cos.items():
                pairs_doc["per_pair"].setdefault(name, {})["style_cosine"] = value
    if "gram" in metrics:
        _gram_metrics(cfg, vgg, set_a, set_b, pairs, pairs_doc, out)

    models = {kind: _describe(ext) for kind, ext in extractors.items()}
    if vgg is not None:
        models["gram"] = {"name": "vgg19", "weights": str(getattr(vgg, "weights_source", "vgg19")), "layers": "relu1_1..relu5_1", "size": cfg.size or GRAM_SIZE}
    for w in warnings:
        console.warn(w)
    report = ScoreReport(
        a=set_a.summary(),
        b=set_b.summary() if set_b is not None else {"source": cfg.b, "stats": ref.label if ref else None},
        metrics=out, models=models, features=feature_stats, warnings=warnings,
        seconds=round(time.perf_counter() - start, 3), config=asdict(cfg), pairs=pairs_doc,
    )
    _built.clear()
    _nets.clear()
    if cfg.out:
        from stylekit.io.atomic import write_json_atomic

        write_json_atomic(cfg.out, report.to_dict())
    return report


def _small_set_warning(warnings: list[str], what: str, fa: np.ndarray, fb: np.ndarray) -> None:
    dim = fa.shape[1]
    n = min(len(fa), len(fb))
    if n <= dim:
        warnings.append(f"{what}: {n} images per set for {dim}-d features: the covariance is singular, the value is biased; compare only at equal set sizes")


def _inception_metrics(cfg: ScoreConfig, metrics: list[str], ref: Any, features: Callable[[str, str], FeatureResult],
                       out: dict[str, dict[str, Any]], warnings: list[str]) -> None:
    from stylekit.metrics.fid import fid_warning, load_ref_stats
    from stylekit.metrics.frechet import frechet_distance, frechet_distance_features, gaussian_stats
    from stylekit.metrics.mmd import kid

    fa = features("inception", "A").features
    if ref is None:
        fb = features("inception", "B").features
    if "fid" in metrics:
        if ref is None:
            value = frechet_distance_features(fa, fb)
        else:
            mu_a, s_a = gaussian_stats(fa)
            stats = load_ref_stats(ref)
            mu_b, s_b = stats["mu"], stats["sigma"]
            if mu_b.shape != mu_a.shape:
                raise BadInput(f"{ref.label}: statistics are {mu_b.shape[0]}-d but the extractor gives {mu_a.shape[0]}-d")
            value = frechet_distance(mu_a, s_a, mu_b, s_b)
        out["fid"] = {"value": value, "mode": cfg.mode}
        for label, n in (("A", len(fa)), ("B", len(fb) if ref is None else None)):
            msg = fid_warning(n, f"set {label}") if n is not None else None
            if msg:
                warnings.append(msg)
    if "kid" in metrics:
        ref_feats = fb if ref is None else load_ref_stats(ref, kid=True)["feats"]
        result = kid(fa, ref_feats, cfg.kid_subsets, cfg.kid_subset_size, cfg.seed)
        out["kid"] = {"value": result.value, "x1000": result.x1000, "std": result.std, "std_x1000": result.std * 1000,
                      "subsets": result.subsets, "subset_size": result.subset_size, "mode": cfg.mode,
                      "note": "value is raw KID; x1000 is the scale most papers print"}


def _gram_metrics(cfg: ScoreConfig, vgg: Any, set_a: _SetState, set_b: _SetState | None, pairs: list[Any],
                  pairs_doc: dict[str, Any] | None, out: dict[str, dict[str, Any]]) -> None:
    from stylekit.data.images import ImageReport
    from stylekit.metrics.gram import gram_distance, pair_gram_distances, set_gram_stats

    assert set_b is not None
    values: dict[str, Any] = {}
    reports = {}
    accs = {}
    for which, state in (("A", set_a), ("B", set_b)):
        rep = ImageReport()
        accs[which] = set_gram_stats(vgg, state.set.items, cfg.size or GRAM_SIZE, cfg.batch, cfg.workers, rep, f"gram {which}")
        for s in rep.skipped:
            state.skipped.setdefault(s.path, s.reason)
        reports[which] = rep
        if accs[which].count == 0:
            raise BadInput(f"{state.set.source}: none of its {len(state.set)} images is readable")
        state.used = accs[which].count if state.used is None else min(state.used, accs[which].count)
    value, per_layer = gram_distance(accs["A"].mean(), accs["B"].mean())
    values = {"value": value, "per_layer": per_layer, "definition": "mean over relu1_1..relu5_1 of ||mean Gram(A) - mean Gram(B)||_F"}
    if pairs_doc is not None and pairs:
        rep = ImageReport()
        dists = pair_gram_distances(vgg, pairs, cfg.size or GRAM_SIZE, cfg.batch, rep)
        values["pairs_mean"] = float(np.mean(list(dists.values()))) if dists else None
        for name, d in dists.items():
            pairs_doc["per_pair"].setdefault(name, {})["gram"] = d
    out["gram"] = values
