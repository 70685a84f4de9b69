"""StyleGAN3 (alias-free) generator with the NVlabs stylegan3 module names, in pure PyTorch.

Constructor arguments, module names (`synthesis.input`, `synthesis.L{i}_{size}_{channels}`), parameter
and buffer names and shapes follow NVlabs `training/networks_stylegan3.py`, so the state dicts and
`_init_kwargs` in their pickles load 1:1, for the T (translation-equivariant, 3x3 convolutions) and R
(rotation-equivariant: 1x1 convolutions, radial down-sampling filters, twice the channels) configs.

The same public surface as the StyleGAN2 generator (stylekit.nets.stylegan2.networks), so every
command that samples, maps, edits or scores a generator takes either:
  G(z, c, truncation_psi, truncation_cutoff, noise_mode) -> images in [-1, 1], [N, C, R, R]
  G.mapping(...) -> ws [N, num_ws, w_dim];  G.synthesis(ws, noise_mode) -> images
  G.synthesis.style_affines() / layer_of(name): the style affines by ws index, a parameter's layer
StyleGAN3 has no noise inputs: `noise_mode` is accepted and changes nothing, as in NVlabs.
`G.synthesis.input.transform` is the user transform of the Fourier features (gen_images.py
--translate/--rotate: `input_transform`).
"""

from __future__ import annotations

import copy
import math
import re
from typing import Any

import numpy as np
import torch
from torch import nn

from stylekit.nets.stylegan2.networks import NOISE_MODES, FullyConnectedLayer, MappingNetwork, block_dtype
from stylekit.nets.stylegan2.ops import modulated_conv2d
from stylekit.nets.stylegan3.filters import filtered_lrelu, lowpass_filter

ARCHITECTURE = "stylegan3"
_LAYER_NAME = re.compile(r"^(?:synthesis\.)?(input|L(\d+)_\d+_\d+)(\.|$)")


def input_transform(translate: tuple[float, float] = (0.0, 0.0), rotate: float = 0.0) -> torch.Tensor:
    """The inverse of rotating the output image by `rotate` degrees and translating it by `translate` (in image
    widths: the image spans 1 unit of the input's coordinates), as the input layer's `transform` buffer takes it
    (gen_images.py)."""
    a = math.radians(rotate)
    s, c = math.sin(a), math.cos(a)
    m = torch.tensor([[c, s, translate[0]], [-s, c, translate[1]], [0.0, 0.0, 1.0]], dtype=torch.float64,
                     device="cpu")  # once per command; copied into the buffer on its device
    return torch.linalg.inv(m).to(torch.float32)


class SynthesisInput(nn.Module):
    """Fourier features: `channels` sinusoids of random frequencies within `bandwidth`, rotated and
    translated per sample by an affine of w (and the user `transform`), then mixed by a learned matrix."""

    def __init__(self, w_dim: int, channels: int, size: int, sampling_rate: float, bandwidth: float) -> None:
        super().__init__()
        self.w_dim, self.channels, self.size = w_dim, channels, int(size)
        self.sampling_rate, self.bandwidth = float(sampling_rate), float(bandwidth)
        freqs = torch.randn([channels, 2])
        radii = freqs.square().sum(dim=1, keepdim=True).sqrt()
        freqs /= radii * radii.square().exp().pow(0.25)  # uniform on the disc of radius `bandwidth`
        self.weight = nn.Parameter(torch.randn([channels, channels]))
        self.affine = FullyConnectedLayer(w_dim, 4)
        with torch.no_grad():
            self.affine.weight.zero_()
            self.affine.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0]))  # identity rotation, no translation
        self.register_buffer("transform", torch.eye(3, 3))
        self.register_buffer("freqs", freqs * bandwidth)
        self.register_buffer("phases", torch.rand([channels]) - 0.5)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        # Always fp32, as NVlabs: under autocast the sin of an argument rounded to bf16 would be off by ~0.1 rad.
        with torch.autocast(w.device.type, enabled=False):
            return self._features(w.float())

    def _features(self, w: torch.Tensor) -> torch.Tensor:
        n, device = w.shape[0], w.device
        t = self.affine(w)  # (cos, sin, tx, ty) up to scale
        t = t / t[:, :2].norm(dim=1, keepdim=True)
        rot = torch.eye(3, device=device).repeat(n, 1, 1)
        rot[:, 0, 0], rot[:, 0, 1], rot[:, 1, 0], rot[:, 1, 1] = t[:, 0], -t[:, 1], t[:, 1], t[:, 0]
        shift = torch.eye(3, device=device).repeat(n, 1, 1)
        shift[:, 0, 2], shift[:, 1, 2] = -t[:, 2], -t[:, 3]
        m = rot @ shift @ self.transform.unsqueeze(0)  # rotate the image, then translate, then the user transform
        phases = self.phases.unsqueeze(0) + (self.freqs.unsqueeze(0) @ m[:, :2, 2:]).squeeze(2)  # [N, C]
        freqs = self.freqs.unsqueeze(0) @ m[:, :2, :2]  # [N, C, 2]
        # Frequencies the user transform pushes past the band fade out before they could alias.
        amplitudes = (1 - (freqs.norm(dim=2) - self.bandwidth) / (self.sampling_rate / 2 - self.bandwidth)).clamp(0, 1)
        theta = torch.zeros(1, 2, 3, device=device)
        theta[0, 0, 0] = theta[0, 1, 1] = 0.5 * self.size / self.sampling_rate
        grid = nn.functional.affine_grid(theta, [1, 1, self.size, self.size], align_corners=False)  # [1, H, W, 2]
        x = torch.einsum("hwk,nck->nhwc", grid[0], freqs) + phases[:, None, None, :]
        x = torch.sin(x * (2 * math.pi)) * amplitudes[:, None, None, :]
        x = x @ (self.weight / math.sqrt(self.channels)).t()
        return x.permute(0, 3, 1, 2)  # [N, C, H, W]


