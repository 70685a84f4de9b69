"""Apply a trained reference-conditioned pix2pix generator: the "pix2pix" entry of `transfer.run.METHODS`.

`Pix2PixStylizer(run_or_model, styles)` loads RUN/generator.safetensors + RUN/generator.json
(written by `stylekit train-pix2pix`), encodes the STYLE images once (their style codes are
averaged, as over the K training references) and translates content images one by one. Content
is resized to the model's square training size, translated, and the output resized back to the
content's aspect ratio (longer side = the model size, or `size`). Python callers go through
`run_transfer(TransferConfig(content=..., styles=..., out=..., method="pix2pix", model=RUN))`.
"""

from __future__ import annotations

import time
import urllib.parse
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from stylekit.data.images import load_rgb, pil_to_tensor, tensor_to_pil
from stylekit.device import autocast, resolve_device
from stylekit.errors import BadInput
from stylekit.io.atomic import save_image_atomic
from stylekit.io.console import get_console
from stylekit.io.limits import (
    GENERATOR_JSON_BOUNDS,
    PRETRAINED_ALLOWANCE,
    build_checked,
    check_fields,
    parse_json,
)
from stylekit.io.paths import read_regular_text, require_regular_file
from stylekit.nets.ref_encoder import frozen_prefixes
from stylekit.nets.unet import GeneratorConfig, RefUNet, inference_mode
from stylekit.transfer.results_page import find_target, l1_to_target
from stylekit.transfer.results_page import write_results_page as write_page
from stylekit.weights import as_source, is_remote, weights_path

GENERATOR_FILE = "generator.safetensors"
GENERATOR_JSON = "generator.json"


def _remote_pair(source: str) -> tuple[Path, Path]:
    """A URL / hub id of generator.safetensors (or its .json): both files, fetched into the cache and verified."""


    parts = urllib.parse.urlsplit(source)
    stem, dot, suffix = parts.path.rpartition(".")
    if not dot or suffix not in ("safetensors", "json"):
        raise BadInput(f"--model {source}: give the address of a pix2pix generator.safetensors (or its .json)",
                       hint="its JSON config is fetched from the same place, with .json for .safetensors")
    weights, config = (urllib.parse.urlunsplit(parts._replace(path=f"{stem}.{ext}")) for ext in ("safetensors", "json"))
    return weights_path(weights), weights_path(config)


def resolve_model(path: str | Path) -> tuple[Path, Path]:
    """(weights .safetensors, config .json) from a run directory, a .safetensors file or its .json, or
    the https:// URL / hf:// hub id of either (both are fetched, verified and cached by stylekit.weights)."""

    source = as_source(path)
    if is_remote(source):
        return _remote_pair(source)
    path = Path(path)
    if path.is_dir():
        weights, config = path / GENERATOR_FILE, path / GENERATOR_JSON
    elif path.suffix == ".json":
        weights, config = path.with_suffix(".safetensors"), path
    else:
        weights, config = path, path.with_suffix(".json")
    if not weights.is_file() or not config.is_file():
        raise BadInput(
            f"--model {path}: no trained pix2pix generator ({weights.name} + {config.name}) there",
            hint="pass a train-pix2pix run directory (it holds generator.safetensors after the first epoch)",
        )
    return weights, config


def load_generator(path: str | Path, device: torch.device | str = "cpu") -> tuple[RefUNet, dict[str, Any]]:
    """Rebuild the generator from its JSON config and load its weights (VGG19 from the registry)."""
    from safetensors.torch import load_file


    weights, config = resolve_model(path)
    doc = parse_json(read_regular_text(config, "generator config"), str(config))
    try:
        check_fields(doc["generator"], GENERATOR_JSON_BOUNDS, str(config), "generator.")
        gen_cfg = GeneratorConfig(**doc["generator"])
    except (ValueError, KeyError, TypeError) as exc:
        raise BadInput(f"{config} is not a stylekit pix2pix generator config ({exc})",
                       hint="use the generator.json written by stylekit train-pix2pix") from None
    require_regular_file(weights, "generator weights")
    try:
        state = load_file(str(weights), device="cpu")
    except Exception as exc:  # noqa: BLE001 - any read failure means an unusable file
        raise BadInput(f"cannot read {weights}: {exc}", hint="re-export it with stylekit train-pix2pix") from None
    frozen = tuple("encoder." + p for p in frozen_prefixes(gen_cfg.ref_encoder))  # pretrained, from the registry
    g = build_checked(lambda: RefUNet(gen_cfg), {k: tuple(v.shape) for k, v in state.items()}, str(weights), config.name,
                      optional=lambda key: bool(frozen) and key.startswith(frozen), allowance=PRETRAINED_ALLOWANCE if frozen else 0)
    g.load_state_dict(state, strict=False)
    return g.to(device), doc


