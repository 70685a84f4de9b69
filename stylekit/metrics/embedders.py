"""Style feature models behind the FeatureExtractor protocol: a style model export, VGG Gram sketches.

`score --style-model`, `similar --embedder` and `classify` build their models here, so one model file
gives the same cache identity (and so the same cached features) to every command.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from stylekit.errors import MissingResource
from stylekit.metrics.features import EmbedderExtractor, file_identity
from stylekit.metrics.gram import GramSketchExtractor
from stylekit.metrics.style import load_style_model
from stylekit.standins import is_random

GRAM_SIZE = 256  # default image side for VGG Gram inputs
TRAIN_HINT = "stylekit train-classifier DATA --out runs/style"


def load_style_model_or_exit(path: str | os.PathLike[str], device: torch.device | str) -> Any:
    """The style model export at `path`; MissingResource (exit 3) naming the command that makes one."""

    p = Path(path).expanduser()
    if not p.exists():
        raise MissingResource(f"style model {path} not found", fetch_command=TRAIN_HINT,
                              hint=f"train and export one ({TRAIN_HINT}) and pass the run directory")
    return load_style_model(p, device)


def _identity(model: Any) -> str:
    folder = Path(model.folder) if getattr(model, "folder", None) else None
    return file_identity(folder / "style_model.safetensors") if folder is not None else "in-memory"


def style_embedder(model: Any, size: int | None = None) -> EmbedderExtractor:
    """L2-normalised style embeddings of a loaded StyleModel (cached under the model file's identity).

    A style model resizes to its training size itself: pre-resizing to another size first would give
    different embeddings from `model.embed()` on the same files, so `size` defaults to the model's.
    """
    return EmbedderExtractor(f"style:{model.name}:{_identity(model)}", model.embed, int(model.embed_dim),
                             size or int(model.size), model.device)


def style_logits(model: Any, size: int | None = None) -> EmbedderExtractor:
    """Style classifier logits [C] of a loaded StyleModel with a head (columns follow `model.classes`)."""
    return EmbedderExtractor(f"style-logits:{model.name}:{_identity(model)}", model.classify, len(model.classes),
                             size or int(model.size), model.device)


def gram_embedder(net: Any, vgg_weights: str | None, size: int | None = None) -> Any:
    """The 1280-d Gram sketch of `net` (a loaded VGG19, see metrics.gram) as a cacheable extractor."""

    if vgg_weights in (None, "vgg19"):
        ident = "vgg19"
    else:  # the stand-in by its seed, a local file by its bytes
        ident = net.weights_source if is_random(vgg_weights) else file_identity(net.weights_source)
    return GramSketchExtractor(net, size=size or GRAM_SIZE, weights_id=ident)
