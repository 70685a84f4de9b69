"""`stylekit blend-layers`: layer swapping between two generators ("toonify"), by resolution or layer index.

Pinkney & Adler (2020): synthesis layers below the swap come from the *structure* network (pose, face
shape), the ones at and above it from the other (texture, rendering); mapping, w_avg and the constant
noise maps come from the structure network. Layers are ordered by an index (`SynthesisNetwork.layer_of`):
StyleGAN2 counts two levels per resolution (2*log2(res) - 4 for const/conv0, +1 for conv1 and torgb), so
--swap-res R is the index 2*log2(R) - 4; StyleGAN3 counts its layers in order (0 the Fourier input, i+1
layer L{i}), placed by --swap-layer. With x = index - swap + 0.5 the weight of the *other* network is
  hard:   y = 1 if index >= swap else 0
  smooth: y = 1 / (1 + exp(-x / blend_width))   (monotone in the index, centred on the swap).
Toonify recipe: --structure finetuned (cartoon shapes), FFHQ base supplies the high resolutions.
Several swap values make a sweep: one network each, one labelled sheet to compare them side by side,
and (with --metrics/--ref) each blend scored through the metric registry.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from stylekit.configs.stylegan import BlendConfig, Structure
from stylekit.data.grid import save_labelled_grid
from stylekit.edit.generate import load_generator, map_seeds, synthesize, to_unit
from stylekit.edit.outdir import Claim, claim_out, network_identity, warn_standins
from stylekit.errors import BadInput
from stylekit.io.atomic import write_json_atomic
from stylekit.io.console import get_console
from stylekit.io.outpath import names_folder
from stylekit.io.paths import Input, refuse_out_overlap
from stylekit.io.recipe import recipe_digest
from stylekit.io.rundir import ensure_writable_dir
from stylekit.metrics.registry import FAMILIES, parse_metrics
from stylekit.metrics.score import ScoreConfig, score_sets
from stylekit.nets.stylegan2.load import save_network
from stylekit.nets.stylegan2.networks import Generator
from stylekit.train.distributed import DistInfo, broadcast_object, distributed_job
from stylekit.train.shares import on_main

BLENDED_FILE = "blended.safetensors"


@dataclass
class BlendResult:
    out: str
    preview: str | None
    swap_res: int | list[int] | None  # StyleGAN2 resolution(s) of the swap (None with --swap-layer)
    blend_width: float | None
    structure: str
    weights: dict[str, float]  # per synthesis layer: share of the non-structure network (single blend)
    seconds: float = 0.0
    sweep: list[dict[str, Any]] = field(default_factory=list)  # per swap resolution: network file and metrics
    up_to_date: bool = False  # a rerun of the same options into the same --out: nothing was redone
    standins: list[str] = field(default_factory=list)  # labels of random-init stand-ins used
    swap_layer: int | list[int] | None = None  # layer index(es) of the swap (--swap-layer)


def swap_index(G: Generator, point: int, by_layer: bool) -> int:
    """The first layer index taken from the non-structure network: a --swap-layer point as it is, a --swap-res one
    as the StyleGAN2 level of that resolution's first layer (BadInput for a StyleGAN3 network: its layers are not
    resolution steps)."""
    if by_layer:
        return point
    if G.architecture != "stylegan2":
        raise BadInput(f"--swap-res {point}: a StyleGAN3 network's layers do not double in resolution; swap by layer index",
                       hint=_layer_hint(G))
    return 2 * int(math.log2(point)) - 4


def _layer_hint(G: Generator) -> str:
    return f"pass --swap-layer N (0 = its Fourier input, 1..{G.num_ws - 1} = layers L0..L{G.num_ws - 2})"


def blend_weight(index: int, swap: int, blend_width: float | None) -> float:
    """Share of the detail (non-structure) network for the layer at `index` (a swap at index `swap`)."""
    if blend_width is None:
        return 1.0 if index >= swap else 0.0
    return 1.0 / (1.0 + math.exp(-(index - swap + 0.5) / blend_width))


def check_compatible(a: Generator, b: Generator, names: tuple[str, str] = ("base", "finetuned")) -> None:
    """BadInput naming the layers whose names or shapes differ."""
    if a.architecture != b.architecture:
        raise BadInput(f"the networks cannot be blended: {names[0]} is {a.architecture}, {names[1]} {b.architecture}",
                       hint="blend a network with one fine-tuned from it (same architecture, resolution and channels)")
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
    structure: Generator, detail: Generator, swap: int, blend_width: float | None = None
) -> tuple[Generator, dict[str, float]]:
    """A new generator: structure's mapping (and noise maps), synthesis layers mixed by layer index (`swap_index`)."""
    check_compatible(structure, detail, ("structure", "other"))
    out = copy.deepcopy(structure)
    sd_s, sd_d = structure.state_dict(), detail.state_dict()
    new = {}
    layers: dict[str, float] = {}
    for name, ps in sd_s.items():
        layer = structure.synthesis.layer_of(name)
        if layer is None or name.endswith(("noise_const", "resample_filter", "up_filter", "down_filter")):
            new[name] = ps.clone()
            continue
        y = blend_weight(layer[1], swap, blend_width)
        layers[layer[0]] = y
        new[name] = ps.clone() if y == 0 else (sd_d[name].clone() if y == 1 else ps.lerp(sd_d[name], y))
    out.load_state_dict(new)
    return out.eval(), layers


