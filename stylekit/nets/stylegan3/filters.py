"""StyleGAN3's low-pass filters and its filtered leaky ReLU, in stock PyTorch ops.

NVlabs runs `filtered_lrelu` as one fused CUDA kernel (a slow reference path elsewhere). The op is:
add the bias, up-sample by `up` (zero insertion, zero padding, FIR filter `fu` with gain up^2), leaky
ReLU times `gain`, clamp, FIR filter `fd`, keep every `down`-th pixel. Here the zero-insert + filter is
one depthwise transposed convolution per axis (stride `up`: it never multiplies the inserted zeros), the
padding a crop/pad of its output, and the down-sampling filter one strided depthwise convolution per axis
(a 2D one for the radial filters of the R config). Exact to float rounding.

The filters are designed like the paper (Kaiser-windowed sinc from scipy.signal.firwin; a jinc for the
radial ones); loaded networks carry their own (buffers), so the design matters for new networks only.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.signal
import scipy.special
import torch
import torch.nn.functional as F


def lowpass_filter(numtaps: int, cutoff: float, width: float, fs: float, radial: bool = False) -> torch.Tensor | None:
    """A low-pass FIR filter of `numtaps` taps (None for one tap: the identity), unit gain at DC.

    Separable filters are 1D (applied along both axes); radial ones are 2D."""
    if numtaps == 1:
        return None
    if not radial:
        return torch.as_tensor(scipy.signal.firwin(numtaps=numtaps, cutoff=cutoff, width=width, fs=fs), dtype=torch.float32)
    pos = (np.arange(numtaps) - (numtaps - 1) / 2) / fs
    r = np.hypot(*np.meshgrid(pos, pos))
    jinc = scipy.special.j1(2 * np.pi * cutoff * r) / (np.pi * r)
    beta = scipy.signal.kaiser_beta(scipy.signal.kaiser_atten(numtaps, width / (fs / 2)))
    window = np.kaiser(numtaps, beta)
    f = jinc * np.outer(window, window)
    return torch.as_tensor(f / f.sum(), dtype=torch.float32)


def _depthwise(f: torch.Tensor, channels: int, x: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    return f.to(dtype=x.dtype, device=x.device).reshape(1, 1, *shape).expand(channels, 1, *shape)


def _upsample(x: torch.Tensor, f: torch.Tensor | None, up: int, padding: tuple[int, int, int, int]) -> torch.Tensor:
    """Zero-insert by `up`, pad (x0, x1, y0, y1; negative crops), true convolution with f * up per axis
    (valid): NVlabs upfirdn2d(x, f, up=up, padding=padding, gain=up**2)."""
    px0, px1, py0, py1 = padding
    if f is None:
        assert up == 1, "up-sampling needs a filter"
        return F.pad(x, [px0, px1, py0, py1])
    n, c, h, w = x.shape
    taps = f.shape[-1]
    out_h, out_w = h * up + py0 + py1 - taps + 1, w * up + px0 + px1 - taps + 1
    # conv_transpose scatters its (unflipped) kernel: the full true convolution of the zero-inserted input,
    # without its trailing zeros. Output index t of the padded valid convolution is its index t + taps - 1 - pad0.
    if f.ndim == 1:
        x = F.conv_transpose2d(x, _depthwise(f * up, c, x, (taps, 1)), stride=(up, 1), groups=c)
        x = F.conv_transpose2d(x, _depthwise(f * up, c, x, (1, taps)), stride=(1, up), groups=c)
    else:
        x = F.conv_transpose2d(x, _depthwise(f * up**2, c, x, (taps, taps)), stride=up, groups=c)
    sx, sy = taps - 1 - px0, taps - 1 - py0
    return F.pad(x, [-sx, out_w + sx - x.shape[3], -sy, out_h + sy - x.shape[2]])


def _downsample(x: torch.Tensor, f: torch.Tensor | None, down: int) -> torch.Tensor:
    """True convolution with f (valid), keep every `down`-th pixel: NVlabs upfirdn2d(x, f, down=down)."""
    if f is None:
        return x[:, :, ::down, ::down] if down > 1 else x
    c = x.shape[1]
    taps = f.shape[-1]
    f = f.flip(list(range(f.ndim)))  # conv2d correlates
    if f.ndim == 1:
        x = F.conv2d(x, _depthwise(f, c, x, (taps, 1)), stride=(down, 1), groups=c)
        return F.conv2d(x, _depthwise(f, c, x, (1, taps)), stride=(1, down), groups=c)
    return F.conv2d(x, _depthwise(f, c, x, (taps, taps)), stride=down, groups=c)


def filtered_lrelu(
    x: torch.Tensor,
    fu: torch.Tensor | None,
    fd: torch.Tensor | None,
    b: torch.Tensor | None,
    up: int = 1,
    down: int = 1,
    padding: tuple[int, int, int, int] = (0, 0, 0, 0),
    gain: float = float(np.sqrt(2)),
    slope: float = 0.2,
    clamp: float | None = None,
) -> torch.Tensor:
    """NVlabs `filtered_lrelu` semantics (its argument names; padding is x0, x1, y0, y1 of the up-sampled image).

    The filters run in the activations' dtype, never autocast's: on a GPU fp16/bf16 as they come; on the CPU in
    fp32, since oneDNN has no fast low-precision depthwise (transposed) convolution (bf16 was ~18x slower per
    filter, and made `--amp` 3-5x slower than fp32 overall; docs/performance.md)."""
    if x.device.type == "cpu" and x.dtype != torch.float32:
        x = x.float()
    # clamp(gain * lrelu(x), +-c) = gain * clamp(lrelu(x), +-c / gain), and the down filter is linear: the gain
    # rides on the filter's taps instead of costing a pass over the up-sampled activations.
    fold = fd is not None and gain != 1
    if fold:
        assert fd is not None
        fd = fd * (gain if fd.ndim == 2 else math.sqrt(gain))
    # In place without autograd once x is this function's own tensor (after the bias or the up-sampling filter).
    inplace = not torch.is_grad_enabled() and (b is not None or fu is not None)
    with torch.autocast(x.device.type, enabled=False):
        if b is not None:
            x = x + b.to(x.dtype).reshape(1, -1, 1, 1)
        x = _upsample(x, fu, up, padding)
        if slope != 1:
            x = F.leaky_relu_(x, slope) if inplace else F.leaky_relu(x, slope)
        if gain != 1 and not fold:
            x = x * gain
        if clamp is not None:
            c = clamp / gain if fold else clamp
            x = x.clamp_(-c, c) if inplace else x.clamp(-c, c)
        return _downsample(x, fd, down)
