"""Pure-PyTorch StyleGAN2 operations: FIR resampling, bias+activation, modulated convolution.

The NVlabs code runs these as custom CUDA plugins (with slow reference fallbacks). Here every op is
one or two stock PyTorch calls, exact to float rounding:

- FIR up-sampling by 2 with the [1,3,3,1] filter is a depthwise transposed convolution (stride 2,
  padding 1) with the filter scaled by 4; down-sampling is a depthwise stride-2 convolution.
- The up-sampling 3x3 modulated convolution (transposed conv, then FIR blur) is fused into one
  6x6 kernel (the full convolution of the 3x3 weight with the blur) and run as its polyphase form:
  a single 3x3 convolution with 4x the output channels followed by pixel_shuffle.
- Modulation/demodulation either folds the styles into per-sample weights for a grouped
  convolution (`fused=True`, as NVlabs) or scales activations before/after one shared-weight
  convolution (`fused=False`), which is mathematically identical and usually faster on CPU.
"""

from __future__ import annotations

import math
import time
import weakref
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

LRELU_ALPHA = 0.2
ACTIVATION_GAIN = {"linear": 1.0, "lrelu": math.sqrt(2.0), "relu": math.sqrt(2.0)}


def setup_filter(taps: Sequence[float] = (1, 3, 3, 1)) -> torch.Tensor:
    """The 2D low-pass filter NVlabs stores as `resample_filter`: outer(f, f) normalised to sum 1."""
    f = torch.as_tensor(list(taps), dtype=torch.float32, device="cpu")  # a buffer: moves with its module
    if f.ndim == 1:
        f = torch.outer(f, f)
    return f / f.sum()


