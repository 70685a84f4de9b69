"""The metric registry: every name `stylekit score --metrics` and `finetune-stylegan --metrics` accept.

A metric *family* (fid, kid, pr, is, ppl, clip-fid, cmmd, style, gram) is registered once, with the
function that computes it from a `MetricContext` (score.py builds one: the images of set A or the
samples of a generator, the reference set B or precomputed statistics, the feature models). A metric
*name* resolves to a family plus its parameters, parsed from NVlabs' naming convention rather than
listed variant by variant:

    fid50k_full   FID, 50k generated images vs the full reference set     (also fid10k_full, fid1k ...)
    fid50k        FID, 50k generated vs the first 50k reference images
    kid50k_full   KID (100 subsets of 1000)                               (also kid10k, kid50k ...)
    pr50k3_full   precision/recall, k = 3 neighbours, VGG16 features      (also pr10k5 ...)
    is50k         Inception score, 10 splits                              (also is10k ...)
    ppl_zfull     perceptual path length: space z|w, sampling full|end, face crop (ppl2_: no crop)

`_full` means the whole reference set (NVlabs caps it at 1M images for kid and 200k for pr, and so
does stylekit). Plain names without a count (fid, kid, pr, is) use `--num-gen` generated images (or
all of A), and all of B. Adding a metric = one `register_family(...)` call plus, where it has
variants, one `NamePattern`; see docs/metrics.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from stylekit.errors import BadInput

DEFAULT_NUM_GEN = 50_000  # generated images (ppl: samples) when neither the name nor --num-gen gives a count
FULL_CAP = {"kid": 1_000_000, "pr": 200_000}  # NVlabs' max_real for kid50k_full / pr50k3_full


@dataclass(frozen=True)
class MetricSpec:
    """One resolved metric name: its family and parameters."""

    name: str
    family: str
    num_gen: int | None = None  # images generated / taken from A; None: --num-gen, else all of A (50k from a network)
    max_real: int | None = None  # reference images; None: all of B
    k: int = 3  # pr: neighbourhood size
    splits: int = 10  # is: number of splits
    space: str = "w"  # ppl: interpolate in z or w
    sampling: str = "end"  # ppl: t = 0 ("end") or t ~ U(0, 1) ("full")
    crop: bool = False  # ppl: crop to the face region before LPIPS
    epsilon: float = 1e-4  # ppl: step between the two latents


class MetricContext(Protocol):
    """What a family's compute function reads (score.py's `_Context` implements it)."""

    cfg: Any
    warnings: list[str]
    dist: Any  # train.distributed.DistInfo: the ranks that share the work

    def features(self, kind: str, side: str, n: int | None) -> Any: ...


ComputeFn = Callable[[Any, MetricSpec], dict[str, Any]]


def value_results(name: str, doc: dict[str, Any]) -> dict[str, float]:
    """NVlabs' `results` dict of a one-number metric: {name: value}."""
    return {name: float(doc["value"])}


@dataclass(frozen=True)
class MetricFamily:
    name: str
    compute: ComputeFn
    summary: str
    features: tuple[str, ...] = ()  # feature models it reads ("inception", "inception-logits", "clip", "style", "vgg16")
    reference: bool = True  # needs a reference set B (or statistics)
    generator: bool = False  # needs a generator (--network): cannot be computed from a folder
    stats: bool = False  # may use precomputed statistics (stats:NAME/RES) as B
    plain: bool = True  # its bare family name is a metric name
    images_only: bool = False  # needs two image sets (not a generator's samples)
    results: Callable[[str, dict[str, Any]], dict[str, float]] = value_results  # NVlabs' results dict (metric-*.jsonl)


@dataclass(frozen=True)
class NamePattern:
    """A regex over metric names and how a match becomes a MetricSpec."""

    regex: re.Pattern[str]
    build: Callable[[re.Match[str]], MetricSpec]
    examples: tuple[str, ...]


