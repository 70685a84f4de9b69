"""`stylekit train-classifier`: the options of the art-style classifier + style-similarity embedding
(defaults: SupCon (Khosla et al. 2020) with a P x K sampler, AdamW and a cosine schedule)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

from stylekit.declare import Config, argument, flag_name, float_list, option, require
from stylekit.standins import is_random

MODEL = "Model"
LOSS = "Loss"
TRAIN = "Training"
EVAL = "Evaluation"


class Loss(StrEnum):
    ce = "ce"
    supcon = "supcon"
    ce_supcon = "ce+supcon"


class EvalSplit(StrEnum):
    train = "train"
    val = "val"
    test = "test"


SMALL = "small-cnn"
# What only training reads: --eval-only evaluates the model as it was trained, so these would be ignored there.
TRAINING_ONLY = ("backbone", "pretrained", "weights", "embed_dim", "size", "loss", "supcon_weight", "temperature",
                 "label_smoothing", "epochs", "lr", "wd", "freeze_backbone_epochs", "balanced_sampler", "classes_per_batch",
                 "per_class")


@dataclass(frozen=True)
class ClassifierConfig(Config):
    data: Path = argument("Prepared folder (manifest.csv with splits) or class folders DATA/<style>/*.png.", cover=())
    out: Path = option(help="Run directory (re-running resumes; --fresh starts over).", concept="out", cover=())
    # -- model
    backbone: str = option(SMALL, "small-cnn | resnet18/34/50 | efficientnet_b0..b3 | vgg16_bn | vit_b_16 | convnext_tiny | "
                           "timm:<name> | clip:<open_clip model>.", panel=MODEL, cover=())
    pretrained: bool | None = option(None, "ImageNet/CLIP weights via the registry (default: on, except small-cnn, which "
                                     "always trains from scratch).", off_flag="--no-pretrained", panel=MODEL, cover=())
    weights: str | None = option(None, "Backbone weights: a local .pth/.safetensors file, a registry name (needed for "
                                 "timm:<name> pretrained), or random (a random-init stand-in, for trying offline).",
                                 flags="--backbone-weights", panel=MODEL, cover=(None, "random"))
    embed_dim: int = option(256, "Projection (style embedding) size.", ge=2, le=65_536, panel=MODEL, cover=(8,))
    size: int | None = option(None, "Input size (default: 64 for small-cnn, 224 otherwise; vit_b_16 and clip: 224 only).",
                              concept="size", unit="px", ge=16, le=4096, panel=MODEL, cover=(32,))
    # -- loss
    loss: Loss = option(Loss.ce_supcon, "ce | supcon | ce+supcon.", panel=LOSS)
    supcon_weight: float = option(1.0, "Weight of SupCon in ce+supcon.", ge=0, le=1e6, panel=LOSS, cover=())
    temperature: float = option(0.1, "SupCon temperature.", gt=0, le=100, panel=LOSS, cover=())
    label_smoothing: float = option(0.1, "CE label smoothing.", ge=0, le=0.99, panel=LOSS, cover=())
    # -- training
    epochs: int = option(20, concept="epochs", ge=1, le=100_000, panel=TRAIN, cover=(1,))
    batch: int = option(64, "Global batch size (split over torchrun processes).", concept="batch", ge=2, le=65_536,
                        panel=TRAIN, cover=(8,))
    lr: float | None = option(None, "AdamW learning rate (default 1e-3 from scratch, 3e-4 pretrained); cosine schedule, 1 "
                              "warm-up epoch.", concept="lr", gt=0, le=1.0, panel=TRAIN, cover=())
    wd: float = option(0.05, "AdamW weight decay.", ge=0, le=10, panel=TRAIN, cover=())
    freeze_backbone_epochs: int = option(0, "Train only the heads for the first N epochs.", ge=0, le=100_000, panel=TRAIN,
                                         cover=(0, 1))
    balanced_sampler: bool | None = option(None, "P classes x K images per batch (default: on when the loss uses SupCon "
                                           "or --classes-per-batch/--per-class is given).", off_flag="--no-balanced-sampler",
                                           panel=TRAIN, cover=())
    classes_per_batch: int | None = option(None, "P for the balanced sampler (default: --batch / K).", ge=1, le=65_536,
                                           panel=TRAIN, cover=(None, 2))
    per_class: int | None = option(None, "K for the balanced sampler (default 4).", ge=1, le=65_536, panel=TRAIN,
                                   cover=(None, 4))
    # the default is text: the framework hands a parsed option's default to the CLI as written
    split: tuple[float, ...] = option("0.8,0.1,0.1", "train,val,test fractions for class folders (prepared folders keep "
                                      "their split).", ge=0, le=1, parse=float_list, panel=TRAIN, cover=())
    # -- evaluation
    eval_only: bool = option(False, "Evaluate --style-model on DATA instead of training.", panel=EVAL, cover=())
    style_model: Path | None = option(None, "--eval-only: the run directory or style-model export to evaluate.",
                                      concept="style_model", panel=EVAL, cover=())
    eval_split: EvalSplit = option(EvalSplit.test, "Split evaluated by --eval-only (all images if it is empty).", panel=EVAL,
                                   cover=())
    # -- run
    workers: int | None = option(help="Data loader workers (default: auto = one per core but one on CPU, up to 8 on CUDA).",
                                 concept="workers", ge=0, le=256, cover=())
    amp: bool = option(concept="amp")
    device: str = option(concept="device", cover=())
    seed: int = option(concept="seed", help="Seed for init, split, sampler and augmentation.", ge=0, le=2**32 - 1, cover=())
    fresh: bool = option(concept="fresh", help="Start over instead of resuming.", cover=())
    # -- library only (not options)
    warmup_epochs: float = 1.0
    check_images: bool = True
    stop_after_steps: int | None = None  # tests: request a stop (as SIGTERM would) after this many steps

    def check(self) -> None:
        require(len(self.split) == 3 and abs(sum(self.split) - 1.0) <= 1e-6, f"bad --split {','.join(map(str, self.split))}",
                hint="three non-negative fractions train,val,test that sum to 1, e.g. 0.8,0.1,0.1")
        require(not (self.eval_only and self.style_model is None), "--eval-only needs --style-model PATH",
                hint="a train-classifier run directory or style model export")
        require(self.eval_only or self.style_model is None, "--style-model is read only with --eval-only",
                hint="add --eval-only to evaluate it, or drop --style-model")
        require(self.eval_only or self.eval_split is EvalSplit.test, "--eval-split is read only with --eval-only",
                hint="training evaluates the test split at the end; drop --eval-split")
        if self.eval_only:
            ignored = [flag_name(f.name, f.metadata["decl"]) for f in fields(self)
                       if f.name in TRAINING_ONLY and getattr(self, f.name) != f.default]
            require(not ignored, f"--eval-only evaluates the model as trained: {', '.join(ignored)} would be ignored",
                    hint="drop " + " and ".join(ignored))
        require(not (self.backbone == SMALL and self.pretrained), "--pretrained does not apply to --backbone small-cnn",
                hint="small-cnn always trains from scratch: drop --pretrained, or pick a pretrained backbone")
        require(not (is_random(self.weights) and self.pretrained), "--backbone-weights random is a random-init stand-in: "
                "it contradicts --pretrained", hint="drop --pretrained (or --backbone-weights random)")
        require(not (self.backbone == SMALL and self.weights and not is_random(self.weights)),
                "--backbone-weights does not apply to --backbone small-cnn (it always trains from scratch)",
                hint="drop --backbone-weights")
        pk_given = self.classes_per_batch is not None or self.per_class is not None
        require(not (pk_given and self.balanced_sampler is False),
                "--classes-per-batch/--per-class set the balanced sampler that --no-balanced-sampler turns off",
                hint="drop one of them")
        if self.classes_per_batch is not None and self.per_class is not None:
            pk = self.classes_per_batch * self.per_class
            require(pk == self.batch, f"--classes-per-batch {self.classes_per_batch} x --per-class {self.per_class} = {pk} "
                    f"images per batch, but --batch is {self.batch}", hint=f"pass --batch {pk}, or drop one of P and K")
        require(self.freeze_backbone_epochs <= self.epochs,
                f"--freeze-backbone-epochs {self.freeze_backbone_epochs} is more than --epochs {self.epochs}",
                hint="the frozen epochs are the first ones of --epochs")

    @property
    def uses_supcon(self) -> bool:
        return self.loss in (Loss.supcon, Loss.ce_supcon)

    @property
    def balanced(self) -> bool:
        """Whether batches are P classes x K images (explicit flag, else P/K given, else the loss uses SupCon)."""
        if self.balanced_sampler is not None:
            return self.balanced_sampler
        return self.uses_supcon or self.classes_per_batch is not None or self.per_class is not None

    @property
    def stand_in(self) -> bool:
        """Whether the backbone is the random-init stand-in (`--backbone-weights random`)."""
        return is_random(self.weights)

    def to_dict(self) -> dict[str, Any]:
        """The run's config.json values (a test's stop request is not part of the run)."""
        values = super().to_dict()
        values.pop("stop_after_steps")
        return values