class SynthesisLayer(nn.Module):
    """Modulated convolution, then the filtered leaky ReLU that up-samples, applies the nonlinearity at a
    higher rate and low-passes back down (or, for the last layer, a plain modulated 1x1 toRGB)."""

    def __init__(
        self,
        w_dim: int,
        is_torgb: bool,
        is_critically_sampled: bool,
        use_fp16: bool,
        in_channels: int,
        out_channels: int,
        in_size: int,
        out_size: int,
        in_sampling_rate: float,
        out_sampling_rate: float,
        in_cutoff: float,
        out_cutoff: float,
        in_half_width: float,
        out_half_width: float,
        conv_kernel: int = 3,
        filter_size: int = 6,
        lrelu_upsampling: int = 2,
        use_radial_filters: bool = False,
        conv_clamp: float | None = 256,
        magnitude_ema_beta: float = 0.999,
    ) -> None:
        super().__init__()
        self.is_torgb, self.use_fp16 = is_torgb, use_fp16
        self.in_channels, self.out_channels = in_channels, out_channels
        self.in_size, self.out_size = int(in_size), int(out_size)
        self.conv_kernel = 1 if is_torgb else conv_kernel
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, self.conv_kernel, self.conv_kernel]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.register_buffer("magnitude_ema", torch.ones([]))  # the input's mean square: the layer divides it out

        tmp_rate = max(in_sampling_rate, out_sampling_rate) * (1 if is_torgb else lrelu_upsampling)
        self.up_factor = int(round(tmp_rate / in_sampling_rate))
        self.down_factor = int(round(tmp_rate / out_sampling_rate))
        up_taps = filter_size * self.up_factor if self.up_factor > 1 and not is_torgb else 1
        down_taps = filter_size * self.down_factor if self.down_factor > 1 and not is_torgb else 1
        self.register_buffer("up_filter", lowpass_filter(up_taps, in_cutoff, in_half_width * 2, tmp_rate))
        self.register_buffer("down_filter", lowpass_filter(down_taps, out_cutoff, out_half_width * 2, tmp_rate,
                                                           radial=use_radial_filters and not is_critically_sampled))
        # Pad so that the output has out_size samples, centred as in the paper (its appendix C.3).
        total = (self.out_size - 1) * self.down_factor + 1 - (self.in_size + self.conv_kernel - 1) * self.up_factor
        total += up_taps + down_taps - 2
        lo = (total + self.up_factor) // 2
        self.padding = (lo, total - lo, lo, total - lo)

    def forward(self, x: torch.Tensor, w: torch.Tensor, force_fp32: bool | None = None) -> torch.Tensor:
        styles = self.affine(w)
        if self.is_torgb:
            styles = styles * (1 / math.sqrt(self.in_channels * self.conv_kernel**2))
        x = x.to(block_dtype(self.use_fp16, force_fp32, x.device))
        x = modulated_conv2d(x, self.weight, styles, demodulate=not self.is_torgb, padding=self.conv_kernel - 1,
                             gain=self.magnitude_ema.rsqrt())
        return filtered_lrelu(x, self.up_filter, self.down_filter, self.bias, up=self.up_factor, down=self.down_factor,
                              padding=self.padding, gain=1 if self.is_torgb else math.sqrt(2), slope=1 if self.is_torgb else 0.2,
                              clamp=self.conv_clamp)