FAMILIES: dict[str, MetricFamily] = {}
PATTERNS: list[NamePattern] = []


def register_family(family: MetricFamily, replace_existing: bool = False) -> MetricFamily:
    if family.name in FAMILIES and not replace_existing:
        raise ValueError(f"metric family {family.name} is already registered")
    FAMILIES[family.name] = family
    return family


def compute_metric(ctx: Any, spec: MetricSpec) -> dict[str, Any]:
    """The one entry point that computes a metric: its family's function, in full fp32.

    Every metric runs with TF32 (and CPU reduced-precision matmuls) off, restored afterwards, so its
    number does not depend on the GPU generation or the process's training policy.
    """
    from stylekit.device import full_fp32

    with full_fp32():
        return FAMILIES[spec.family].compute(ctx, spec)


def register_pattern(pattern: str, build: Callable[[re.Match[str]], MetricSpec], *examples: str) -> None:
    PATTERNS.append(NamePattern(re.compile(pattern), build, examples))


def valid_names() -> list[str]:
    """Plain family names, then examples of every pattern (what an error message lists)."""
    names = [f.name for f in FAMILIES.values() if f.plain]
    for p in PATTERNS:
        names += [e for e in p.examples if e not in names]
    return names


def min_images(spec: MetricSpec) -> int:
    """The fewest images of a set (or generated samples) the metric can be computed from: style and
    gram compare a single image with a set; Frechet/MMD statistics need two."""
    return {"is": spec.splits, "pr": spec.k + 1, "ppl": 1, "style": 1, "gram": 1}.get(spec.family, 2)


def check_counts(specs: list[MetricSpec], count: Callable[[MetricSpec], int | None], what: str) -> None:
    """BadInput before any work when a metric would get fewer images than it needs (`count` None = unknown)."""
    for spec in specs:
        n, need = count(spec), min_images(spec)
        if n is not None and n < need:
            raise BadInput(f"{spec.name} needs at least {need} images, {what} gives {n}",
                           hint="generate more images" + (" or use a smaller k" if spec.family == "pr" else ""))


def parse_metric(name: str) -> MetricSpec:
    text = name.strip().lower()
    family = FAMILIES.get(text)
    if family is not None and family.plain:
        return MetricSpec(text, text)
    for p in PATTERNS:
        m = p.regex.fullmatch(text)
        if m:
            spec = p.build(m)
            if spec.family not in FAMILIES:
                break
            return spec
    raise BadInput(f"unknown metric '{name.strip()}'", hint=f"choose from {', '.join(valid_names())} (docs/metrics.md)")


def parse_metrics(text: str | list[str] | None, default: tuple[str, ...] = ()) -> list[MetricSpec]:
    """'fid50k_full,kid' -> specs (duplicates dropped, order kept); BadInput names the valid ones."""
    if text is None:
        text = list(default)
    names = [m.strip() for m in (text.split(",") if isinstance(text, str) else text) if m.strip()]
    if not names:
        raise BadInput("no metric given", hint=f"choose from {', '.join(valid_names())}")
    specs = [parse_metric(n) for n in names]
    return list({s.name: s for s in specs}.values())


def _name_counted(m: re.Match[str]) -> MetricSpec:
    """fid|kid + Nk + optional _full."""
    family, full = m.group(1), bool(m.group(3))
    n = int(m.group(2)) * 1000
    return MetricSpec(m.group(0), family, num_gen=n, max_real=FULL_CAP.get(family) if full else n)


def _name_pr(m: re.Match[str]) -> MetricSpec:
    n, k = int(m.group(1)) * 1000, int(m.group(2))
    return MetricSpec(m.group(0), "pr", num_gen=n, max_real=FULL_CAP["pr"] if m.group(3) else n, k=k)


def _name_is(m: re.Match[str]) -> MetricSpec:
    return MetricSpec(m.group(0), "is", num_gen=int(m.group(1)) * 1000)


