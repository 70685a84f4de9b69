"""SyncBatchNorm conversion for DDP keeps every backbone family the same network (eval outputs identical).

torch's own conversion turns timm's BatchNormAct2d into a bare SyncBatchNorm and drops its activation.
Conversion needs no process group; in eval mode SyncBatchNorm normalises with the running statistics
exactly as BatchNorm does, so outputs must be bitwise equal.
"""

import pytest
import torch
from torch import nn

from stylekit.nets.backbones import build_backbone, sync_batchnorm
from stylekit.nets.patchgan import PatchGAN

pytestmark = pytest.mark.usefixtures("one_thread")

# one per family build_backbone offers (small-cnn has GroupNorm: nothing to convert, must stay as is)
SPECS = ["small-cnn", "resnet18", "efficientnet_b0", "timm:efficientnet_b0", "timm:resnet18", "clip:RN50",
         "pix2pix-ref:small-cnn:8:64"]


def randomise_norms(module: nn.Module) -> None:
    g = torch.Generator().manual_seed(0)
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)


def kinds(module: nn.Module) -> dict[str, int]:
    names: dict[str, int] = {}
    for m in module.modules():
        names[type(m).__name__] = names.get(type(m).__name__, 0) + 1
    return names


@pytest.mark.parametrize("spec", SPECS)
def test_eval_outputs_identical_after_conversion(spec):
    net = build_backbone(spec).module.eval()
    randomise_norms(net)
    size = 224 if spec.startswith("clip:") else 64  # CLIP's attention pool is sized for 224 px
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        before = net(x)
        converted = sync_batchnorm(net).eval()
        after = converted(x)
    assert torch.equal(before, after)
    counts = kinds(converted)
    assert not any(isinstance(m, nn.BatchNorm2d) and not isinstance(m, nn.SyncBatchNorm) for m in converted.modules())
    if spec.startswith("timm:"):
        assert counts.get("SyncBatchNormAct", 0) == kinds(build_backbone(spec).module).get("BatchNormAct2d", 0)
    if spec == "timm:efficientnet_b0":
        assert counts["SyncBatchNormAct"] == 49


def test_pix2pix_discriminator_converts_too():
    d = PatchGAN(6, 16, 3, norm="batch").eval()
    randomise_norms(d)
    a, b = torch.randn(2, 1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.equal(d(a, b), sync_batchnorm(d).eval()(a, b))
