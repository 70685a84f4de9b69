"""`stylekit score A B` / `score --network N REF`: the registry's metrics in one call, through one feature cache.

`score_sets(ScoreConfig) -> ScoreReport`. The metric names come from stylekit/metrics/registry.py
(the table `finetune-stylegan --metrics` reads too); set A is an image folder/zip or, with `network`,
the samples of a generator (generated.py: no PNGs written). Feature models are built by the factories
in EXTRACTORS (keys "inception", "inception-logits", "clip", "style", "vgg16", "lpips"); Python callers
inject tiny ones through `ScoreConfig.extractors`, which takes precedence over the table. Models load
before any image is decoded or generated, so missing weights fail fast (exit 3).

Under torchrun every rank runs the same checks, loads the models on its own device and computes its
share: its block of each image set's uncached features (features.extract_features), of the generated
seeds (generated.GeneratorSource), of the PPL batches and of the Gram sums; the shares are gathered, so
every rank computes the same metrics from the same features, and rank 0 alone writes `--out`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stylekit.configs.score import Embedder, ScoreConfig
from stylekit.data.images import ImageReport
from stylekit.data.imageset import ImageSet, open_image_set
from stylekit.errors import BadInput
from stylekit.io.console import get_console
from stylekit.io.outpath import names_folder
from stylekit.io.paths import Input, refuse_out_overlap
from stylekit.metrics.embedders import GRAM_SIZE, gram_embedder, load_style_model_or_exit, style_embedder
from stylekit.metrics.features import (
    FeatureExtractor,
    FeatureResult,
    auto_loader_workers,
    clip_extractor,
    extract_features,
)
from stylekit.metrics.fid import InceptionExtractor, parse_stats_spec
from stylekit.metrics.gram import gram_distance, load_gram_vgg, set_gram_stats
from stylekit.metrics.pr_features import vgg16_extractor
from stylekit.metrics.registry import FAMILIES, check_counts, compute_metric, min_images
from stylekit.metrics.style_similarity import pair_cosines, style_scores
from stylekit.nets.clip import load_clip
from stylekit.nets.lpips import load_lpips
from stylekit.nets.stylegan2.load import load_network
from stylekit.standins import is_random, label, random_network_resolution
from stylekit.train.distributed import DistInfo, agree, distributed_job, gather_lists, shard


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
    stand_ins: list[str] = field(default_factory=list)  # random-init stand-ins used: the numbers are not meaningful

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


ExtractorFactory = Callable[[ScoreConfig, torch.device], FeatureExtractor]


def _inception_factory(cfg: ScoreConfig, device: torch.device) -> FeatureExtractor:

    return InceptionExtractor(cfg.mode, device, weights=cfg.inception_weights)


def _clip_factory(cfg: ScoreConfig, device: torch.device) -> FeatureExtractor:

    return clip_extractor(load_clip(cfg.clip_model, cfg.clip_weights, device))


def _style_factory(cfg: ScoreConfig, device: torch.device) -> FeatureExtractor:

    if cfg.style_embedder is Embedder.clip:
        return _get_extractor("clip", cfg, device)
    if cfg.style_embedder is Embedder.gram:
        return gram_embedder(_vgg(cfg, device), cfg.vgg_weights, cfg.size)
    return style_embedder(load_style_model_or_exit(cfg.style_model, device), cfg.size)


def _vgg(cfg: ScoreConfig, device: torch.device) -> Any:
    """One VGG19 per run, shared by the gram metric and the gram style embedder."""

    if "vgg" not in _nets:
        _nets["vgg"] = load_gram_vgg(cfg.vgg_weights, device)
    return _nets["vgg"]


def _inception_logits_factory(cfg: ScoreConfig, device: torch.device) -> FeatureExtractor:

    return InceptionExtractor(cfg.mode, device, weights=cfg.inception_weights, logits=True)


def _vgg16_factory(cfg: ScoreConfig, device: torch.device) -> FeatureExtractor:

    return vgg16_extractor(cfg.vgg16_weights, device)


def _lpips_factory(cfg: ScoreConfig, device: torch.device) -> Any:
    """LPIPS-VGG16 features (images in [-1, 1] -> vectors whose squared distance is LPIPS), for ppl."""

    net = load_lpips(cfg.vgg16_weights, device)
    net.name = f"lpips-vgg16:{net.weights_source}"
    return net.features


EXTRACTORS: dict[str, ExtractorFactory] = {
    "inception": _inception_factory, "inception-logits": _inception_logits_factory, "clip": _clip_factory,
    "style": _style_factory, "vgg16": _vgg16_factory, "lpips": _lpips_factory,
}
_built: dict[str, FeatureExtractor] = {}
_nets: dict[str, Any] = {}


def _get_extractor(kind: str, cfg: ScoreConfig, device: torch.device) -> FeatureExtractor:
    if kind not in _built:
        _built[kind] = (cfg.extractors.get(kind) or EXTRACTORS[kind])(cfg, device)
    return _built[kind]


def _describe(ext: Any) -> dict[str, Any]:
    if not hasattr(ext, "dim"):  # an embedding function (lpips)
        owner = getattr(ext, "__self__", ext)
        return {"name": str(getattr(owner, "name", getattr(ext, "__name__", "custom")))}
    info = {"name": ext.name, "mode": ext.mode, "dim": ext.dim}
    version = getattr(ext, "version", None)
    if version:
        info["version"] = version
    return info


class _SetState:
    def __init__(self, image_set: ImageSet) -> None:
        self.set = image_set
        self.skipped: dict[str, str] = {s.path: s.reason for s in image_set.skipped}
        self.used: int | None = None

    def absorb(self, result: FeatureResult) -> None:
        for s in result.report.skipped:
            self.skipped.setdefault(s.path, s.reason)
        self.used = result.report.used if self.used is None else min(self.used, result.report.used)

    def summary(self) -> dict[str, Any]:
        return {"source": self.set.source, "n": len(self.set), "used": self.used if self.used is not None else len(self.set),
                "skipped": [{"path": p, "reason": r} for p, r in self.skipped.items()]}

    def first(self, n: int | None) -> ImageSet:
        return self.set if n is None or n >= len(self.set) else ImageSet(self.set.source, self.set.items[:n])




class _Context:
    """What the registry's compute functions read (registry.MetricContext): features per (model, side, count)."""

    def __init__(self, cfg: ScoreConfig, dist: DistInfo, a: _SetState | Any, b: _SetState | None, ref: Any,
                 generator: Any = None) -> None:
        self.cfg = cfg
        self.dist = dist
        self.device = dist.device
        self.a, self.b, self.ref, self.generator = a, b, ref, generator
        self.warnings: list[str] = []
        self.feature_stats: list[dict[str, Any]] = []
        self.pairs: list[Any] = []
        self.pairs_doc: dict[str, Any] | None = None
        self.cache: bool | str = (cfg.cache_dir or True) if cfg.cache else False
        self._feats: dict[tuple[str, str, int | None], tuple[np.ndarray, list[Any]]] = {}

    def count_a(self, spec: Any) -> int | None:
        """Images of A a metric uses (ScoreConfig.count: an explicit --num-gen wins over the name's count)."""
        return self.cfg.count(spec)

    def extractor(self, kind: str) -> Any:
        return _get_extractor(kind, self.cfg, self.device)

    def describe(self, kind: str) -> dict[str, Any]:
        return _describe(self.extractor(kind))

    def lpips(self) -> Any:
        return self.extractor("lpips")

    def to_device(self, feats: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(feats)).to(self.device)

    def features(self, kind: str, side: str, n: int | None) -> np.ndarray:
        return self._features(kind, side, n)[0]

    def items(self, kind: str, side: str, n: int | None) -> list[Any]:
        """The ImageItems behind features(kind, side, n) (None per generated sample)."""
        return self._features(kind, side, n)[1]

    def _features(self, kind: str, side: str, n: int | None) -> tuple[np.ndarray, list[Any]]:
        key = (kind, side, n)
        if key in self._feats:
            return self._feats[key]
        ext = self.extractor(kind)
        state = self.a if side == "A" else self.b
        if state is None:
            raise BadInput("this metric needs a reference set B", hint="give a reference folder or .zip")
        if isinstance(state, _SetState):
            result = extract_features(state.first(n), ext, cache=self.cache, batch_size=self.cfg.batch,
                                      workers=self.cfg.workers, description=f"{kind} features {side}", dist=self.dist)
            state.absorb(result)
            self.feature_stats.append({"set": side, **result.stats()})
            need = 1 if kind == "style" else 2  # a style embedding compares even one image
            if len(result.items) < need:
                raise BadInput(f"{state.set.source}: only {len(result.items)} of {len(state.set)} images are readable; need at least {need}",
                               hint="; ".join(f"{s.path}: {s.reason}" for s in result.report.skipped[:3]) or None)
            value = (result.features, list(result.items))
        else:
            assert n is not None
            start = time.perf_counter()
            feats = state.features(ext, n)
            self.feature_stats.append({"set": side, "extractor": ext.name, "mode": ext.mode, "generated": n,
                                       "seconds": round(time.perf_counter() - start, 3)}
                                      | ({"generated_per_rank": state.per_rank} if state.per_rank else {}))
            value = (feats, [None] * len(feats))
        self._feats[key] = value
        return value

    def small_set_warning(self, what: str, fa: np.ndarray, fb: np.ndarray) -> None:
        dim = fa.shape[1]
        n = min(len(fa), len(fb))
        if n < 2:
            self.warnings.append(f"{what}: a one-image set has no spread, so it is left out (null); the cosine still compares it")
        elif n <= dim:
            self.warnings.append(f"{what}: {n} images per set for {dim}-d features: the covariance is singular, "
                                 "the value is biased; compare only at equal set sizes")

    def style_scores(self, spec: Any) -> dict[str, Any]:

        n = self.count_a(spec)
        fa, fb = self.features("style", "A", n), self.features("style", "B", spec.max_real)
        items_a, items_b = self.items("style", "A", n), self.items("style", "B", spec.max_real)
        scores = style_scores(fa, [getattr(it, "label", None) for it in items_a], fb, [getattr(it, "label", None) for it in items_b])
        out = {**scores.to_dict(), "embedder": self.extractor("style").name}
        self.small_set_warning("style fd", fa, fb)
        if self.pairs_doc is not None:
            cos = pair_cosines(self.pairs, fa, items_a, fb, items_b)
            out["pairs_cosine_mean"] = float(np.mean(list(cos.values()))) if cos else None
            for name, value in cos.items():
                self.pairs_doc["per_pair"].setdefault(name, {})["style_cosine"] = value
        return out

    def gram_scores(self, spec: Any) -> dict[str, Any]:
        if not isinstance(self.a, _SetState) or self.b is None:
            raise BadInput("gram needs two image sets", hint="score the generated images as a folder, or leave gram out")
        return _gram_metrics(self.cfg, _vgg(self.cfg, self.device), self.a, self.b, self.pairs, self.pairs_doc, self.dist)


