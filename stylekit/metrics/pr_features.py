"""VGG16 fc2 features for precision/recall (`pr50k3_full`), from torchvision's ImageNet VGG16.

NVlabs computes precision/recall on the 4096-d fc2 features of the VGG16 that Kynkäänniemi et al.
converted from Keras (`metrics/vgg16.pt`). That file is TorchScript, which stylekit never executes,
so stylekit uses torchvision's ImageNet VGG16 (registry `vgg16`, a plain state dict, loaded with
weights_only): the same architecture and layer (fc2 after its ReLU), other training weights. Images
are centre-cropped square and box-resized to 224 px in PIL, then normalised with ImageNet mean/std.
Numbers are therefore close to, but not identical with, NVlabs' pr50k3_full (docs/metrics.md).
"""

from __future__ import annotations

import os

import torch
from PIL import Image
from torch import nn

from stylekit.errors import BadInput
from stylekit.io.state_dict import read_state_dict
from stylekit.metrics.features import EmbedderExtractor, file_identity
from stylekit.nets.vgg import IMAGENET_MEAN, IMAGENET_STD
from stylekit.weights import weights_path

VGG16_WEIGHTS = "vgg16"
FC2_DIM = 4096
PR_SIZE = 224


class VGG16Fc2(nn.Module):
    """torchvision VGG16 up to fc2 + ReLU: [N, 3, 224, 224] in [0, 1] -> [N, 4096]."""

    def __init__(self, state: dict[str, torch.Tensor] | None = None) -> None:
        super().__init__()
        import torchvision

        net = torchvision.models.vgg16(weights=None)
        if state is not None:
            try:
                net.load_state_dict(state, strict=True)
            except RuntimeError as exc:
                raise BadInput(f"not a torchvision VGG16 state dict ({str(exc).splitlines()[0]})",
                               hint=f"run `stylekit download {VGG16_WEIGHTS}`") from None
        self.features = net.features
        self.avgpool = net.avgpool
        self.head = net.classifier[:5]  # fc1, ReLU, Dropout (eval: identity), fc2, ReLU
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.eval().requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features((x.float() - self.mean) / self.std)
        return self.head(self.avgpool(x).flatten(1))


def vgg16_extractor(weights: str | os.PathLike[str] | None, device: torch.device) -> EmbedderExtractor:
    """The precision/recall feature extractor: registry `vgg16` (default) or a local state dict."""

    path = weights_path(str(weights or VGG16_WEIGHTS))
    state = read_state_dict(path, "VGG16 state dict", f"run `stylekit download {VGG16_WEIGHTS}`")
    net = VGG16Fc2(state).to(device)
    ident = VGG16_WEIGHTS if weights in (None, VGG16_WEIGHTS) else file_identity(path)
    return EmbedderExtractor(f"vgg16-fc2:{ident}", net, FC2_DIM, PR_SIZE, device, resample=Image.Resampling.BOX)
