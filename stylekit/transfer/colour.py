"""Colour handling for --original-colors: luminance-only transfer (Gatys et al. 2016, "Preserving
color in neural artistic style transfer").

The optimisation runs on luminance only: content and style are turned into grey images (BT.601 luma
Y = 0.299 R + 0.587 G + 0.114 B, as JPEG's YCbCr), the style's luma is matched to the content's mean
and standard deviation, and the result's luma is put back under the content's chroma.

Exactness: the output is `content_rgb + d * (1, 1, 1)` with one integer `d` per pixel (the luma
change in 8-bit levels, clipped so no channel leaves 0..255). Every chroma channel of YCbCr/YUV/YIQ
is a linear map whose coefficients sum to zero, so adding the same value to R, G and B leaves Cb and
Cr (U/V, I/Q) exactly unchanged: the saved image has the content's chroma bit for bit.
"""

from __future__ import annotations

import numpy as np
import torch

LUMA = (0.299, 0.587, 0.114)


def luminance(rgb: torch.Tensor) -> torch.Tensor:
    """[N, 3, H, W] RGB -> [N, 1, H, W] BT.601 luma."""
    w = torch.tensor(LUMA, dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
    return (rgb * w).sum(dim=1, keepdim=True)


def grey(y: torch.Tensor) -> torch.Tensor:
    """[N, 1, H, W] luma -> [N, 3, H, W] grey RGB (what VGG sees in luminance-only mode)."""
    return y.expand(-1, 3, -1, -1)


def match_luminance(style_y: torch.Tensor, content_y: torch.Tensor) -> torch.Tensor:
    """Shift/scale the style's luma to the content's mean and std (Gatys et al. 2016, eq. 1)."""
    s_mean, s_std = style_y.mean(), style_y.std().clamp_min(1e-6)
    return (style_y - s_mean) * (content_y.std() / s_std) + content_y.mean()


def with_content_chroma(y: torch.Tensor, content_rgb: torch.Tensor) -> np.ndarray:
    """Put luma `y` [1, 1, H, W] (float, [0, 1]) under the content's exact chroma.

    `content_rgb` is the [1, 3, H, W] content in [0, 1] that came from 8-bit pixels. Returns the
    uint8 [H, W, 3] output image.
    """
    rgb = np.rint(content_rgb[0].detach().float().cpu().numpy() * 255.0).astype(np.int32).transpose(1, 2, 0)
    y_content = (rgb.astype(np.float64) * np.array(LUMA)).sum(axis=2)
    y_new = y[0, 0].detach().double().cpu().numpy() * 255.0
    d = np.rint(y_new - y_content).astype(np.int32)
    d = np.clip(d, -rgb.min(axis=2), 255 - rgb.max(axis=2))
    return (rgb + d[..., None]).astype(np.uint8)


def chroma_planes(rgb_u8: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cb and Cr (JPEG / BT.601 full range) of a uint8 [H, W, 3] image, in float64."""
    rgb = rgb_u8.astype(np.float64)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    cb = 128.0 - 0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 128.0 + 0.5 * r - 0.418688 * g - 0.081312 * b
    return cb, cr