def _check_counts(specs: tuple[Any, ...], cfg: ScoreConfig, set_a: _SetState | None) -> None:
    """A metric whose name asks for more images than folder A holds is refused before any model loads."""
    for spec in specs:
        if set_a is not None and spec.num_gen is not None and spec.num_gen > len(set_a.set):
            raise BadInput(f"{spec.name} uses {spec.num_gen} images of A; {set_a.set.source} has {len(set_a.set)}",
                           hint=f"use the plain name ({spec.family}) to score every image, or pass --network to generate them")


def _check_out(cfg: ScoreConfig) -> None:
    """--out: a report file that overlaps no input; an existing one is kept unless --fresh (exit 2 first)."""

    assert cfg.out is not None
    refuse_out_overlap(cfg.out, [
        Input("A", cfg.a, data_folder=True), Input("B", cfg.b, data_folder=True),
        Input("--style-model", cfg.style_model), Input("--clip-weights", cfg.clip_weights),
        Input("--vgg-weights", cfg.vgg_weights), Input("--inception-weights", cfg.inception_weights),
    ], out_read_back=False)  # the JSON report is never read as an image
    if names_folder(cfg.out):
        raise BadInput(f"--out {cfg.out} is a folder", hint="give a file name for the JSON report, e.g. --out report.json")
    if Path(cfg.out).exists() and not cfg.fresh:
        raise BadInput(f"--out {cfg.out} already holds a report", hint="pass --fresh to replace it, or choose another --out")


