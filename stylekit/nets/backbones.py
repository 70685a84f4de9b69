"""Feature extractors for the style classifier: torchvision, timm, open_clip visual towers, small-cnn.

`build_backbone(spec, pretrained, weights)` returns a module mapping a normalised image batch
[N,3,H,W] to a feature vector [N,D], with D and the input normalisation the network expects.
Pretrained weights never come from torchvision/timm/open_clip's own downloaders: they are resolved
through the stylekit registry (`stylekit download NAME`, cached, checksummed, offline-aware) or an
explicit `--weights PATH`, and loaded as state dicts with `torch.load(weights_only=True)` or
safetensors.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple, NoReturn

import torch
from torch import nn

from stylekit.errors import BadInput, MissingResource
from stylekit.io.state_dict import read_state_dict
from stylekit.offline import offline, quiet_hub, require_hub_allowed

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# torchvision ImageNet classifiers; their weights are registry entries of the same name (stylekit/weights.py).
TORCHVISION_BACKBONES = (
    "resnet18", "resnet34", "resnet50", "efficientnet_b0", "efficientnet_b1", "efficientnet_b2",
    "efficientnet_b3", "vgg16_bn", "vit_b_16", "convnext_tiny",
)
FIXED_SIZE = {"vit_b_16": 224}  # position embeddings pin the input size


class Backbone(NamedTuple):
    module: nn.Module
    dim: int
    norm: tuple[tuple[float, float, float], tuple[float, float, float]]


class SmallCNN(nn.Module):
    """Four conv blocks (conv-GN-ReLU; a stride-2 stem, then max-pools), mean+std pooling.

    Cheap enough for CPU training at 64px (about 0.4M parameters). GroupNorm instead of BatchNorm:
    per-sample statistics make a DDP run identical to a single-process one and train/eval behave
    the same. Mean+std pooling keeps the first- and second-order channel statistics that texture
    and style live in (the same statistics AdaIN and Gram matrices use).
    """

    def __init__(self, widths: tuple[int, int, int, int] = (32, 64, 128, 256)) -> None:
        super().__init__()

        def block(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.GroupNorm(8, cout), nn.ReLU(inplace=True)]

        w1, w2, w3, w4 = widths
        self.features = nn.Sequential(
            *block(3, w1, stride=2),
            *block(w1, w2), nn.MaxPool2d(2),
            *block(w2, w3), nn.MaxPool2d(2),
            *block(w3, w4),
        )
        self.out_dim = 2 * w4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x).flatten(2).float()
        return torch.cat([f.mean(-1), f.var(-1, unbiased=False).add(1e-6).sqrt()], dim=1)


def parse_spec(spec: str) -> tuple[str, str]:
    """'resnet50' -> ('torchvision', 'resnet50'); 'timm:x' -> ('timm', 'x'); 'clip:ViT-B-32' -> ('clip', ...)."""
    spec = spec.strip()
    if spec == "small-cnn":
        return "small", spec
    if spec.startswith("timm:") and len(spec) > 5:
        return "timm", spec[5:]
    if spec.startswith("clip:") and len(spec) > 5:
        return "clip", spec[5:]
    if spec in TORCHVISION_BACKBONES:
        return "torchvision", spec
    if spec.startswith("pix2pix-ref:"):
        return "pix2pix-ref", spec
    raise BadInput(
        f"unknown --backbone '{spec}'",
        hint=f"use small-cnn, {', '.join(TORCHVISION_BACKBONES)}, timm:<name> or clip:<open_clip model>",
    )


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    return read_state_dict(path, "backbone state dict", "give a torch state dict (.pth) or .safetensors file")


def _load_into(model: nn.Module, state: dict[str, torch.Tensor], path: Path, allow_unexpected: bool) -> None:
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or (result.unexpected_keys and not allow_unexpected):
        raise BadInput(
            f"weights {path} do not match the backbone: missing {result.missing_keys[:3]}, unexpected {result.unexpected_keys[:3]}",
            hint="give weights for the same architecture as --backbone",
        )


def _torchvision(name: str, pretrained: bool, weights: str | os.PathLike[str] | None) -> Backbone:
    import torchvision.models as tvm

    model = getattr(tvm, name)(weights=None)
    if pretrained or weights:
        from stylekit.weights import weights_path

        path = weights_path(os.fspath(weights) if weights else name)
        _load_into(model, _read_state_dict(path), path, allow_unexpected=False)
    if name.startswith("resnet"):
        dim = model.fc.in_features
        model.fc = nn.Identity()
    elif name.startswith("efficientnet"):
        dim = model.classifier[1].in_features
        model.classifier = nn.Identity()
    elif name == "vgg16_bn":
        dim = model.classifier[-1].in_features
        model.classifier[-1] = nn.Identity()
    elif name == "vit_b_16":
        dim = model.heads.head.in_features
        model.heads = nn.Identity()
    else:  # convnext_tiny
        dim = model.classifier[2].in_features
        model.classifier[2] = nn.Identity()
    return Backbone(model, int(dim), (IMAGENET_MEAN, IMAGENET_STD))


def _timm(name: str, pretrained: bool, weights: str | os.PathLike[str] | None) -> Backbone:
    import timm

    if pretrained and not weights:
        raise MissingResource(
            f"pretrained weights for timm:{name} are not in the stylekit registry",
            hint="download the model's state dict (.safetensors or .pth) and pass --backbone-weights PATH, or use --no-pretrained",
        )
    require_hub_allowed(name, "--backbone", "timm:local-dir:DIR")
    quiet_hub()
    try:
        model = timm.create_model(name, pretrained=False, num_classes=0)
    except (RuntimeError, OSError) as exc:
        _unknown("timm", name, exc, "see timm.list_models()")
    if weights:
        from stylekit.weights import weights_path

        path = weights_path(os.fspath(weights))
        _load_into(model, _read_state_dict(path), path, allow_unexpected=True)  # classifier keys are dropped
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    mean = tuple(cfg.get("mean", IMAGENET_MEAN))
    std = tuple(cfg.get("std", IMAGENET_STD))
    return Backbone(model, int(model.num_features), (mean, std))  # type: ignore[arg-type]


class _ClipVisual(nn.Module):
    def __init__(self, visual: nn.Module) -> None:
        super().__init__()
        self.visual = visual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.visual(x)
        return out[0] if isinstance(out, tuple) else out


def _clip(name: str, pretrained: bool, weights: str | os.PathLike[str] | None) -> Backbone:
    if pretrained or weights:
        from stylekit.nets.clip import load_clip  # registry weights; offline -> MissingResource (exit 3)

        bundle = load_clip(name, weights=os.fspath(weights) if weights else None, device="cpu")
        visual = bundle.model.visual.float()
        return Backbone(_ClipVisual(visual), int(visual.output_dim), (tuple(bundle.mean), tuple(bundle.std)))  # type: ignore[arg-type]
    require_hub_allowed(name, "--backbone", "clip:local-dir:DIR")
    quiet_hub()
    import open_clip

    try:
        model = open_clip.create_model(name, pretrained=None)
    except (RuntimeError, OSError) as exc:
        _unknown("open_clip", name, exc, "see open_clip.list_models()")
    visual = model.visual.float()
    mean = tuple(getattr(visual, "image_mean", None) or CLIP_MEAN)
    std = tuple(getattr(visual, "image_std", None) or CLIP_STD)
    return Backbone(_ClipVisual(visual), int(visual.output_dim), (mean, std))  # type: ignore[arg-type]


def _unknown(library: str, name: str, exc: Exception, hint: str) -> NoReturn:
    """A model a library could not build: offline, that may be a hub file missing from its cache (exit 3)."""
    if offline():
        raise MissingResource(f"{library} model '{name}' could not be built offline ({type(exc).__name__}: {exc})",
                              hint="its library may need files from the Hugging Face hub; fetch them once with network "
                              "access (run the same command without STYLEKIT_OFFLINE=1), or pass a local-dir: model") from None
    raise BadInput(f"unknown {library} model '{name}': {exc}", hint=hint) from None


def check_weights_available(spec: str, pretrained: bool, weights: str | os.PathLike[str] | None) -> None:
    """Fail fast (before a long data scan) when pretrained weights cannot be had: exit 3 / exit 2."""
    kind, name = parse_spec(spec)
    if kind == "torchvision" and (pretrained or weights):
        from stylekit.weights import weights_path

        weights_path(os.fspath(weights) if weights else name)
    elif kind == "timm" and pretrained and not weights:
        _timm(name, pretrained, weights)
    elif weights:
        from stylekit.weights import weights_path

        weights_path(os.fspath(weights))


def fixed_input_size(spec: str) -> int | None:
    """The only input size a backbone accepts (ViT position embeddings), or None when any size works."""
    kind, name = parse_spec(spec)
    if kind == "torchvision":
        return FIXED_SIZE.get(name)
    if kind == "clip":
        return 224
    return None


def sync_batchnorm(module: nn.Module) -> nn.Module:
    """`module` with every BatchNorm synchronised across processes, each norm layer kept what it is.

    torch's `SyncBatchNorm.convert_sync_batchnorm` turns timm's fused `BatchNormAct2d` (norm + its
    activation and drop) into a bare SyncBatchNorm, silently dropping the activation; timm's
    conversion keeps it (`SyncBatchNormAct`) and converts plain torch BatchNorms like torch does.
    """
    from timm.layers import convert_sync_batchnorm

    return convert_sync_batchnorm(module)


def build_backbone(spec: str, pretrained: bool = False, weights: str | os.PathLike[str] | None = None) -> Backbone:
    """Build the feature extractor named by `spec`; see module docstring for where weights come from."""
    kind, name = parse_spec(spec)
    if kind == "small":
        if weights:
            raise BadInput("--backbone-weights does not apply to small-cnn (it always trains from scratch)", hint="drop --backbone-weights")
        net = SmallCNN()
        return Backbone(net, net.out_dim, (HALF, HALF))
    if kind == "pix2pix-ref":  # a train-pix2pix reference encoder; its weights are in the style-model export
        from stylekit.nets.ref_encoder import RefCodeBackbone

        ref = RefCodeBackbone.from_spec(name)
        return Backbone(ref, ref.encoder.style_dim, (HALF, HALF))
    if kind == "torchvision":
        return _torchvision(name, pretrained, weights)
    if kind == "timm":
        return _timm(name, pretrained, weights)
    return _clip(name, pretrained, weights)