class Pix2PixStylizer:
    """The `Stylizer` protocol of stylekit.transfer for a trained pix2pix generator."""

    name = "pix2pix"

    def __init__(self, model: str | Path, styles: list[Path], size: int | None = None, device: str = "auto",
                 amp: bool = True) -> None:
        self.device = resolve_device(device)
        self.amp = amp
        self.model_path = Path(model)
        self.g, self.doc = load_generator(model, self.device)
        cfg = self.g.cfg
        side = self.g.backbone.size_multiple
        if size is not None and (size < side or size % side):
            raise BadInput(f"--size {size} does not fit this generator (trained at {cfg.size} px)",
                           hint=f"use a multiple of {side}, e.g. {cfg.size}")
        self.size = size or cfg.size
        self.styles = [Path(s) for s in styles]
        self.style = None
        if cfg.refs > 0:
            if not self.styles:
                raise BadInput("this pix2pix generator needs STYLE reference images",
                               hint=f"give a few images of the target style (it was trained with {cfg.refs})")
            refs = torch.stack([pil_to_tensor(load_rgb(p).resize((cfg.ref_size, cfg.ref_size), Image.Resampling.BICUBIC))
                                for p in self.styles])[None].to(self.device)
            with inference_mode(self.g), autocast(self.device, self.amp):
                self.style = self.g.style(refs)
        elif self.styles:
            get_console().warn("this generator was trained with --refs 0: the STYLE images are ignored")

    def describe(self) -> dict[str, Any]:
        cfg = self.g.cfg
        return {"model": str(self.model_path), "size": self.size, "trained_size": cfg.size, "refs_trained": cfg.refs,
                "style_images": [str(s) for s in self.styles], "direction": cfg.direction, "device": str(self.device),
                "epoch": self.doc.get("epoch"), "val_l1": self.doc.get("val_l1")}

    @torch.no_grad()
    def translate(self, img: Image.Image) -> Image.Image:
        """One PIL image -> its translation, at the content's aspect ratio (longer side = size)."""
        w, h = img.size
        x = pil_to_tensor(img.resize((self.size, self.size), Image.Resampling.BICUBIC))[None].to(self.device) * 2 - 1
        with inference_mode(self.g), autocast(self.device, self.amp):
            y = self.g.backbone(x, self.style)
        out = tensor_to_pil((y[0].float() + 1) / 2)
        scale = self.size / max(w, h)
        return out.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BICUBIC)

    def stylise(self, content_path: Path, out_path: Path) -> dict[str, Any]:

        start = time.perf_counter()
        save_image_atomic(out_path, self.translate(load_rgb(content_path)))
        return {"steps": 1, "seconds": round(time.perf_counter() - start, 3)}


def write_results_page(cfg: Any, report: Any) -> None:
    """A folder run's OUT/index.html (input | refs | output [| target, L1]); `cfg.targets` is a folder of
    ground-truth images at the content images' relative paths."""

    if not report.batch:
        return
    content, out, targets = Path(cfg.content), Path(cfg.out), Path(cfg.targets) if cfg.targets is not None else None
    if targets is not None:
        found = 0
        for item in report.items:
            target = find_target(Path(item["content"]), content, targets)
            if target is not None and item["status"] != "failed":
                item["target"], item["l1_target"] = str(target), round(l1_to_target(Path(item["output"]), target), 6)
                found += 1
        if not found:
            get_console().warn(f"--targets {targets}: no target matches a content image's relative path")
    page = write_page(out, report.items, [Path(s) for s in cfg.styles], f"pix2pix: {content} -> {out}")
    report.run["results_page"] = str(page)
