"""`stylekit blend-layers`: resolution-dependent layer swapping between two generators ("toonify").

Pinkney & Adler (2020): synthesis layers below the swap resolution come from the *structure*
network (pose, face shape), the ones at and above it from the other (texture, rendering); mapping,
w_avg and the constant noise maps come from the structure network. Positions count two synthesis
levels per resolution (level 0: const or conv0; level 1: conv1 and torgb); with
x = 2*log2(res) + level - 2*log2(swap_res) + 0.5 the weight of the *other* network is
  hard:   y = 1 if res >= swap_res else 0
  smooth: y = 1 / (1 + exp(-x / blend_width))   (monotone in resolution, centred on the swap).
Toonify recipe: --structure finetuned (cartoon shapes), FFHQ base supplies the high resolutions.
Several --swap-res values make a sweep: one network per resolution, one labelled sheet to compare
them side by side, and (with --metrics/--ref) each blend scored through the metric registry.
"""

from __future__ import annotations

import copy
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from stylekit.checks import check_number, check_trunc
from stylekit.errors import BadInput
from stylekit.io.outpath import names_folder
from stylekit.io.paths import Input, refuse_out_overlap
from stylekit.nets.stylegan2.networks import Generator

BLENDED_FILE = "blended.safetensors"
_LAYER = re.compile(r"^synthesis\.b(\d+)\.(const|conv0|conv1|torgb)(\.|$)")


@dataclass
class BlendConfig:
    base: str
    finetuned: str
    out: Path | str  # a .safetensors file, or a folder (existing, or ending in /) that gets BLENDED_FILE
    swap_res: int | list[int] = 32  # several: a sweep, one network each in the --out folder + sweep.png
    blend_width: float | None = None
    structure: str = "finetuned"
    preview_seeds: list[int] = field(default_factory=lambda: list(range(6)))
    trunc: float = 1.0
    device: str = "auto"
    metrics: list[str] | None = None  # registry names (score's), computed for every blend against `ref`
    ref: str | None = None  # reference images (folder, zip or stats:NAME/RES) for `metrics`
    num_gen: int | None = None  # generated images per blend for metric names without a count
    extractors: dict[str, Any] = field(default_factory=dict)  # feature-model overrides for the metrics (see ScoreConfig)

    @property
    def resolutions(self) -> list[int]:
        values = [self.swap_res] if isinstance(self.swap_res, int) else list(self.swap_res)
        if not values or len(set(values)) != len(values):
            raise BadInput(f"--swap-res {self.swap_res}: give one resolution or several different ones", hint="e.g. --swap-res 4,8,16,32,64")
        return sorted(values)

    @property
    def sweep(self) -> bool:
        return len(self.resolutions) > 1

    def validate(self) -> None:
        check_trunc(self.trunc)
        if self.structure not in ("base", "finetuned"):
            raise BadInput(f"bad --structure '{self.structure}'", hint="use base or finetuned")
        if self.blend_width is not None:
            check_number("--blend-width", self.blend_width, above=0, hint="omit it for a hard swap")
        for res in self.resolutions:
            if res < 4 or res & (res - 1):
                raise BadInput(f"--swap-res {res} must be a power of two >= 4", hint="e.g. --swap-res 32")
        if bool(self.metrics) != (self.ref is not None):
            raise BadInput("--metrics and --ref go together", hint="e.g. --metrics fid10k --ref data/faces-256")
        if self.metrics:
            from stylekit.metrics.registry import parse_metrics

            parse_metrics(self.metrics)  # unknown names fail before anything loads


@dataclass
class BlendResult:
    out: str
    preview: str | None
    swap_res: int | list[int]
    blend_width: float | None
    structure: str
    weights: dict[str, float]  # per synthesis layer: share of the non-structure network (single blend)
    seconds: float = 0.0
    sweep: list[dict[str, Any]] = field(default_factory=list)  # per swap resolution: network file and metrics


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


def _score(cfg: BlendConfig, G: Generator, label: str, device: Any) -> dict[str, float]:
    """NVlabs-style flat results of `cfg.metrics` for one generator against `cfg.ref`."""
    from stylekit.metrics.registry import FAMILIES, parse_metrics
    from stylekit.metrics.score import ScoreConfig, score_sets

    report = score_sets(ScoreConfig(b=cfg.ref, generator=G, network=label, metrics=cfg.metrics, num_gen=cfg.num_gen,
                                    trunc=1.0, device=str(device), extractors=cfg.extractors))
    flat: dict[str, float] = {}
    for spec in parse_metrics(cfg.metrics):
        flat.update(FAMILIES[spec.family].results(spec.name, report.metrics[spec.name]))
    return flat


