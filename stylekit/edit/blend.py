"""`stylekit blend-layers`: resolution-dependent layer swapping between two generators ("toonify").

Pinkney & Adler (2020): synthesis layers below the swap resolution come from the *structure*
network (pose, face shape), the ones at and above it from the other (texture, rendering); mapping,
w_avg and the constant noise maps come from the structure network. Positions count two synthesis
levels per resolution (level 0: const or conv0; level 1: conv1 and torgb); with
x = 2*log2(res) + level - 2*log2(swap_res) + 0.5 the weight of the *other* network is
  hard:   y = 1 if res >= swap_res else 0
  smooth: y = 1 / (1 + exp(-x / blend_width))   (monotone in resolution, centred on the swap).
Toonify recipe: --structure finetuned (cartoon shapes), FFHQ base supplies the high resolutions.
"""

from __future__ import annotations

import copy
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from stylekit.checks import check_number, check_trunc
from stylekit.errors import BadInput
from stylekit.nets.stylegan2.networks import Generator

_LAYER = re.compile(r"^synthesis\.b(\d+)\.(const|conv0|conv1|torgb)(\.|$)")


@dataclass
class BlendConfig:
    base: str
    finetuned: str
    out: Path
    swap_res: int = 32
    blend_width: float | None = None
    structure: str = "finetuned"
    preview_seeds: list[int] = field(default_factory=lambda: list(range(6)))
    trunc: float = 1.0
    device: str = "auto"

    def validate(self) -> None:
        check_trunc(self.trunc)
        if self.structure not in ("base", "finetuned"):
            raise BadInput(f"bad --structure '{self.structure}'", hint="use base or finetuned")
        if self.blend_width is not None:
            check_number("--blend-width", self.blend_width, above=0, hint="omit it for a hard swap")
        if self.swap_res < 4 or self.swap_res & (self.swap_res - 1):
            raise BadInput(f"--swap-res {self.swap_res} must be a power of two >= 4", hint="e.g. --swap-res 32")
        out = Path(self.out)
        if out.suffix != ".safetensors":
            raise BadInput(f"--out {out}: the blended network is written as .safetensors", hint="e.g. --out toonify.safetensors")
        if out.is_dir():
            raise BadInput(f"--out {out} is a folder", hint="give a file name, e.g. --out toonify.safetensors")


@dataclass
class BlendResult:
    out: str
    preview: str | None
    swap_res: int
    blend_width: float | None
    structure: str
    weights: dict[str, float]  # per synthesis layer: share of the non-structure network
    seconds: float = 0.0


def layer_position(name: str) -> tuple[int, int] | None:
    """(resolution, level) of a synthesis parameter name, None outside the synthesis layers."""
    m = _LAYER.match(name)
    if not m:
        return None
    res, part = int(m.group(1)), m.group(2)
    return res, 0 if part in ("const", "conv0") else 1


def blend_weight(res: int, level: int, swap_res: int, blend_width: float | None) -> float:
    """Share of the detail (non-structure) network for a layer at (res, level)."""
    if blend_width is None:
        return 1.0 if res >= swap_res else 0.0
    x = 2 * math.log2(res) + level - 2 * math.log2(swap_res) + 0.5
    return 1.0 / (1.0 + math.exp(-x / blend_width))


def check_compatible(a: Generator, b: Generator, names: tuple[str, str] = ("base", "finetuned")) -> None:
    """BadInput naming the layers whose names or shapes differ."""
    sa, sb = a.state_dict(), b.state_dict()
    only_a = sorted(set(sa) - set(sb))
    only_b = sorted(set(sb) - set(sa))
    shapes = sorted(k for k in set(sa) & set(sb) if sa[k].shape != sb[k].shape)
    if only_a or only_b or shapes:
        parts = []
        if shapes:
            parts.append("different shapes: " + ", ".join(f"{k} {list(sa[k].shape)} vs {list(sb[k].shape)}" for k in shapes[:6]))
        if only_a:
            parts.append(f"only in {names[0]}: {', '.join(only_a[:6])}")
        if only_b:
            parts.append(f"only in {names[1]}: {', '.join(only_b[:6])}")
        more = " ..." if max(len(shapes), len(only_a), len(only_b)) > 6 else ""
        raise BadInput(f"the networks cannot be blended: {'; '.join(parts)}{more}",
                       hint="blend a network with one fine-tuned from it (same resolution and channels)")