def _depthwise(f: torch.Tensor, channels: int, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
    # Flipped so that the correlation that conv2d performs equals the true convolution NVlabs uses.
    return (f.flip([0, 1]) * gain).to(dtype=x.dtype, device=x.device)[None, None].expand(channels, 1, *f.shape)


def upsample2d(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Zero-insert by 2, then filter with 4*f: NVlabs `upfirdn2d.upsample2d` for a 4x4 filter."""
    _check_filter(f)
    c = x.shape[1]
    # conv_transpose2d scatters the (unflipped) kernel: exactly a true convolution of the zero-inserted x.
    return F.conv_transpose2d(x, _depthwise(f, c, x, 4.0).flip([2, 3]), stride=2, padding=1, groups=c)


def _check_filter(f: torch.Tensor) -> None:
    if tuple(f.shape) != (4, 4):
        raise ValueError(f"resample filter must have 4 taps (4x4 2D), got shape {tuple(f.shape)}")


def downsample2d(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Filter with f, keep every second pixel; same output as NVlabs `upfirdn2d.downsample2d` (4-tap f)."""
    _check_filter(f)
    c = x.shape[1]
    return F.conv2d(x, _depthwise(f, c, x), stride=2, padding=1, groups=c)


def fir_filter(x: torch.Tensor, f: torch.Tensor, padding: int) -> torch.Tensor:
    """Depthwise FIR filter with symmetric zero padding (used before strided convolutions)."""
    c = x.shape[1]
    return F.conv2d(x, _depthwise(f, c, x), padding=padding, groups=c)


def bias_act(
    x: torch.Tensor,
    b: torch.Tensor | None,
    act: str = "linear",
    gain: float = 1.0,
    clamp: float | None = None,
) -> torch.Tensor:
    """x + b, activation, times gain, clamp to +-clamp: NVlabs `bias_act` semantics (dim 1 = channels)."""
    inplace = not torch.is_grad_enabled()
    if b is not None:
        b = b.to(x.dtype).reshape([1, -1] + [1] * (x.ndim - 2))
        x = x.add_(b) if inplace else x + b
    if act == "lrelu":
        x = F.leaky_relu_(x, LRELU_ALPHA) if inplace else F.leaky_relu(x, LRELU_ALPHA)
    elif act == "relu":
        x = F.relu_(x) if inplace else F.relu(x)
    elif act != "linear":
        raise ValueError(f"unsupported activation {act!r}")
    if gain != 1:
        x = x.mul_(gain) if inplace else x * gain
    if clamp is not None and clamp >= 0:
        x = x.clamp_(-clamp, clamp) if inplace else x.clamp(-clamp, clamp)
    return x


def up_kernel(weight: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Fuse 'transposed conv (stride 2) with weight, then blur with 4*f' into one polyphase 3x3 kernel.

    weight [O, I, k, k] -> [4*O, I, kp, kp] such that
    pixel_shuffle(conv2d(x, kernel, padding=kp//2), 2) equals the NVlabs up-sampling convolution.
    """
    _check_filter(f)
    o, i, kh, kw = weight.shape
    if (kh, kw) != (3, 3):
        raise ValueError("the fused up-sampling convolution needs a 3x3 kernel")
    fh, fw = f.shape
    # Full convolution of each weight slice with the filter: [O, I, kh+fh-1, kw+fw-1].
    full = F.conv2d(
        weight.reshape(o * i, 1, kh, kw),
        (f.flip([0, 1]) * 4).to(weight.dtype)[None, None],
        padding=(fh - 1, fw - 1),
    ).reshape(o, i, kh + fh - 1, kw + fw - 1)
    size = full.shape[-1]
    # Output phase a takes taps full[a::2] reversed (derivation in docs/stylegan.md).
    phases = [full[:, :, a::2, b::2].flip([2, 3]) for a in (0, 1) for b in (0, 1)]
    k = torch.stack(phases, dim=1)  # [O, 4, I, kp, kp]; channel o*4 + a*2 + b for pixel_shuffle
    return k.reshape(o * 4, i, size // 2, size // 2)


# (id(weight), what) -> (weak reference to the weight, key, value); an entry leaves when its weight is freed.
# (A WeakKeyDictionary cannot hold tensors: it compares keys with ==, which tensors answer elementwise.)
_DERIVED: dict[tuple[int, str], tuple[weakref.ref[torch.Tensor], tuple[object, ...], torch.Tensor]] = {}


def cached_derived(weight: torch.Tensor, what: str, make: Callable[[], torch.Tensor], *deps: torch.Tensor) -> torch.Tensor:
    """`make()` (a tensor computed from `weight` and `deps` only), computed once per weight while no
    gradient is recorded for them.

    Outside training (generate, mix, metrics, G_ema snapshots, invert's frozen G) the weights do not
    change between calls, so the fused up-sampling kernel, the demodulation sums and the low-precision
    copies are remembered until the weight or a dependency is modified in place (version counters) or
    the weight is freed. Values are made outside inference mode, so a later call that records
    gradients for the activations can save them for backward, and outside autocast, so a value
    is exactly what the weight's dtype gives on its device whatever context first asked for it (the
    key): a kernel made under bf16 autocast is never handed to an fp32 forward. Low-precision copies
    are entries of their own (`_in_dtype`).
    """
    tensors = (weight, *deps)
    if (torch.is_grad_enabled() and any(t.requires_grad for t in tensors)) or any(t.is_inference() for t in tensors):
        return make()
    key = (weight._version, weight.dtype, weight.device, *((id(t), t._version) for t in deps))
    slot = (id(weight), what)
    hit = _DERIVED.get(slot)
    if hit is not None and hit[0]() is weight and hit[1] == key:
        return hit[2]
    with torch.inference_mode(False), torch.no_grad(), torch.autocast(weight.device.type, enabled=False):
        value = make()
    _DERIVED[slot] = (weakref.ref(weight, lambda _, slot=slot: _DERIVED.pop(slot, None)), key, value)
    return value


def cached_up_kernel(weight: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """`up_kernel(weight, f)`, remembered outside training (`cached_derived`)."""
    return cached_derived(weight, "up_kernel", lambda: up_kernel(weight, f), f)


def _in_dtype(weight: torch.Tensor, what: str, kernel: torch.Tensor, dtype: torch.dtype, *deps: torch.Tensor) -> torch.Tensor:
    """`kernel` (derived from `weight`) in the activations' dtype; the low-precision copy is remembered."""
    if kernel.dtype == dtype:
        return kernel
    return cached_derived(weight, f"{what}:{dtype}", lambda: kernel.to(dtype), *deps)


def computes_in_fp16(x: torch.Tensor) -> bool:
    """Convolutions on `x` run in fp16: fp16 activations, or fp32 ones under fp16 autocast (--amp on
    GPUs without native bf16: V100, T4), where `force_fp32` keeps x fp32 but autocast still casts."""
    if x.dtype == torch.float16:
        return True
    kind = x.device.type
    return torch.is_autocast_enabled(kind) and torch.get_autocast_dtype(kind) == torch.float16


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    demodulate: bool = True,
    up: bool = False,
    f: torch.Tensor | None = None,
    fused: bool | None = None,
    padding: int | None = None,
    gain: torch.Tensor | None = None,
) -> torch.Tensor:
    """StyleGAN2 modulated convolution (NVlabs `modulated_conv2d`, padding k//2, optional up x2).

    `padding` overrides k//2 without up-sampling (StyleGAN3 pads k-1: a full convolution). `gain` scales
    the output (StyleGAN3's input gain, a scalar tensor), folded into the demodulation coefficients or
    the styles instead of a pass over the activations.

    x [N, I, H, W], weight [O, I, k, k], styles [N, I]. Returns [N, O, H', W'] (noise is added by the
    caller after this). `fused=None` picks the faster path for the device and batch size.
    """
    n = x.shape[0]
    o, i, kh, kw = weight.shape
    if demodulate and computes_in_fp16(x):
        # Pre-normalisation against fp16 overflow, as in NVlabs (demodulation cancels the scale).
        weight = weight * (1 / math.sqrt(i * kh * kw) / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True))
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)
    dcoefs = None
    if demodulate:
        # sum_{i,k} (w[o,i,k] s[n,i])^2 = s^2 @ (sum_k w^2)^T, computed without the [N,O,I,k,k] tensor.
        weight_sq = cached_derived(weight, "square_sum", lambda: weight.float().square().sum(dim=[2, 3]).t())  # [I, O]
        dcoefs = (styles.float().square() @ weight_sq + 1e-8).rsqrt()  # [N, O]
    if gain is not None:
        if dcoefs is not None:
            dcoefs = dcoefs * gain
        else:
            styles = styles * gain
    if fused is None:
        # One sample: modulated weights + one plain conv. Batches: one shared-weight conv with the
        # styles on the activations (measured faster than grouped conv on CPU).
        fused = n == 1
    impl = up_impl(x, weight) if up else "polyphase"
    if up and impl == "transpose":
        return _modulated_up_transpose(x, weight, styles, dcoefs, f, fused)
    if up:
        assert f is not None
        kernel = cached_up_kernel(weight, f)
    else:
        kernel = weight
    pad = kernel.shape[-1] // 2 if padding is None or up else padding
    if not fused:
        x = x * styles.to(x.dtype).reshape(n, -1, 1, 1)
        x = F.conv2d(x, _in_dtype(weight, "up_kernel" if up else "weight", kernel, x.dtype, *([f] if up else [])), padding=pad)
        if up:
            x = F.pixel_shuffle(x, 2)
        if dcoefs is not None:
            x = x * dcoefs.to(x.dtype).reshape(n, -1, 1, 1)
        return x
    w = kernel.unsqueeze(0) * styles.reshape(n, 1, -1, 1, 1)  # [N, O', I, k, k]
    if dcoefs is not None:
        d = dcoefs.repeat_interleave(4, dim=1) if up else dcoefs
        w = w * d.reshape(n, -1, 1, 1, 1)
    x = x.reshape(1, -1, *x.shape[2:])
    x = F.conv2d(x, w.reshape(-1, i, *kernel.shape[2:]).to(x.dtype), padding=pad, groups=n)
    x = x.reshape(n, -1, *x.shape[2:])
    if up:
        x = F.pixel_shuffle(x, 2)
    return x


# How the up-sampling modulated convolution runs: "polyphase" (upsample+blur fused into one 3x3 conv
# with 4x outputs + pixel_shuffle: 4x the MACs, but one dense conv) or "transpose" (stride-2 transposed
# 3x3 conv, then the 4x4 FIR), both exact. "auto": on the CPU, polyphase for <= 128 input channels
# (measured faster there), transpose above; on a GPU the rule from the CPU does not carry over (cuDNN,
# tensor cores), so each layer shape is timed once on its device and the faster one is kept.
UP_IMPL = "auto"
_MEASURED: dict[tuple, str] = {}


def up_impl(x: torch.Tensor, weight: torch.Tensor) -> str:
    """The up-sampling implementation for this input and weight shape on this device."""
    if UP_IMPL != "auto":
        return UP_IMPL
    if x.device.type != "cuda":
        return "polyphase" if weight.shape[1] <= 128 else "transpose"
    key = (str(x.device), x.dtype, tuple(x.shape), tuple(weight.shape))
    if key not in _MEASURED:
        _MEASURED[key] = measure_up_impl(x, weight)
    return _MEASURED[key]


@torch.no_grad()
def measure_up_impl(x: torch.Tensor, weight: torch.Tensor, repeats: int = 5) -> str:
    """Time both exact implementations on these very shapes (once per shape: a one-off device sync,
    like cudnn.benchmark's first step) and return the faster."""

    f = setup_filter().to(x.device)
    styles = torch.ones(x.shape[0], weight.shape[1], device=x.device, dtype=torch.float32)
    w = weight.detach()
    runs = {
        "polyphase": lambda: F.pixel_shuffle(F.conv2d(x, up_kernel(w, f).to(x.dtype), padding=w.shape[-1] // 2), 2),
        "transpose": lambda: _modulated_up_transpose(x, w, styles, None, f, False),
    }
    times = {}
    for name, run in runs.items():
        run()  # warm-up (autotuning, allocation)
        if x.device.type == "cuda":
            torch.cuda.synchronize(x.device)
        t0 = time.perf_counter()
        for _ in range(repeats):
            run()
        if x.device.type == "cuda":
            torch.cuda.synchronize(x.device)
        times[name] = time.perf_counter() - t0
    return min(times, key=times.__getitem__)


def _modulated_up_transpose(
    x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, dcoefs: torch.Tensor | None,
    f: torch.Tensor | None, fused: bool,
) -> torch.Tensor:
    assert f is not None
    n = x.shape[0]
    o, i, kh, kw = weight.shape
    if not fused:
        x = x * styles.to(x.dtype).reshape(n, -1, 1, 1)
        x = F.conv_transpose2d(x, _in_dtype(weight, "weight_t", weight.transpose(0, 1), x.dtype), stride=2)
    else:
        w = weight.unsqueeze(0) * styles.reshape(n, 1, -1, 1, 1)
        if dcoefs is not None:
            w = w * dcoefs.reshape(n, -1, 1, 1, 1)
        w = w.transpose(1, 2).reshape(n * i, o, kh, kw)
        x = F.conv_transpose2d(x.reshape(1, -1, *x.shape[2:]), w.to(x.dtype), stride=2, groups=n)
        x = x.reshape(n, o, *x.shape[2:])
    x = fir_filter(x, f * 4, padding=1)
    if not fused and dcoefs is not None:
        x = x * dcoefs.to(x.dtype).reshape(n, -1, 1, 1)
    return x


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()
