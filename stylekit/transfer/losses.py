"""Loss terms of Gatys style transfer, written as jcjohnson/neural-style defines them.

- content (mse): mean over C*H*W of (F - F_content)^2, per content layer.
- content (cosine): per pixel, 1 - cos(F_p, T_p) between the C-dim feature vectors, weighted by the
  target's squared norm |T_p|^2 and scaled by 2/(C*H*W). When |F_p| = |T_p| it equals the mse loss
  exactly (|a-b|^2 = 2 r^2 (1 - cos)), so the default weights keep their balance; unlike mse it
  ignores how strongly a feature fires, only which features fire together, so the style may change
  activation strength (contrast, texture energy) freely while the layout of the content stays.
- style: mean over C*C of (G - G_target)^2 with G = F F^T / (C*H*W), per style layer, times the
  layer's weight; the target Gram is the blend-weighted sum of the style images' Grams.
- tv: (weight / 2) * sum of squared differences between horizontal and vertical neighbours,
  on the [0, 1] image (jcjohnson's TVLoss gradient, written as a loss).

`normalize_gradient(feat, weight)` is jcjohnson's -normalize_gradients: the identity forward; backward,
the gradient a (weighted) loss term sends into its layer's feature map is divided by its L1 norm
(+1e-8) and multiplied by the term's weight, so every content/style layer pushes with strength
`weight` whatever its raw scale. The loss values themselves are unchanged (only the gradients are).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from stylekit.nets.vgg import gram_matrix


def content_mse(feat: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(feat, target)


def content_cosine(feat: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    n, c, h, w = feat.shape
    cos = F.cosine_similarity(feat, target, dim=1, eps=1e-8)  # [N, H, W]
    energy = target.pow(2).sum(dim=1)  # |T_p|^2
    return (energy * (1.0 - cos)).sum() * (2.0 / (n * c * h * w))


CONTENT_LOSSES = {"mse": content_mse, "cosine": content_cosine}


def style_loss(feat: torch.Tensor, target_gram: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(gram_matrix(feat), target_gram)


class _NormalizeGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: float) -> torch.Tensor:  # type: ignore[override]
        ctx.weight = weight
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        norm = grad.float().abs().sum() + 1e-8
        return (grad.float() * (ctx.weight / norm)).to(grad.dtype), None


def normalize_gradient(feat: torch.Tensor, weight: float) -> torch.Tensor:
    return _NormalizeGrad.apply(feat, float(weight))


def tv_loss(image: torch.Tensor) -> torch.Tensor:
    dx = image[..., :, 1:] - image[..., :, :-1]
    dy = image[..., 1:, :] - image[..., :-1, :]
    return 0.5 * (dx.pow(2).sum() + dy.pow(2).sum())