def blend_generators(
    structure: Generator, detail: Generator, swap_res: int, blend_width: float | None = None
) -> tuple[Generator, dict[str, float]]:
    """A new generator: structure's mapping/noise, synthesis layers mixed by resolution."""
    check_compatible(structure, detail, ("structure", "other"))
    if swap_res < 4 or swap_res & (swap_res - 1):
        raise BadInput(f"--swap-res {swap_res} must be a power of two >= 4")
    out = copy.deepcopy(structure)
    sd_s, sd_d = structure.state_dict(), detail.state_dict()
    new = {}
    weights: dict[str, float] = {}
    for name, ps in sd_s.items():
        pos = layer_position(name)
        if pos is None or name.endswith("noise_const") or name.endswith("resample_filter"):
            new[name] = ps.clone()
            continue
        y = blend_weight(pos[0], pos[1], swap_res, blend_width)
        weights[name.rsplit(".", 1)[0] if not name.endswith("const") else name] = y
        new[name] = ps.clone() if y == 0 else (sd_d[name].clone() if y == 1 else ps.lerp(sd_d[name], y))
    out.load_state_dict(new)
    layers = {}
    for key, y in weights.items():
        m = _LAYER.match(key)
        assert m
        layers[f"b{m.group(1)}.{m.group(2)}"] = y
    return out.eval(), layers


def run_blend(cfg: BlendConfig) -> BlendResult:
    """Blend, save a loadable .safetensors network and a preview grid (base | finetuned | blended)."""
    from stylekit.data.images import save_grid
    from stylekit.device import resolve_device
    from stylekit.edit.generate import map_seeds, synthesize, to_unit
    from stylekit.io.rundir import ensure_writable_dir
    from stylekit.nets.stylegan2.load import load_network, save_network

    start = time.monotonic()
    cfg.validate()
    out = Path(cfg.out)
    ensure_writable_dir(out.parent)
    device = resolve_device(cfg.device)
    base = load_network(cfg.base, device).generator
    fine = load_network(cfg.finetuned, device).generator
    check_compatible(base, fine)
    if cfg.swap_res > base.img_resolution:
        raise BadInput(f"--swap-res {cfg.swap_res} is above the networks' resolution {base.img_resolution}: nothing would be swapped",
                       hint=f"use a power of two from 4 to {base.img_resolution}")
    structure, detail = (fine, base) if cfg.structure == "finetuned" else (base, fine)
    blended, layers = blend_generators(structure, detail, cfg.swap_res, cfg.blend_width)
    extra = {"blend": {"base": str(cfg.base), "finetuned": str(cfg.finetuned), "swap_res": cfg.swap_res,
                       "blend_width": cfg.blend_width, "structure": cfg.structure}}
    save_network(out, G=blended, extra=extra)
    preview = None
    if cfg.preview_seeds:
        tiles = []
        rows = [to_unit(synthesize(g, map_seeds(g, cfg.preview_seeds, cfg.trunc), "const")) for g in (base, fine, blended)]
        for i in range(len(cfg.preview_seeds)):
            tiles += [rows[0][i], rows[1][i], rows[2][i]]
        preview = str(save_grid(tiles, out.with_suffix(".preview.png"), nrow=3))
    return BlendResult(out=str(out), preview=preview, swap_res=cfg.swap_res, blend_width=cfg.blend_width,
                       structure=cfg.structure, weights=layers, seconds=round(time.monotonic() - start, 3))