class SynthesisNetwork(nn.Module):
    """ws [N, num_ws, w_dim] -> image: the Fourier input reads ws[0], layer i reads ws[i + 1]."""

    def __init__(
        self,
        w_dim: int,
        img_resolution: int,
        img_channels: int,
        channel_base: int = 32768,
        channel_max: int = 512,
        num_layers: int = 14,
        num_critical: int = 2,
        first_cutoff: float = 2,
        first_stopband: float = 2**2.1,
        last_stopband_rel: float = 2**0.3,
        margin_size: int = 10,
        output_scale: float = 0.25,
        num_fp16_res: int = 4,
        **layer_kwargs: Any,
    ) -> None:
        if num_layers <= num_critical or num_critical < 0:
            raise ValueError(f"num_layers ({num_layers}) must exceed num_critical ({num_critical})")
        super().__init__()
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        self.num_layers, self.num_ws, self.output_scale = num_layers, num_layers + 2, output_scale
        # Cutoffs and stopbands grow geometrically from the first layer to the last num_critical ones (paper, 3.2).
        last_cutoff = img_resolution / 2
        exponents = np.minimum(np.arange(num_layers + 1) / (num_layers - num_critical), 1)
        cutoffs = first_cutoff * (last_cutoff / first_cutoff) ** exponents
        stopbands = first_stopband * (last_cutoff * last_stopband_rel / first_stopband) ** exponents
        rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, img_resolution))))
        half_widths = np.maximum(stopbands, rates / 2) - cutoffs
        sizes = rates + margin_size * 2
        sizes[-2:] = img_resolution
        channels = np.rint(np.minimum((channel_base / 2) / cutoffs, channel_max))
        channels[-1] = img_channels
        self.input = SynthesisInput(w_dim, int(channels[0]), int(sizes[0]), rates[0], cutoffs[0])
        self.layer_names: list[str] = []
        for idx in range(num_layers + 1):
            prev = max(idx - 1, 0)
            layer = SynthesisLayer(
                w_dim=w_dim, is_torgb=idx == num_layers, is_critically_sampled=idx >= num_layers - num_critical,
                use_fp16=bool(rates[idx] * 2**num_fp16_res > img_resolution),
                in_channels=int(channels[prev]), out_channels=int(channels[idx]), in_size=int(sizes[prev]),
                out_size=int(sizes[idx]), in_sampling_rate=int(rates[prev]), out_sampling_rate=int(rates[idx]),
                in_cutoff=cutoffs[prev], out_cutoff=cutoffs[idx], in_half_width=half_widths[prev],
                out_half_width=half_widths[idx], **layer_kwargs,
            )
            name = f"L{idx}_{layer.out_size}_{layer.out_channels}"
            setattr(self, name, layer)
            self.layer_names.append(name)

    def forward(self, ws: torch.Tensor, noise_mode: str = "random", force_fp32: bool | None = None,
                fused_modconv: bool | None = None) -> torch.Tensor:
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        if ws.ndim != 3 or ws.shape[1] != self.num_ws or ws.shape[2] != self.w_dim:
            raise ValueError(f"ws must be [N, {self.num_ws}, {self.w_dim}], got {list(ws.shape)}")
        ws_list = ws.to(torch.float32).unbind(dim=1)
        x = self.input(ws_list[0])
        for name, w in zip(self.layer_names, ws_list[1:], strict=True):
            x = getattr(self, name)(x, w, force_fp32=force_fp32)
        return (x * self.output_scale).to(torch.float32)

    def style_affines(self) -> dict[int, list[FullyConnectedLayer]]:
        """The style (modulation) affines by the ws index they read. The input's affine reads ws[0] but
        rotates and translates the Fourier features instead of modulating channels: it is not listed."""
        return {0: [], **{i + 1: [getattr(self, name).affine] for i, name in enumerate(self.layer_names)}}

    @staticmethod
    def layer_of(name: str) -> tuple[str, int] | None:
        """(layer, index) of a parameter of `synthesis.input` (index 0) or `synthesis.L{i}_...` (index i + 1: the
        ws index it reads), None for anything else."""
        m = _LAYER_NAME.match(name)
        if m is None:
            return None
        return m.group(1), 0 if m.group(1) == "input" else int(m.group(2)) + 1


class Generator(nn.Module):
    """StyleGAN3 generator: mapping (z, c -> ws) + alias-free synthesis. NVlabs constructor (synthesis
    arguments flattened, as NVlabs stylegan3's Generator takes them)."""

    architecture = ARCHITECTURE

    def __init__(
        self,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        img_resolution: int,
        img_channels: int = 3,
        mapping_kwargs: dict[str, Any] | None = None,
        **synthesis_kwargs: Any,
    ) -> None:
        super().__init__()
        self.init_kwargs = copy.deepcopy(dict(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, img_resolution=img_resolution,
                                              img_channels=img_channels, mapping_kwargs=dict(mapping_kwargs or {}),
                                              **synthesis_kwargs))
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.synthesis = SynthesisNetwork(w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels, **synthesis_kwargs)
        self.num_ws = self.synthesis.num_ws
        mapping = {"num_layers": 2, "w_avg_beta": 0.998, **(mapping_kwargs or {})}  # NVlabs stylegan3 defaults
        self.mapping = MappingNetwork(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=self.num_ws, **mapping)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1,
                truncation_cutoff: int | None = None, noise_mode: str = "random", force_fp32: bool | None = None,
                fused_modconv: bool | None = None) -> torch.Tensor:
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, noise_mode=noise_mode, force_fp32=force_fp32)