def _open_inputs(cfg: ScoreConfig) -> tuple[Any, _SetState | None, _SetState | None]:
    """(B's statistics or None, set A, set B), every input and --out checked before any work."""

    ref = parse_stats_spec(cfg.b, cfg.mode) if cfg.b is not None else None
    if cfg.out:  # fail before the work, not after it
        _check_out(cfg)
    set_a = _SetState(open_image_set(cfg.a)) if cfg.a is not None else None
    set_b = _SetState(open_image_set(cfg.b)) if cfg.b is not None and ref is None else None
    for state in (set_a, set_b):
        if state is not None:
            _check_set_size(state.set, cfg.specs)
    _check_counts(cfg.specs, cfg, set_a)
    return ref, set_a, set_b


def _load_generator(cfg: ScoreConfig, device: torch.device) -> tuple[Any, str]:
    """The generator to sample (an in-memory one, the random:RES stand-in, or a loaded network) and its label."""

    assert cfg.network is not None
    if cfg.generator is not None:
        return cfg.generator, cfg.network
    loaded = load_network(cfg.network, device)
    return loaded.generator.eval(), loaded.source


def _stand_ins(cfg: ScoreConfig, kinds: list[str]) -> list[str]:
    """The random-init stand-ins this run used (each labelled as such in the report and as a warning)."""

    clip_used = "clip" in kinds or ("style" in kinds and cfg.style_embedder is Embedder.clip)
    used = {
        "--network": cfg.generator is None and random_network_resolution(cfg.network) is not None,
        "--inception-weights": is_random(cfg.inception_weights) and bool({"inception", "inception-logits"} & set(kinds)),
        "--clip-weights": is_random(cfg.clip_weights) and clip_used,
        "--vgg-weights": is_random(cfg.vgg_weights) and "vgg" in _nets,
    }
    values = {"--network": cfg.network, "--inception-weights": cfg.inception_weights, "--clip-weights": cfg.clip_weights,
              "--vgg-weights": cfg.vgg_weights}
    return [f"{flag} {values[flag]}" for flag, on in used.items() if on]