def _outputs(cfg: BlendConfig) -> dict[int, Path]:
    """Network file per swap resolution: --out itself (one blend), or OUT/blend-swapR.safetensors (a sweep)."""
    if cfg.sweep:
        if Path(cfg.out).suffix == ".safetensors":
            raise BadInput(f"--out {cfg.out}: a --swap-res sweep writes one network per resolution into a folder",
                           hint="e.g. --out blends/")
        return {r: Path(cfg.out) / f"blend-swap{r}.safetensors" for r in cfg.resolutions}
    out = Path(cfg.out) / BLENDED_FILE if names_folder(cfg.out) else Path(cfg.out)
    if out.suffix != ".safetensors":
        raise BadInput(f"--out {out}: the blended network is written as .safetensors", hint="e.g. --out toonify.safetensors")
    return {cfg.resolutions[0]: out}


def run_blend(cfg: BlendConfig) -> BlendResult:
    """Blend, save loadable .safetensors network(s) and a labelled preview: base | fine-tuned | blended,
    or for a sweep base | swap 4 | swap 8 | ... | fine-tuned (OUT/sweep.png), with optional metrics."""
    from stylekit.data.grid import save_labelled_grid
    from stylekit.device import resolve_device
    from stylekit.edit.generate import map_seeds, synthesize, to_unit
    from stylekit.io.atomic import write_json_atomic
    from stylekit.io.console import get_console
    from stylekit.io.rundir import ensure_writable_dir
    from stylekit.nets.stylegan2.load import load_network, save_network

    start = time.monotonic()
    cfg.validate()
    outputs = _outputs(cfg)
    for out in outputs.values():
        ensure_writable_dir(out.parent)
        refuse_out_overlap(out, [Input("--base", cfg.base), Input("--finetuned", cfg.finetuned), Input("--ref", cfg.ref)])
    device = resolve_device(cfg.device)
    base = load_network(cfg.base, device).generator
    fine = load_network(cfg.finetuned, device).generator
    check_compatible(base, fine)
    too_high = [r for r in cfg.resolutions if r > base.img_resolution]
    if too_high:
        raise BadInput(f"--swap-res {too_high[0]} is above the networks' resolution {base.img_resolution}: nothing would be swapped",
                       hint=f"use a power of two from 4 to {base.img_resolution}")
    structure, detail = (fine, base) if cfg.structure == "finetuned" else (base, fine)

    def preview(g: Generator) -> torch.Tensor:
        return to_unit(synthesize(g, map_seeds(g, cfg.preview_seeds, cfg.trunc), "const"))

    columns, images, sweep, layers = ["base"], [preview(base)] if cfg.preview_seeds else [], [], {}
    for res, out in outputs.items():
        blended, layers = blend_generators(structure, detail, res, cfg.blend_width)
        extra = {"blend": {"base": str(cfg.base), "finetuned": str(cfg.finetuned), "swap_res": res,
                           "blend_width": cfg.blend_width, "structure": cfg.structure}}
        save_network(out, G=blended, extra=extra)
        entry: dict[str, Any] = {"swap_res": res, "out": str(out)}
        if cfg.metrics:
            entry["metrics"] = _score(cfg, blended, f"{out.name} (swap {res})", device)
            get_console().log(f"swap {res}: " + ", ".join(f"{k} {v:.4g}" for k, v in entry["metrics"].items()))
        sweep.append(entry)
        if cfg.preview_seeds:
            columns.append(f"swap {res}" if cfg.sweep else "blended")
            images.append(preview(blended))
    preview_path = None
    if cfg.preview_seeds:
        columns.insert(len(columns) if cfg.sweep else 1, "fine-tuned")
        images.insert(len(images) if cfg.sweep else 1, preview(fine))
        rows = [[col[i] for col in images] for i in range(len(cfg.preview_seeds))]
        sheet = Path(cfg.out) / "sweep.png" if cfg.sweep else next(iter(outputs.values())).with_suffix(".preview.png")
        preview_path = str(save_labelled_grid(sheet, rows, columns, [f"seed {s}" for s in cfg.preview_seeds]))
    result = BlendResult(out=str(cfg.out) if cfg.sweep else str(next(iter(outputs.values()))), preview=preview_path,
                         swap_res=cfg.resolutions if cfg.sweep else cfg.resolutions[0], blend_width=cfg.blend_width,
                         structure=cfg.structure, weights={} if cfg.sweep else layers,
                         seconds=round(time.monotonic() - start, 3), sweep=sweep if cfg.sweep or cfg.metrics else [])
    if cfg.sweep:
        from dataclasses import asdict

        write_json_atomic(Path(cfg.out) / "sweep.json", asdict(result))
    return result
