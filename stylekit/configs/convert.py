"""`stylekit convert`: the options of writing a StyleGAN2 or StyleGAN3 network in another tool's format."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from stylekit.configs.stylegan import NETWORK_COVER
from stylekit.declare import Config, argument, option


class Format(StrEnum):
    """Output formats (stylekit.nets.stylegan2.export.EXPORTERS: their writers and file suffixes)."""

    safetensors = "safetensors"
    rosinality = "rosinality"
    nvlabs_state = "nvlabs-state"


@dataclass(frozen=True)
class ConvertConfig(Config):
    network: str = argument("StyleGAN2 or StyleGAN3 network: registry name, NVlabs .pkl, rosinality .pt, stylekit "
                            ".safetensors, nvlabs-state .pt, a run directory, or random:RES / random:stylegan3:RES (a "
                            "random-init stand-in).", cover=NETWORK_COVER)
    to: Format = option(help="Output format. rosinality is what pSp, e4e, StyleGAN-NADA and StyleCLIP read (StyleGAN2 "
                        "only); nvlabs-state loads with G.load_state_dict in NVlabs code (init kwargs in the .json next to it).", flags="--to")
    out: Path = option(help="Output file (.safetensors, or .pt for rosinality / nvlabs-state).", concept="out", cover=())
    fresh: bool = option(concept="fresh", help="Replace the files this conversion writes (the .json beside an nvlabs-state "
                         ".pt too) when they exist.", cover=())
    verify: bool = option(True, "Load the output back and compare two rendered seeds with the input (max pixel difference "
                          "in the result).")