def score_sets(cfg: ScoreConfig, dist: DistInfo | None = None) -> ScoreReport:
    """Compute the requested registry metrics between A (images or a generator) and B (see docs/metrics.md).

    Every check (the inputs, --out, the models and their weights) runs before any image is decoded or
    generated, and before --out is written. `dist`: the job of a caller that already runs under
    torchrun (a trainer's snapshot metrics); None starts one (`distributed_job`, one process without torchrun)."""
    if dist is not None:
        return _score_sets(cfg, dist)
    with distributed_job(cfg.device) as job:
        return _score_sets(cfg, job)


def _score_sets(cfg: ScoreConfig, dist: DistInfo) -> ScoreReport:

    start = time.perf_counter()
    console = get_console()
    specs = cfg.specs
    # Agreed: a node that sees other files (a missing folder, an existing --out) stops every rank, not just itself.
    ref, set_a, set_b = agree(lambda: _open_inputs(cfg), dist)
    device = dist.device  # each rank its own (GPU LOCAL_RANK under torchrun)

    # Build every model first: missing weights fail before any decoding or generating (on any rank: agreed).
    _built.clear()
    _nets.clear()
    generator = None
    source: Any = set_a
    if cfg.network is not None:
        from stylekit.metrics.generated import GeneratorSource

        generator, source_label = agree(lambda: _load_generator(cfg, device), dist)
        source = GeneratorSource(generator, source_label, cfg.seed, cfg.trunc, cfg.batch, dist)
    ctx = _Context(cfg, dist, source, set_b, ref, generator)
    check_counts(list(specs), lambda s: ctx.count_a(s) or (len(set_a.set) if set_a is not None else None),
                 "--num-gen" if cfg.network is not None else f"set A ({cfg.a})")
    kinds = list(dict.fromkeys(k for s in specs for k in FAMILIES[s.family].features))
    if any(s.family == "ppl" for s in specs):
        kinds.append("lpips")

    def build_models() -> dict[str, Any]:
        built = {k: ctx.extractor(k) for k in kinds}
        if any(s.family == "gram" for s in specs):
            _vgg(cfg, device)
        return built

    extractors = agree(build_models, dist)
    if cfg.out:  # every check passed: only now is the report's folder made (a refused run leaves none behind)
        from stylekit.io.rundir import ensure_writable_dir

        agree(lambda: ensure_writable_dir(Path(cfg.out).parent) if dist.is_main else None, dist)
    stand_ins = _stand_ins(cfg, kinds)
    for name in stand_ins:
        console.warn(label(name))
    if cfg.network is not None and cfg.num_gen is not None:
        for spec in specs:
            if spec.num_gen is not None and spec.num_gen != cfg.num_gen:
                ctx.warnings.append(f"{spec.name}: --num-gen {cfg.num_gen:,} generated images (its name asks for "
                                    f"{spec.num_gen:,}); the value is not comparable with published {spec.name}")
    if cfg.pairs:
        from stylekit.metrics.style_similarity import match_pairs

        assert set_a is not None and set_b is not None
        ctx.pairs, un_a, un_b = match_pairs(set_a.set.items, set_b.set.items)
        if not ctx.pairs:
            raise BadInput("--pairs: no file of A has a same-named file in B", hint="name stylised outputs like their inputs (same relative path, any extension)")
        ctx.pairs_doc = {"matched": len(ctx.pairs), "unmatched_a": un_a, "unmatched_b": un_b, "per_pair": {}}

    # Largest sample counts first, so smaller ones slice what is already generated; report in the asked order.
    order = sorted(specs, key=lambda s: -(ctx.count_a(s) or 2**62))
    results = {s.name: _timed(ctx, s) for s in order}
    out = {s.name: results[s.name] for s in specs}

    models = {kind: _describe(ext) for kind, ext in extractors.items()}
    if "vgg" in _nets:
        models["gram"] = {"name": "vgg19", "weights": str(getattr(_nets["vgg"], "weights_source", "vgg19")),
                          "layers": "relu1_1..relu5_1", "size": cfg.size or GRAM_SIZE}
    for w in ctx.warnings:
        console.warn(w)
    report = ScoreReport(
        a=source.summary() if source is not None else {"source": None},
        b=set_b.summary() if set_b is not None else {"source": cfg.b, "stats": ref.label if ref else None},
        metrics=out, models=models, features=ctx.feature_stats, warnings=ctx.warnings,
        seconds=round(time.perf_counter() - start, 3), config=cfg.to_dict(), pairs=ctx.pairs_doc, stand_ins=stand_ins,
    )
    _built.clear()
    _nets.clear()
    if cfg.out:
        from stylekit.io.atomic import write_json_atomic

        agree(lambda: write_json_atomic(cfg.out, report.to_dict()) if dist.is_main else None, dist)
    return report


