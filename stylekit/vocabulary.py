"""The vocabulary: one option name, one default and one help text per concept (docs/cli.md).

Declarations take a shared concept with `option(concept="device")` (stylekit/declare.py), so the name,
the default and the help live here once. tests/test_cli_contract.py walks every command and fails when
an option uses a name listed in a concept's `banned` tuple, or a canonical name with another spelling,
default or flag form. To add a concept, add one entry to CONCEPTS; to retire a name, add it to the
concept's `banned` and list the rename in CHANGELOG.md.

Standard library only.
"""

from dataclasses import dataclass
from typing import Any

RUN_PANEL = "Run"
COMMON_PANEL = "Common"
# Where option groups appear in every command's --help: the command's own options (the default panel
# first, then its named panels in the order it declares them), then these, always last and in this order.
SHARED_PANELS = (RUN_PANEL, COMMON_PANEL)


class _Any:
    """Marker: the concept's default depends on the command (a batch size, a learning rate)."""

    def __repr__(self) -> str:
        return "ANY"


ANY: Any = _Any()


@dataclass(frozen=True)
class Concept:
    """One idea the command line names: its flags, the one default (or ANY), help, and banned names."""

    decls: tuple[str, ...]
    help: str
    default: Any = ANY
    off_flag: str | None = None
    panel: str | None = None
    banned: tuple[str, ...] = ()


CONCEPTS: dict[str, Concept] = {
    "network": Concept(
        ("--network", "-n"),
        "StyleGAN2 network: registry name (ffhq-256, ...), NVlabs .pkl, rosinality .pt, stylekit .safetensors or a run directory.",
        banned=("--resume", "--checkpoint", "--ckpt", "--pkl", "--generator", "--network-pkl"),
    ),
    "style_model": Concept(
        ("--style-model",),
        "A train-classifier run directory or its style-model export.",
        banned=("--classifier", "--style-checkpoint", "--embedder-model"),
    ),
    "vgg_weights": Concept(
        ("--vgg-weights",),
        "VGG weights: a registry name (vgg19, vgg16) or a local .pth/.safetensors state dict (offline use).",
        banned=("--weights", "--perceptual-weights", "--vgg", "--vgg-path", "--lpips-weights"),
    ),
    "seed": Concept(("--seed",), "Random seed (same seed, same result).", default=0, panel=RUN_PANEL,
                    banned=("--random-seed", "--rng-seed", "--rng")),
    "seeds": Concept(("--seeds",), "Generator seeds, e.g. 0-99,120 (ranges inclusive).", banned=("--seed-list",)),
    "device": Concept(
        ("--device",),
        "auto | cpu | cuda | cuda:N (auto = CUDA when present; under torchrun each process takes its LOCAL_RANK GPU).",
        default="auto", panel=RUN_PANEL, banned=("--gpu", "--gpus", "--cuda", "--cpu"),
    ),
    "amp": Concept(
        ("--amp",),
        "Mixed precision: autocast in the device's native low-precision dtype (CUDA: bf16, fp16 where bf16 is not "
        "native; CPU: bf16 only where it is native, else fp32).",
        default=False, off_flag="--no-amp", panel=RUN_PANEL,
        banned=("--precision", "--fp16", "--bf16", "--half", "--mixed-precision"),
    ),
    "workers": Concept(
        ("--workers", "-j"),
        "Worker processes (0 = everything in this process; default: auto, chosen for the machine).",
        default=None, panel=RUN_PANEL,
        banned=("--num-workers", "--jobs", "--concurrency", "--procs", "--threads", "--nworkers"),
    ),
    "fresh": Concept(("--fresh",), "Start over: redo what a rerun would skip or resume.", default=False, panel=RUN_PANEL,
                     banned=("--force", "--overwrite", "--restart", "--no-resume", "--redo", "--clean")),
    "batch": Concept(("--batch",), "Batch size.", banned=("--batch-size", "--bs", "--batchsize", "--minibatch")),
    "trunc": Concept(("--trunc",), "Truncation psi (1 = none, 0 = the average image).", default=1.0,
                     banned=("--truncation", "--psi", "--truncation-psi", "--trunc-psi")),
    "epochs": Concept(("--epochs",), "Total training epochs.",
                      banned=("--epochs-decay", "--n-epochs", "--niter", "--niter-decay", "--num-epochs")),
    "out": Concept(("--out", "-o"), "Output path.", banned=("--output", "--outdir", "--output-dir", "--dest", "--out-dir")),
    "size": Concept(("--size",), "Image side in pixels.", banned=("--image-size", "--img-size", "--imsize", "--res")),
    "steps": Concept(("--steps",), "Optimisation steps.", banned=("--num-steps", "--iterations", "--iters", "--n-steps", "--niters")),
    "lr": Concept(("--lr",), "Learning rate.", banned=("--learning-rate", "--lrate")),
    "metrics": Concept(("--metrics",), "Comma list of metric names.", banned=("--metric",)),
    "num_gen": Concept(("--num-gen",), "Generated images for metric names without a count (fid, kid, pr, is, ppl_*).",
                       banned=("--metric-images", "--n-gen", "--num-images", "--num-samples")),
    "k": Concept(("--k", "-k"), "Number of neighbours / top-k.", banned=("--top-k", "--topk", "--neighbours", "--neighbors", "--num-neighbours")),
    "embedder": Concept(("--embedder",), "style | gram | clip.", banned=("--embedding", "--feature-extractor", "--features")),
}

BANNED: dict[str, str] = {name: concept.decls[0] for concept in CONCEPTS.values() for name in concept.banned}

