"""StyleGAN3 generator configs read from files: which init kwargs count, and their sane bounds.

NVlabs stylegan3 pickles store the Generator's `_init_kwargs` with the synthesis and layer arguments
flattened (`channel_base`, `conv_kernel`, `use_radial_filters`, ...) next to `mapping_kwargs`; a key that
does not change the weights or the math is dropped with a note, as for StyleGAN2. The bounds are checked
before anything is built (stylekit/io/limits.py has the shared limits).
"""

from __future__ import annotations

import copy
from typing import Any

from stylekit.io.console import get_console
from stylekit.io.limits import (
    NET_CHANNEL_BASE_MAX,
    NET_CLASSES_MAX,
    NET_IMG_CHANNELS_MAX,
    NET_LAYERS_MAX,
    NET_RESOLUTION_MAX,
    NET_WIDTH_MAX,
    Bounds,
    check_fields,
)

_TOP_KEYS = {"z_dim", "c_dim", "w_dim", "img_resolution", "img_channels"}
_MAPPING_KEYS = {"num_layers", "lr_multiplier", "w_avg_beta"}
_SYNTHESIS_KEYS = {
    "channel_base", "channel_max", "num_layers", "num_critical", "first_cutoff", "first_stopband", "last_stopband_rel",
    "margin_size", "output_scale", "num_fp16_res",  # SynthesisNetwork
    "conv_kernel", "filter_size", "lrelu_upsampling", "use_radial_filters", "conv_clamp", "magnitude_ema_beta",  # layers
}
_WIDTH = (1, NET_WIDTH_MAX)
GENERATOR_BOUNDS: Bounds = {
    "z_dim": _WIDTH,
    "w_dim": _WIDTH,
    "c_dim": (0, NET_CLASSES_MAX),
    "img_resolution": (4, NET_RESOLUTION_MAX),
    "img_channels": (1, NET_IMG_CHANNELS_MAX),
    "mapping_kwargs": {"num_layers": (1, NET_LAYERS_MAX)},
    "channel_base": (1, NET_CHANNEL_BASE_MAX),
    "channel_max": _WIDTH,
    "num_layers": (1, NET_LAYERS_MAX),
    "num_critical": (0, NET_LAYERS_MAX),
    "num_fp16_res": (0, NET_LAYERS_MAX),
    "margin_size": (0, 256),  # pixels around the image (10 in every published network)
    "conv_kernel": (1, 15),
    "filter_size": (1, 64),  # taps per sampling step (6 in NVlabs)
    "lrelu_upsampling": (1, 16),
}


def normalize_generator_config(raw: dict[str, Any]) -> dict[str, Any]:
    """NVlabs stylegan3 Generator init kwargs -> the kwargs stylekit's StyleGAN3 Generator takes."""
    raw = copy.deepcopy(dict(raw))
    mapping = dict(raw.pop("mapping_kwargs", None) or {})
    cfg: dict[str, Any] = {k: raw.pop(k) for k in list(raw) if k in _TOP_KEYS | _SYNTHESIS_KEYS}
    cfg["mapping_kwargs"] = {k: v for k, v in mapping.items() if k in _MAPPING_KEYS}
    dropped = sorted(raw) + sorted(f"mapping_kwargs.{k}" for k in mapping if k not in _MAPPING_KEYS)
    if dropped:
        get_console().log(f"stylegan3: ignoring generator options that do not change the weights: {', '.join(dropped)}")
    cfg.setdefault("img_channels", 3)
    return cfg


def check_generator_config(config: dict[str, Any], source: str, kind: str = "G") -> None:
    """BadInput (exit 2) naming the file, the field, its declared value and the bound."""
    check_fields(config, GENERATOR_BOUNDS, source, f"{kind}.")