def _timed(ctx: _Context, spec: Any) -> dict[str, Any]:
    """The metric's result with its family and seconds (features shared by metrics count for the first one)."""

    start = time.perf_counter()
    doc = compute_metric(ctx, spec)
    count = ctx.count_a(spec)
    if count is not None and ctx.generator is not None:
        doc.setdefault("num_gen", count)  # the images the value was computed from, whatever set them
    return {"family": spec.family, **doc, "seconds": round(time.perf_counter() - start, 3)}


def _check_set_size(image_set: ImageSet, specs: list[Any]) -> None:
    """A set too small for a requested metric is a usage error before any model loads (exit 2)."""

    n = len(image_set)
    if n == 0:
        raise BadInput(f"{image_set.source}: no images found", hint="give a folder (searched recursively) or a .zip of .jpg/.png/.webp/... images")
    short = [s for s in specs if min_images(s) > n]
    if short:
        what = "is a single image" if Path(image_set.source).is_file() else f"holds only {n} image(s)"
        single = ",".join(s.name for s in specs if min_images(s) <= 1) or "style,gram"
        raise BadInput(f"{image_set.source} {what}: {', '.join(s.name for s in short)} need(s) at least "
                       f"{max(min_images(s) for s in short)} images; a folder is expected",
                       hint=f"give a folder (or .zip) of images, or --metrics {single} to compare one image with a set")


