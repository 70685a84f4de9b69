"""`stylekit score A B` / `score --network N REF`: the options of the metric registry's scoring (defaults:
clean-fid for FID/KID, NVlabs' metric names and counts).

The metric names are parsed here, once: `cfg.metrics` holds resolved MetricSpecs (stylekit/metrics/
registry.py, standard library only), and `cfg.specs` the metrics to compute (the defaults those of
`fid,kid,style` that B supports when it is precomputed statistics).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from stylekit.declare import Config, argument, option, require
from stylekit.metrics.registry import DEFAULT_NUM_GEN, FAMILIES, MetricSpec, parse_metrics
from stylekit.standins import random_network_resolution

GENERATOR = "Generator"
MODELS = "Feature models"
METRICS = "Metric settings"

DEFAULT_METRICS = ("fid", "kid", "style")
STATS_PREFIX = "stats:"
LAST_SEED = 2**32 - 1


class FidMode(StrEnum):
    clean = "clean"
    legacy_pytorch = "legacy_pytorch"
    legacy_tensorflow = "legacy_tensorflow"


class Embedder(StrEnum):
    style = "style"
    gram = "gram"
    clip = "clip"


def metric_specs(text: str, option_name: str = "--metrics") -> tuple[MetricSpec, ...]:
    """'fid50k_full,kid' -> resolved metric names (duplicates dropped, order kept); BadInput names the valid ones."""
    return tuple(parse_metrics(text))


@dataclass(frozen=True)
class ScoreConfig(Config):
    a: str | None = argument("Image set A: folder or .zip (with --network: the reference set).", default=None, cover=())
    b: str | None = argument("Image set B: folder, .zip, or stats:NAME/RES/SPLIT (SPLIT optional).", default=None, cover=())
    metrics: tuple[MetricSpec, ...] | None = option(
        None, "Comma list of metric registry names (default fid,kid,style; against stats: only fid,kid).", concept="metrics",
        parse=metric_specs, cover=("kid,style", "fid,gram"))
    out: str | None = option(None, "Also write the JSON report to this file (an existing report is kept: --fresh replaces it).",
                             concept="out", cover=())
    fresh: bool = option(concept="fresh", help="Replace an existing --out report.", cover=())
    # -- generator
    network: str | None = option(None, "Score a generator's samples against the reference set: registry name, .pkl, .pt, "
                                 ".safetensors, run directory, or random:RES (a random-init stand-in).", concept="network",
                                 panel=GENERATOR, cover=())
    num_gen: int | None = option(None, "With --network: generated images per metric. Default: the count in the metric's "
                                 f"name (fid50k_full: 50,000), else {DEFAULT_NUM_GEN:,}; an explicit --num-gen wins over a "
                                 "name's count (the report records the count used).", concept="num_gen", unit="images",
                                 ge=1, le=1_000_000, panel=GENERATOR, cover=())
    trunc: float = option(concept="trunc", help="With --network: truncation psi (1 = none).", ge=-10, le=10, panel=GENERATOR,
                          cover=())
    # -- feature models
    mode: FidMode = option(FidMode.clean, "clean-fid mode for fid/kid.", panel=MODELS, cover=())
    embedder: Embedder | None = option(None, "Embeddings of the style metric (default: style with --style-model, else clip).",
                                       concept="embedder", panel=MODELS, cover=(Embedder.gram,))
    style_model: str | None = option(None, "--embedder style: the style model (a train-classifier run or its export).",
                                     concept="style_model", panel=MODELS, cover=())
    clip_model: str = option("ViT-B-32", "open_clip architecture name, or a local open_clip model folder.", panel=MODELS,
                             cover=())
    clip_weights: str | None = option(None, "CLIP weights file, or random (a random-init stand-in); default: registry "
                                      "clip-vit-b-32 for ViT-B-32.", panel=MODELS, cover=())
    vgg_weights: str | None = option(None, "VGG19 weights for gram: registry name, local file, or random (a random-init "
                                     "stand-in); default: registry vgg19.", concept="vgg_weights", panel=MODELS, cover=())
    inception_weights: str | None = option(None, "FID Inception weights: a local file, or random (a random-init stand-in); "
                                           "default: registry inception-fid.", panel=MODELS, cover=())
    size: int | None = option(None, "Image side fed to VGG (gram; default 256) and to a style model (default: the size it was "
                              "trained at).", concept="size", unit="px", ge=32, le=4096, panel=MODELS, cover=(32, 64))
    # -- metric settings
    pairs: bool = option(False, "Match A and B by file name: per-pair style cosine and Gram distance.", panel=METRICS)
    kid_subsets: int = option(100, "KID: number of random subsets.", ge=1, le=100_000, panel=METRICS, cover=(100, 1))
    kid_subset_size: int = option(1000, "KID: max images per subset.", ge=2, le=1_000_000, panel=METRICS, cover=(1000, 2))
    cache: bool = option(True, "Per-image feature cache in $STYLEKIT_HOME/features.", panel=METRICS, cover=())
    # -- run
    batch: int = option(32, "Images per forward pass.", concept="batch", ge=1, le=4096, cover=(32, 1))
    workers: int | None = option(help="Decoding worker processes (0 = in the main process; default: auto = a decoding thread "
                                 "beside the model on CPU, one process per core up to 8 on CUDA).", concept="workers", ge=0,
                                 le=256, cover=())
    device: str = option(concept="device", cover=())
    seed: int = option(concept="seed", help="RNG seed: KID subsets, PPL latents; with --network the first generator seed "
                       "(sample i is seed --seed + i).", ge=0, le=LAST_SEED, cover=())
    # -- library only (not options)
    generator: Any = None  # an in-memory generator instead of loading `network` (a trainer's G_ema; network = its label)
    default_num_gen: int = DEFAULT_NUM_GEN  # samples for names without a count when num_gen is not given (a trainer's setting)
    cache_dir: str | None = None  # default $STYLEKIT_HOME/features
    vgg16_weights: str | None = None  # VGG16 state dict for pr and LPIPS (default: registry vgg16)
    extractors: dict[str, Any] = field(default_factory=dict)  # kind -> factory(cfg, device), overrides EXTRACTORS

    def __post_init__(self) -> None:
        if isinstance(self.metrics, list | tuple) and all(isinstance(m, str) for m in self.metrics):
            object.__setattr__(self, "metrics", ",".join(self.metrics))  # a Python caller's names: parsed like the CLI's
        if self.generator is not None and self.network is None:
            object.__setattr__(self, "network", "generator")
        if self.network is not None and self.b is None:  # score --network N REF: the one set given is the reference
            object.__setattr__(self, "b", self.a)
            object.__setattr__(self, "a", None)
        super().__post_init__()

    def check(self) -> None:
        generated = self.network is not None
        require(not (generated and self.a is not None), "with --network give one image set (the reference), not two",
                hint="stylekit score --network NET --num-gen 5000 REF")
        require(generated or (self.a is not None and self.b is not None),
                "score needs two image sets A and B, or --network NET and a reference set",
                hint="stylekit score real/ generated/   or   stylekit score --network NET REF")
        require(generated or self.num_gen is None, "--num-gen needs --network", hint="with image folders every image of A is used")
        require(not (self.pairs and generated), "--pairs needs two image sets, not --network")
        require(not (self.pairs and self.b_is_stats), "--pairs needs two image sets, not precomputed statistics")
        spec = self.network if generated and self.generator is None else None
        if spec is not None and spec.startswith("random:"):
            res = random_network_resolution(spec) or 0
            require(4 <= res <= 1024 and not res & (res - 1), f"--network {spec}: the stand-in is random:RES with RES a "
                    "power of two from 4 to 1024", hint="e.g. --network random:64")
        embedder = self.style_embedder
        require(embedder is not Embedder.style or bool(self.style_model), "--embedder style needs --style-model RUN",
                hint="a train-classifier run directory or its export")
        require(embedder is Embedder.style or not self.style_model,
                f"--style-model is used with --embedder style, not --embedder {embedder.value}", hint="drop one of them")
        for spec in self.specs:
            self._check_metric(spec, generated)
        if generated:
            last = self.seed + max(self.count(s) or 0 for s in self.specs) - 1
            require(last <= LAST_SEED, f"--seed {self.seed} + the generated images run past the last seed 2^32 - 1",
                    hint="use a smaller --seed or --num-gen")

    def _check_metric(self, spec: MetricSpec, generated: bool) -> None:
        """One metric can be computed from what was given (a generator or two sets, statistics as B)."""
        family = FAMILIES[spec.family]
        require(not (family.images_only and generated), f"--metrics {spec.name} compares two image sets; it cannot score "
                "a generator", hint="generate images with `stylekit generate` and score the folder, or leave it out")
        require(generated or not family.generator, f"--metrics {spec.name} is computed from a generator",
                hint=f"stylekit score --network NET --metrics {spec.name}")
        require(self.b is not None or not family.reference, f"--metrics {spec.name} needs a reference image set",
                hint=f"stylekit score --network NET REF --metrics {spec.name}")
        require(not (self.b_is_stats and family.reference and not family.stats),
                f"--metrics {spec.name} cannot be computed against precomputed statistics {self.b}",
                hint="use fid/kid metrics (fid50k_full, kid50k_full ...), or give an image folder as B")

    @property
    def b_is_stats(self) -> bool:
        """Whether B names precomputed statistics (stats:NAME/RES)."""
        return self.b is not None and self.b.startswith(STATS_PREFIX)

    @property
    def style_embedder(self) -> Embedder:
        return self.embedder or (Embedder.style if self.style_model else Embedder.clip)

    @property
    def specs(self) -> tuple[MetricSpec, ...]:
        """The metrics to compute: --metrics, else the defaults (those B supports when it is statistics)."""
        if self.metrics is not None:
            return self.metrics
        defaults = metric_specs(",".join(DEFAULT_METRICS))
        return tuple(s for s in defaults if FAMILIES[s.family].stats) if self.b_is_stats else defaults

    def count(self, spec: MetricSpec) -> int | None:
        """Images of A a metric uses: --num-gen when given (it wins over the name's count), else the name's
        count, else all of a folder A / `default_num_gen` samples of a generator."""
        if self.num_gen is not None:
            return self.num_gen
        if spec.num_gen is not None:
            return spec.num_gen
        return self.default_num_gen if self.network is not None else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready options (metrics as their names; the in-memory generator and extractors left out)."""
        values = super().to_dict()
        values["metrics"] = None if self.metrics is None else [s.name for s in self.metrics]
        for key in ("generator", "extractors"):
            values.pop(key)
        return values
