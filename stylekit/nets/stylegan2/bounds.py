"""Sane bounds for a StyleGAN2 config read from a file (NVlabs init kwargs, stylekit metadata, rosinality).

Checked before anything is built, so a file declaring `z_dim: 60000` is refused with one line instead
of allocating gigabytes; the limits themselves live in stylekit/io/limits.py.
"""

from __future__ import annotations

from typing import Any

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

_WIDTH = (1, NET_WIDTH_MAX)
_LAYERS = (0, NET_LAYERS_MAX)
_MAPPING: Bounds = {"num_layers": (1, NET_LAYERS_MAX), "embed_features": _WIDTH, "layer_features": _WIDTH}
_COMMON: Bounds = {
    "c_dim": (0, NET_CLASSES_MAX),
    "img_resolution": (4, NET_RESOLUTION_MAX),
    "img_channels": (1, NET_IMG_CHANNELS_MAX),
}
GENERATOR_BOUNDS: Bounds = {
    **_COMMON,
    "z_dim": _WIDTH,
    "w_dim": _WIDTH,
    "mapping_kwargs": _MAPPING,
    "synthesis_kwargs": {"channel_base": (1, NET_CHANNEL_BASE_MAX), "channel_max": _WIDTH, "num_fp16_res": _LAYERS},
}
DISCRIMINATOR_BOUNDS: Bounds = {
    **_COMMON,
    "channel_base": (1, NET_CHANNEL_BASE_MAX),
    "channel_max": _WIDTH,
    "num_fp16_res": _LAYERS,
    "cmap_dim": _WIDTH,
    "mapping_kwargs": _MAPPING,
    "block_kwargs": {"freeze_layers": _LAYERS},
    "epilogue_kwargs": {"mbstd_group_size": _LAYERS, "mbstd_num_channels": _LAYERS},
}


def check_network_config(kind: str, config: dict[str, Any], source: str) -> None:
    """BadInput (exit 2) naming the file, the field, its declared value and the bound."""
    check_fields(config, GENERATOR_BOUNDS if kind.startswith("G") else DISCRIMINATOR_BOUNDS, source, f"{kind}.")
