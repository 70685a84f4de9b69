"""The exported style model: a learned style-similarity embedding plus its style classifier.

Format (a folder, usually the training run directory):
    style_model.safetensors   StyleNet weights (backbone + classification head + projection head)
    style_model.json          {"format": "stylekit-style-model", "format_version": 1, "backbone",
                               "size", "mean", "std", "classes", "embed_dim", "embedding",
                               "feature_dim", "name", "classifier_head", "stylekit_version",
                               ...training facts}
The JSON is written last, so its presence means the export is complete. `classifier_head` (added
compatibly, format_version stays 1) says the safetensors file holds the style classifier
(`classifier.weight/bias`, one row per entry of `classes`): train-classifier always trains one (a
linear probe when the loss is SupCon only). An export without it (older or embedding-only exports:
no classifier tensors or no class names) still embeds; `classify` refuses it (`has_head` is False).
Loading builds the architecture from the JSON (never downloading anything: weights come from the
safetensors file) and never unpickles.

    model = load_style_model("runs/style").to("cuda")
    z = model.embed(images)        # [N, D], L2-normalised; images [N,3,H,W] in [0,1], any size
    logits = model.classify(images)  # [N, C]; model.classes names the columns
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

import stylekit
from stylekit.data.datasets import resize_center_crop
from stylekit.errors import BadInput
from stylekit.io.atomic import write_atomic, write_json_atomic
from stylekit.io.limits import EMBED_DIM_MAX, NET_CLASSES_MAX, build_checked, check_int, parse_json
from stylekit.io.paths import read_regular_text, require_regular_file
from stylekit.nets.style_embedding import StyleNet, StyleNetConfig

WEIGHTS_NAME = "style_model.safetensors"
META_NAME = "style_model.json"
FORMAT = "stylekit-style-model"
FORMAT_VERSION = 1


def export_style_model(model: Any, path: str | os.PathLike[str], meta: dict[str, Any]) -> Path:
    """Write PATH/style_model.safetensors and PATH/style_model.json; returns the folder.

    `model` is a StyleNet; `meta` must hold at least "size" and "classes".
    """
    from safetensors.torch import save_file


    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    for key in ("size", "classes"):
        if key not in meta:
            raise ValueError(f"export_style_model: meta needs '{key}'")
    net = model.module if hasattr(model, "module") else model
    state = {k: v.detach().to("cpu").clone().contiguous() for k, v in net.state_dict().items()}
    doc = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": meta.get("name", f"{net.cfg.backbone}-style"),
        "backbone": net.cfg.backbone,
        "embed_dim": net.embed_dim,
        "projection_dim": net.cfg.embed_dim,
        "embedding": net.cfg.embedding,
        "feature_dim": net.feature_dim,
        "classifier_head": True,
        "mean": list(net.norm[0]),
        "std": list(net.norm[1]),
        "stylekit_version": stylekit.__version__,
        **meta,
    }
    doc["classes"] = list(meta["classes"])
    write_atomic(folder / WEIGHTS_NAME, lambda tmp: save_file(state, str(tmp), metadata={"format": FORMAT}))
    write_json_atomic(folder / META_NAME, doc)
    return folder


def _locate(path: str | os.PathLike[str]) -> Path:
    p = Path(path).expanduser()
    if p.is_file() and p.name in (META_NAME, WEIGHTS_NAME):
        p = p.parent
    elif p.is_file():
        raise BadInput(f"{p} is not a style model", hint=f"give the folder holding {META_NAME} and {WEIGHTS_NAME}")
    if not p.exists():
        raise BadInput(f"style model {p} does not exist", hint="train one with `stylekit train-classifier DATA --out RUN` and pass RUN")
    for name in (META_NAME, WEIGHTS_NAME):
        if not (p / name).is_file():
            raise BadInput(
                f"{p} holds no complete style model ({name} missing)",
                hint="pass a train-classifier run directory that finished (or was exported with --eval-only)",
            )
    return p


class StyleModel:
    """A loaded style model; see the module docstring for the API."""

    def __init__(self, net: Any, meta: dict[str, Any], folder: Path | None = None) -> None:
        self.net = net.eval()
        self.meta = meta
        self.folder = folder
        self.batch_size = 64

    @property
    def classes(self) -> list[str]:
        return list(self.meta["classes"])

    @property
    def has_head(self) -> bool:
        """Whether the export carries the style classifier (and the class names) `classify` needs."""
        return bool(self.meta.get("classifier_head", True)) and len(self.meta.get("classes") or []) > 0

    @property
    def name(self) -> str:
        return str(self.meta.get("name", self.meta["backbone"]))

    @property
    def size(self) -> int:
        return int(self.meta["size"])

    @property
    def embed_dim(self) -> int:
        return int(self.meta["embed_dim"])

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def to(self, device: str | torch.device) -> StyleModel:
        self.net.to(device)
        return self

    def _prepare(self, images: torch.Tensor) -> torch.Tensor:

        if images.dim() == 3:
            images = images[None]
        if images.dim() != 4 or images.shape[1] != 3:
            raise BadInput(f"style model expects images [N,3,H,W], got {list(images.shape)}")
        return resize_center_crop(images.to(self.device, torch.float32), self.size)

    @torch.no_grad()
    def _run(self, images: torch.Tensor, what: str) -> torch.Tensor:
        outs = []
        for start in range(0, images.shape[0], self.batch_size):
            x = self._prepare(images[start : start + self.batch_size])
            outs.append(self.net.embed(x) if what == "embed" else self.net.classifier(self.net.features(x)).float())
        if not outs:
            width = self.embed_dim if what == "embed" else len(self.classes)
            return torch.zeros(0, width, device=self.device)
        return torch.cat(outs)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """[N,3,H,W] floats in [0,1], any size -> [N,D] L2-normalised style embeddings."""
        return self._run(images, "embed")

    def classify(self, images: torch.Tensor) -> torch.Tensor:
        """[N,3,H,W] floats in [0,1], any size -> [N,C] style logits (columns follow `.classes`)."""
        self.require_head()
        return self._run(images, "classify")

    def require_head(self) -> None:
        """BadInput (exit 2) unless the export carries a classifier head and class names."""
        if not self.has_head:
            raise BadInput(f"style model {self.folder or self.name} has no classifier head (it can embed, not classify)",
                           hint="train one with `stylekit train-classifier DATA --out RUN` (every --loss trains the head) and pass --style-model RUN")


def read_style_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    folder = _locate(path)

    meta = parse_json(read_regular_text(folder / META_NAME, "style model metadata"), str(folder / META_NAME))
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise BadInput(f"{folder / META_NAME} is not a stylekit style model", hint="give a train-classifier run directory")
    return meta


def style_net_config(meta: dict[str, Any], source: str) -> Any:
    """The StyleNetConfig a style_model.json declares, its sizes checked against sane bounds."""

    classes = meta.get("classes")
    if not isinstance(classes, list) or not isinstance(meta.get("backbone"), str):
        raise BadInput(f"{source}: needs a 'backbone' name and a 'classes' list", hint="re-export the style model")
    check_int(len(classes), "len(classes)", 0, NET_CLASSES_MAX, source)  # 0: an embedding-only export
    dim = meta.get("projection_dim", meta.get("embed_dim"))
    return StyleNetConfig(
        backbone=meta["backbone"],
        num_classes=max(1, len(classes)),
        embed_dim=check_int(dim, "projection_dim", 1, EMBED_DIM_MAX, source),
        embedding=meta.get("embedding", "projection"),
    )


def load_style_model(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> StyleModel:
    """Load an export written by `export_style_model` (folder, or either of its two files).

    The network is built only once its declared sizes are within bounds and fit the tensors the
    weights file holds (stylekit.io.limits.build_checked), so a damaged or hostile JSON cannot make
    this allocate more than the weights file could explain.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file


    folder = _locate(path)
    meta = read_style_meta(folder)
    weights = require_regular_file(folder / WEIGHTS_NAME, "style model weights")
    cfg = style_net_config(meta, str(folder / META_NAME))
    try:
        with safe_open(str(weights), framework="pt", device="cpu") as fh:
            present = {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}
        state = load_file(str(weights))
    except Exception as exc:  # noqa: BLE001 - a damaged file is bad input
        raise BadInput(f"cannot read {weights}: {exc}", hint="re-export the style model") from None
    head = "classifier.weight" in present and "classifier.bias" in present
    classes = list(meta.get("classes") or [])
    if not head or not classes:  # an embedding-only export: it embeds, it cannot classify
        meta = {**meta, "classifier_head": False}
    elif present["classifier.weight"][0] != len(classes):
        raise BadInput(f"{weights} has {present['classifier.weight'][0]} classifier rows but "
                       f"{folder / META_NAME} names {len(classes)} classes", hint="re-export the style model")
    cfg = replace(cfg, num_classes=present["classifier.weight"][0] if head else 1)
    net = build_checked(lambda: StyleNet(cfg, pretrained=False), present, str(weights), f"{META_NAME} (backbone {cfg.backbone})",
                        optional=lambda key: not head and key.startswith("classifier."))
    net.load_state_dict(state, strict=head)
    if "mean" in meta and "std" in meta:
        net.mean.copy_(torch.tensor(meta["mean"], dtype=torch.float32, device="cpu").view(1, 3, 1, 1))
        net.std.copy_(torch.tensor(meta["std"], dtype=torch.float32, device="cpu").view(1, 3, 1, 1))
    return StyleModel(net, meta, folder).to(device)