def _name_ppl(m: re.Match[str]) -> MetricSpec:
    # NVlabs: ppl_* crop to the face region (FFHQ-aligned), ppl2_* do not; 50k samples, epsilon 1e-4.
    return MetricSpec(m.group(0), "ppl", space=m.group(2), sampling=m.group(3), crop=m.group(1) == "ppl")


# ------------------------------------------------------------------------------------ families
# Each compute function is a thin wrapper, like NVlabs' metric_main: the math lives in its own module.


def _fid(ctx: Any, spec: MetricSpec) -> dict[str, Any]:
    from stylekit.metrics.fid import fid_warning, load_ref_stats
    from stylekit.metrics.frechet import frechet_distance, frechet_distance_features, gaussian_stats

    fa = ctx.features("inception", "A", ctx.count_a(spec))
    if ctx.ref is None:
        fb = ctx.features("inception", "B", spec.max_real)
        value = frechet_distance_features(fa, fb)
    else:
        mu_a, s_a = gaussian_stats(fa)
        stats = load_ref_stats(ctx.ref)
        if stats["mu"].shape != mu_a.shape:
            raise BadInput(f"{ctx.ref.label}: statistics are {stats['mu'].shape[0]}-d but the extractor gives {mu_a.shape[0]}-d")
        value = frechet_distance(mu_a, s_a, stats["mu"], stats["sigma"])
        fb = None
    for label, feats in (("A", fa), ("B", fb)):
        msg = fid_warning(len(feats), f"set {label}") if feats is not None else None
        if msg and msg not in ctx.warnings:
            ctx.warnings.append(msg)
    return {"value": value, "mode": ctx.cfg.mode, "num_gen": len(fa), "num_real": None if fb is None else len(fb)}


def _kid(ctx: Any, spec: MetricSpec) -> dict[str, Any]:
    from stylekit.metrics.fid import load_ref_stats
    from stylekit.metrics.mmd import kid

    fa = ctx.features("inception", "A", ctx.count_a(spec))
    fb = ctx.features("inception", "B", spec.max_real) if ctx.ref is None else load_ref_stats(ctx.ref, kid=True)["feats"]
    r = kid(fa, fb, ctx.cfg.kid_subsets, ctx.cfg.kid_subset_size, ctx.cfg.seed)
    return {"value": r.value, "x1000": r.x1000, "std": r.std, "std_x1000": r.std * 1000, "subsets": r.subsets,
            "subset_size": r.subset_size, "mode": ctx.cfg.mode, "num_gen": len(fa), "num_real": len(fb),
            "note": "value is raw KID; x1000 is the scale most papers print"}


def _clip_fid(ctx: Any, spec: MetricSpec) -> dict[str, Any]:
    from stylekit.metrics.frechet import frechet_distance_features

    fa, fb = ctx.features("clip", "A", ctx.count_a(spec)), ctx.features("clip", "B", spec.max_real)
    ctx.small_set_warning("clip-fid", fa, fb)
    return {"value": frechet_distance_features(fa, fb), "features": "raw CLIP image embeddings"}


def _cmmd(ctx: Any, spec: MetricSpec) -> dict[str, Any]:
    from stylekit.metrics.mmd import cmmd

    fa, fb = ctx.features("clip", "A", ctx.count_a(spec)), ctx.features("clip", "B", spec.max_real)
    return {"value": cmmd(fa, fb), "scale": 1000, "sigma": 10.0, "features": "L2-normalised CLIP image embeddings"}


def _style(ctx: Any, spec: MetricSpec) -> dict[str, Any]:
    return ctx.style_scores(spec)


def _gram(ctx: Any, spec: MetricSpec) -> dict[str, Any]:
    return ctx.gram_scores(spec)