def _score(cfg: BlendConfig, G: Generator, label: str, dist: DistInfo) -> tuple[dict[str, float], dict[str, int | None]]:
    """NVlabs-style flat results of `cfg.metrics` for one generator against `cfg.ref`, and the number of
    generated images each metric used (what --num-gen and the metric names resolved to). Every rank of
    the job computes its share (one process group for the whole sweep)."""

    report = score_sets(ScoreConfig(b=cfg.ref, generator=G, network=label, metrics=list(cfg.metrics), num_gen=cfg.num_gen,
                                    trunc=1.0, device=str(dist.device), extractors=cfg.extractors), dist)
    flat: dict[str, float] = {}
    counts: dict[str, int | None] = {}
    for spec in parse_metrics(cfg.metrics):
        flat.update(FAMILIES[spec.family].results(spec.name, report.metrics[spec.name]))
        counts[spec.name] = report.metrics[spec.name].get("num_gen")
    return flat, counts


def _outputs(cfg: BlendConfig) -> dict[int, Path]:
    """Network file per swap: --out itself (one blend), or OUT/blend-swapR.safetensors (a --swap-res sweep),
    OUT/blend-layerI.safetensors (a --swap-layer sweep)."""
    if cfg.sweep:
        stem = "blend-layer" if cfg.swap_option == "swap_layer" else "blend-swap"
        return {r: Path(cfg.out) / f"{stem}{r}.safetensors" for r in cfg.swap_points}
    out = Path(cfg.out) / BLENDED_FILE if names_folder(cfg.out) else Path(cfg.out)
    if out.suffix != ".safetensors":
        raise BadInput(f"--out {out}: the blended network is written as .safetensors", hint="e.g. --out toonify.safetensors")
    return {cfg.swap_points[0]: out}


def _check_swaps(cfg: BlendConfig, G: Generator) -> dict[int, int]:
    """Swap point -> first layer index taken from the other network; BadInput when a swap would take nothing."""
    top = max(layer[1] for name in G.state_dict() if (layer := G.synthesis.layer_of(name)) is not None)
    by_layer = cfg.swap_option == "swap_layer"
    if not by_layer and cfg.swap_res is None and G.architecture != "stylegan2":
        raise BadInput("a StyleGAN3 network is blended by layer index, not by resolution (the default --swap-res 32)",
                       hint=_layer_hint(G))
    swaps = {point: swap_index(G, point, by_layer) for point in cfg.swap_points}
    flag = "--" + cfg.swap_option.replace("_", "-")
    for point, index in swaps.items():
        if index > top:
            raise BadInput(f"{flag} {point} is past the networks' last layer: nothing would be swapped",
                           hint=f"use an index from 0 to {top}" if by_layer else f"use a power of two from 4 to {G.img_resolution}")
    return swaps


def blend_options(cfg: BlendConfig, base_id: str, finetuned_id: str) -> dict[str, Any]:
    """What shapes blend-layers' outputs (its rerun recipe)."""
    doc = cfg.to_dict()
    for key in ("out", "device", "fresh", "extractors"):
        doc.pop(key)
    return {**doc, "base": base_id, "finetuned": finetuned_id}


def _file_recipe(path: Path) -> str | None:
    """The recipe a blended network file records (None: not a blend-layers network, or unreadable)."""
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt", device="cpu") as fh:
            return str(json.loads((fh.metadata() or {}).get("extra", "{}"))["blend"]["recipe"])
    except Exception:  # noqa: BLE001 - anything unreadable counts as "no record"
        return None


@contextlib.contextmanager
def _claim(cfg: BlendConfig, outputs: dict[int, Path], options: dict[str, Any], dist: DistInfo) -> Iterator[Any]:
    """The rerun rule (stylekit.edit.outdir): a folder --out is claimed; a single network file is up to date when
    it records the same recipe, refused (exit 2, --fresh) when it records another or none. Under torchrun rank 0
    decides and every rank gets its answer."""

    if cfg.sweep or names_folder(cfg.out):
        with claim_out(Path(cfg.out) if cfg.sweep else next(iter(outputs.values())).parent, "blend-layers", options,
                       cfg.fresh, dist) as claim:
            yield claim
        return
    out = next(iter(outputs.values()))
    recipe = recipe_digest({"command": "blend-layers", **options})

    def check() -> bool:
        if out.exists() and not cfg.fresh:
            recorded = _file_recipe(out)
            if recorded != recipe:
                raise BadInput(f"--out {out} already exists and was made {'with other options' if recorded else 'by something else'}",
                               hint="pass --fresh to replace it, or choose another --out")
            return True
        ensure_writable_dir(out.parent)
        return False

    up_to_date = broadcast_object(on_main(check, dist), dist)
    yield Claim(out.parent, "blend-layers", recipe, options, up_to_date, recorded=False)  # the file records its recipe