def required_weights(kinds: list[str]) -> list[str]:
    """Registry weights the built-in factories of `kinds` read (a replaced factory needs none)."""
    needed = {_inception_factory: "inception-fid", _inception_logits_factory: "inception-fid", _vgg16_factory: "vgg16",
              _lpips_factory: "vgg16", _clip_factory: "clip-vit-b-32", _style_factory: "clip-vit-b-32"}
    return list(dict.fromkeys(needed[EXTRACTORS[k]] for k in kinds if EXTRACTORS.get(k) in needed))


def _gram_metrics(cfg: ScoreConfig, vgg: Any, set_a: _SetState, set_b: _SetState, pairs: list[Any],
                  pairs_doc: dict[str, Any] | None, dist: DistInfo) -> dict[str, Any]:
    """The gram metric: under torchrun each rank sums the Gram matrices of its block of each set (and
    measures its block of the pairs); the sums, skips and pair distances are gathered on every rank."""

    workers = cfg.workers if cfg.workers is not None else auto_loader_workers(next(vgg.parameters()).device) or 0
    accs = {}
    for which, state in (("A", set_a), ("B", set_b)):
        acc, skipped = agree(lambda items=state.set.items, which=which: _gram_block(vgg, items, cfg, workers, which, dist), dist)
        accs[which] = acc.gathered(dist)
        for path, reason in gather_lists(skipped, dist):
            state.skipped.setdefault(path, reason)
        if accs[which].count == 0:
            raise BadInput(f"{state.set.source}: none of its {len(state.set)} images is readable")
        state.used = accs[which].count if state.used is None else min(state.used, accs[which].count)
    value, per_layer = gram_distance(accs["A"].mean(), accs["B"].mean())
    values: dict[str, Any] = {"value": value, "per_layer": per_layer,
                              "definition": "mean over relu1_1..relu5_1 of ||mean Gram(A) - mean Gram(B)||_F"}
    if dist.distributed:
        values["images_per_rank"] = {which: acc.per_rank for which, acc in accs.items()}  # readable images each rank summed
    if pairs_doc is not None and pairs:
        from stylekit.data.images import ImageReport
        from stylekit.metrics.gram import pair_gram_distances

        block = shard(len(pairs), dist)
        mine = agree(lambda: pair_gram_distances(vgg, pairs[block.start : block.stop], cfg.size or GRAM_SIZE, cfg.batch,
                                                 ImageReport()), dist)
        dists = dict(gather_lists(list(mine.items()), dist))
        values["pairs_mean"] = float(np.mean(list(dists.values()))) if dists else None
        for name, d in dists.items():
            pairs_doc["per_pair"].setdefault(name, {})["gram"] = d
    return values


def _gram_block(vgg: Any, items: list[Any], cfg: ScoreConfig, workers: int, which: str,
                dist: DistInfo) -> tuple[Any, list[tuple[str, str]]]:
    """Gram sums of this rank's block of `items` and the (path, reason) of its unreadable images."""

    block = shard(len(items), dist)
    rep = ImageReport()
    acc = set_gram_stats(vgg, items[block.start : block.stop], cfg.size or GRAM_SIZE, cfg.batch, workers, rep, f"gram {which}")
    return acc, [(s.path, s.reason) for s in rep.skipped]