def _precision_recall(ctx: Any, spec: MetricSpec) -> dict[str, Any]:
    from stylekit.metrics.precision_recall import precision_recall

    fa = ctx.features("vgg16", "A", ctx.count_a(spec))
    fb = ctx.features("vgg16", "B", spec.max_real)
    p, r = precision_recall(ctx.to_device(fb), ctx.to_device(fa), k=spec.k)
    return {"precision": p, "recall": r, "k": spec.k, "num_gen": len(fa), "num_real": len(fb),
            "features": ctx.describe("vgg16")}


def _inception_score(ctx: Any, spec: MetricSpec) -> dict[str, Any]:
    from stylekit.metrics.inception_score import inception_score

    logits = ctx.features("inception-logits", "A", ctx.count_a(spec))
    mean, std = inception_score(ctx.to_device(logits), splits=spec.splits)
    return {"value": mean, "std": std, "splits": spec.splits, "num_gen": len(logits), "mode": ctx.cfg.mode}


def _ppl(ctx: Any, spec: MetricSpec) -> dict[str, Any]:
    from stylekit.metrics.ppl import PPLConfig, perceptual_path_length

    n = ctx.count_a(spec)
    result = perceptual_path_length(ctx.generator, ctx.lpips(), PPLConfig(
        num_samples=n, space=spec.space, sampling=spec.sampling, crop=spec.crop, epsilon=spec.epsilon,
        batch=ctx.cfg.batch, seed=ctx.cfg.seed, trunc=ctx.cfg.trunc), ctx.dist)
    return {"value": result.value, "samples": n, "kept": result.kept, "space": spec.space, "sampling": spec.sampling,
            "crop": spec.crop, "epsilon": spec.epsilon, "distance": ctx.describe("lpips")} \
        | ({"samples_per_rank": result.per_rank} if result.per_rank else {})


def _pr_results(name: str, doc: dict[str, Any]) -> dict[str, float]:
    return {f"{name}_precision": float(doc["precision"]), f"{name}_recall": float(doc["recall"])}


def _is_results(name: str, doc: dict[str, Any]) -> dict[str, float]:
    return {f"{name}_mean": float(doc["value"]), f"{name}_std": float(doc["std"])}


for _family in (
    MetricFamily("fid", _fid, "Fréchet Inception distance", ("inception",), stats=True),
    MetricFamily("kid", _kid, "kernel Inception distance (raw; x1000 alongside)", ("inception",), stats=True),
    MetricFamily("clip-fid", _clip_fid, "Fréchet distance of CLIP image embeddings", ("clip",)),
    MetricFamily("cmmd", _cmmd, "CLIP maximum mean discrepancy (x1000)", ("clip",)),
    MetricFamily("style", _style, "style cosine / Fréchet distance of style embeddings", ("style",)),
    MetricFamily("gram", _gram, "distance of mean VGG19 Gram matrices", (), images_only=True),
    MetricFamily("pr", _precision_recall, "precision and recall (k-NN manifolds of VGG16 fc2 features)", ("vgg16",),
                 results=_pr_results),
    MetricFamily("is", _inception_score, "Inception score (10 splits)", ("inception-logits",), reference=False,
                 results=_is_results),
    MetricFamily("ppl", _ppl, "perceptual path length (LPIPS-VGG16)", (), reference=False, generator=True, plain=False),
):
    register_family(_family)

register_pattern(r"(fid|kid)([1-9]\d*)k(_full)?", _name_counted, "fid50k_full", "kid50k_full", "fid50k", "kid50k", "fid10k")
register_pattern(r"pr([1-9]\d*)k([1-9]\d*)(_full)?", _name_pr, "pr50k3_full", "pr50k3")
register_pattern(r"is([1-9]\d*)k", _name_is, "is50k")
register_pattern(r"(ppl2?)_([zw])(full|end)", _name_ppl, "ppl_zfull", "ppl_wfull", "ppl_zend", "ppl_wend", "ppl2_wend")
