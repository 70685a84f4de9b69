"""Seconds per style-transfer step (one loss+gradient evaluation) at 256 and 512 px.

VGG19 truncated at relu5_1 (content relu4_2 + the five Gatys style layers), random weights (speed
does not depend on the values), fp32 vs bf16 autocast (bf16 only where the CPU/GPU runs it
natively, unless --force-bf16), channels_last on and off, beside a PyTorch-tutorial-style Gatys loop
written in this file (same weights, layers and images), all interleaved, best of N. One JSON line per
measurement.

    python benchmarks/transfer.py [--sizes 256,512] [--repeats 3] [--no-reference]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from common import add_args, as_reference, best_of, count_flops, native_bf16, start
from stylekit.transfer.config import DEFAULT_CONTENT_LAYERS, DEFAULT_STYLE_LAYERS
from torch import nn
from torchvision.models import vgg19

from stylekit.nets.vgg import IMAGENET_MEAN, IMAGENET_STD, VGGFeatures, gram_matrix
from stylekit.transfer.losses import content_mse, style_loss, tv_loss


def tutorial_reference(vgg: VGGFeatures, content: torch.Tensor, style: torch.Tensor):
    """The PyTorch-tutorial Gatys objective: loss modules inserted into a Sequential copy of VGG19.

    Written here (not imported) in the style of the official PyTorch neural-transfer tutorial: a
    Normalization module, torchvision-numbered VGG layers with non-inplace ReLUs, ContentLoss and
    StyleLoss modules that store their loss on the forward pass, Gram = mm(F, F^T) / numel, fp32,
    contiguous tensors. It uses stylekit's weights and layers (content relu4_2, style relu1_1..relu5_1)
    so that both sides compute the same objective.
    """

    def gram(x: torch.Tensor) -> torch.Tensor:
        a, b, c, d = x.size()
        f = x.view(a * b, c * d)
        return torch.mm(f, f.t()).div(a * b * c * d)

    class ContentLoss(nn.Module):
        def __init__(self, target: torch.Tensor) -> None:
            super().__init__()
            self.target, self.loss = target.detach(), torch.zeros(())

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.loss = F.mse_loss(x, self.target)
            return x

    class StyleLoss(nn.Module):
        def __init__(self, target_feature: torch.Tensor) -> None:
            super().__init__()
            self.target, self.loss = gram(target_feature).detach(), torch.zeros(())

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.loss = F.mse_loss(gram(x), self.target)
            return x

    class Normalization(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.mean = torch.tensor(IMAGENET_MEAN).view(-1, 1, 1)
            self.std = torch.tensor(IMAGENET_STD).view(-1, 1, 1)

        def forward(self, img: torch.Tensor) -> torch.Tensor:
            return (img - self.mean) / self.std

    cnn = vgg19(weights=None).features[: len(vgg.body)].eval()
    cnn.load_state_dict(vgg.body.state_dict())
    model = nn.Sequential(Normalization())
    content_losses, style_losses = [], []
    for name, layer in zip(vgg.names, cnn, strict=True):
        model.add_module(name, nn.ReLU(inplace=False) if isinstance(layer, nn.ReLU) else layer)
        if name in DEFAULT_CONTENT_LAYERS:
            loss = ContentLoss(model(content))
            model.add_module(f"content_loss_{name}", loss)
            content_losses.append(loss)
        if name in DEFAULT_STYLE_LAYERS:
            loss = StyleLoss(model(style))
            model.add_module(f"style_loss_{name}", loss)
            style_losses.append(loss)
    model.requires_grad_(False)
    x = content.clone().requires_grad_(True)

    def step() -> None:
        x.grad = None
        model(x)
        loss = 5 * sum(cl.loss for cl in content_losses) + 100 * sum(sl.loss for sl in style_losses) + 1e-3 * tv_loss(x)
        loss.backward()

    return step


def stylekit_step(size: int, precision: str, channels_last: bool, content: torch.Tensor, style: torch.Tensor):
    layers = DEFAULT_CONTENT_LAYERS + DEFAULT_STYLE_LAYERS
    vgg = VGGFeatures("vgg19", layers, weights=None, precision=precision, channels_last=channels_last)
    with torch.no_grad():
        c_t = vgg(content)["relu4_2"]
        s_t = {k: gram_matrix(v) for k, v in vgg(style).items() if k in DEFAULT_STYLE_LAYERS}
    x = content.clone().requires_grad_(True)

    def step() -> None:
        x.grad = None
        f = vgg(x)
        loss = 5 * content_mse(f["relu4_2"], c_t) + 100 * sum(style_loss(f[k], s_t[k]) for k in DEFAULT_STYLE_LAYERS) + 1e-3 * tv_loss(x)
        loss.backward()

    return vgg, step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_args(parser, repeats=3)
    parser.add_argument("--sizes", default="256,512")
    parser.add_argument("--no-reference", action="store_true", help="skip the tutorial-style reference loop")
    parser.add_argument("--force-bf16", action="store_true", help="measure bf16 even without native support")
    args = parser.parse_args()
    bench = start("transfer", args)
    if bench.device.type != "cpu":
        raise SystemExit("benchmarks/transfer.py measures the CPU step (--device cpu)")
    precisions = ["fp32"] + (["bf16"] if native_bf16() or args.force_bf16 else [])
    for size in (int(s) for s in args.sizes.split(",")):
        g = torch.Generator().manual_seed(0)
        content, style = torch.rand(1, 3, size, size, generator=g), torch.rand(1, 3, size, size, generator=g)
        fns, vgg = {}, None
        for precision in precisions:
            for channels_last in (False, True):
                vgg, fns[(precision, channels_last)] = stylekit_step(size, precision, channels_last, content, style)
        if not args.no_reference:
            fns["tutorial, same allocator"] = tutorial_reference(vgg, content, style)
            fns["tutorial"] = as_reference(fns["tutorial, same allocator"])
        flops = count_flops(fns[("fp32", False)])
        best = best_of(fns, args.repeats)
        config = {"arch": "vgg19", "to": "relu5_1", "size": size, "threads": torch.get_num_threads(),
                  "cpu_native_bf16": native_bf16(), "repeats": args.repeats, "stat": "min, interleaved"}
        for key, seconds in best.items():
            if isinstance(key, str):
                allocator = "as the stylekit CLI" if key.endswith("same allocator") else "glibc default"
                bench.result("transfer step (PyTorch-tutorial-style reference, fp32)", {**config, "allocator": allocator},
                             seconds, flops=flops)
                continue
            precision, channels_last = key
            extra = {"speedup_vs_tutorial": round(best["tutorial"] / seconds, 3),
                     "speedup_vs_tutorial_same_allocator": round(best["tutorial, same allocator"] / seconds, 3)} if "tutorial" in best else {}
            bench.result("transfer step (stylekit)", {**config, "precision": precision, "channels_last": channels_last},
                         seconds, flops=flops, **extra)


if __name__ == "__main__":
    main()