def run_blend(cfg: BlendConfig) -> BlendResult:
    """Blend, save loadable .safetensors network(s) and a labelled preview: base | fine-tuned | blended,
    or for a sweep base | swap 4 | swap 8 | ... | fine-tuned (OUT/sweep.png), with optional metrics.

    Under torchrun every rank blends (cheap) and computes its share of the metrics; rank 0 writes."""
    with distributed_job(cfg.device) as dist:
        return _run_blend(cfg, dist)


def _run_blend(cfg: BlendConfig, dist: DistInfo) -> BlendResult:

    start = time.monotonic()
    if cfg.metrics:
        from stylekit.metrics.registry import parse_metrics

        parse_metrics(list(cfg.metrics))  # unknown names fail before anything loads
    outputs = _outputs(cfg)
    for out in outputs.values():
        refuse_out_overlap(out, [Input("--base", cfg.base), Input("--finetuned", cfg.finetuned), Input("--ref", cfg.ref)])
    device = dist.device
    loaded_base, base_label = load_generator(cfg.base, device, "--base")
    loaded_fine, fine_label = load_generator(cfg.finetuned, device, "--finetuned")
    base, fine = loaded_base.generator, loaded_fine.generator
    check_compatible(base, fine, ("--base", "--finetuned"))
    swaps = _check_swaps(cfg, base)
    structure, detail = (fine, base) if cfg.structure is Structure.finetuned else (base, fine)
    options = blend_options(cfg, network_identity(cfg.base, loaded_base.source), network_identity(cfg.finetuned, loaded_fine.source))
    points: int | list[int] = cfg.swap_points if cfg.sweep else cfg.swap_points[0]
    result = BlendResult(out=str(cfg.out) if cfg.sweep else str(next(iter(outputs.values()))), preview=None,
                         swap_res=points if cfg.swap_option == "swap_res" else None, blend_width=cfg.blend_width,
                         structure=str(cfg.structure), weights={}, standins=[x for x in (base_label, fine_label) if x],
                         swap_layer=points if cfg.swap_option == "swap_layer" else None)
    key, label = cfg.swap_option, "layer" if cfg.swap_option == "swap_layer" else "swap"

    def preview(g: Generator) -> torch.Tensor:
        return to_unit(synthesize(g, map_seeds(g, list(cfg.preview_seeds), cfg.trunc), "const"))

    with _claim(cfg, outputs, options, dist) as claim:
        warn_standins(result.standins)
        sheet = Path(cfg.out) / "sweep.png" if cfg.sweep else next(iter(outputs.values())).with_suffix(".preview.png")
        if claim.up_to_date:
            get_console().log(f"blend-layers: {result.out} is up to date (same options; --fresh redoes it)")
            result.preview = str(sheet) if cfg.preview_seeds else None
            result.sweep = [{key: r, "out": str(o)} for r, o in outputs.items()] if cfg.sweep else []
            result.up_to_date = True
            result.seconds = round(time.monotonic() - start, 3)
            return result
        columns, images, sweep, layers = ["base"], [preview(base)] if cfg.preview_seeds else [], [], {}
        for point, out in outputs.items():
            blended, layers = blend_generators(structure, detail, swaps[point], cfg.blend_width)
            extra = {"blend": {"base": str(cfg.base), "finetuned": str(cfg.finetuned), key: point,
                               "blend_width": cfg.blend_width, "structure": str(cfg.structure), "recipe": claim.recipe}}
            on_main(functools.partial(save_network, out, G=blended, extra=extra), dist)
            entry: dict[str, Any] = {key: point, "out": str(out)}
            if cfg.metrics:
                entry["metrics"], entry["num_gen"] = _score(cfg, blended, f"{out.name} ({label} {point})", dist)
                get_console().log(f"{label} {point}: " + ", ".join(f"{k} {v:.4g}" for k, v in entry["metrics"].items()))
            sweep.append(entry)
            if cfg.preview_seeds:
                columns.append(f"{label} {point}" if cfg.sweep else "blended")
                images.append(preview(blended))
        written = [str(o) for o in outputs.values()]
        if cfg.preview_seeds:
            columns.insert(len(columns) if cfg.sweep else 1, "fine-tuned")
            images.insert(len(images) if cfg.sweep else 1, preview(fine))
            rows = [[col[i] for col in images] for i in range(len(cfg.preview_seeds))]
            on_main(lambda: save_labelled_grid(sheet, rows, columns, [f"seed {s}" for s in cfg.preview_seeds]), dist)
            result.preview = str(sheet)
            written.append(result.preview)
        result.weights = {} if cfg.sweep else layers
        result.sweep = sweep if cfg.sweep or cfg.metrics else []
        result.seconds = round(time.monotonic() - start, 3)
        if cfg.sweep:
            from dataclasses import asdict

            on_main(lambda: write_json_atomic(Path(cfg.out) / "sweep.json", asdict(result)), dist)
            written.append(str(Path(cfg.out) / "sweep.json"))
        on_main(lambda: claim.finish(written), dist)
    return result
