"""`stylekit transfer --method cyclegan`: a CycleGAN generator as a transfer method (the `Stylizer` of
stylekit/transfer/run.py, which handles images and folders, skipping, reruns and the report): a
`train-cyclegan` run (either direction) or a published junyanz generator (`style_monet`,
`style_vangogh`, `style_ukiyoe`, `style_cezanne`, or a local .pth / .safetensors state dict with his key
names, or its URL).

    stylekit transfer photos/ --method cyclegan --model runs/cg --direction a2b --out styled/
    stylekit transfer photo.jpg --method cyclegan --model style_vangogh --out photo_vangogh.png

Weights are read as data (`stylekit.io.state_dict.read_state_dict`: safetensors or
`torch.load(weights_only=True)`; TorchScript refused); a published file must match the ResNet
generator key for key (stylekit.nets.cyclegan.load_junyanz_state). A registry name is fetched on
first use; offline or unreachable, MissingResource (exit 3) names `stylekit download NAME`.

Each image keeps its aspect ratio: with `size`, its longer side becomes `size`; without, it is
translated at its own size. Either way both sides are rounded down to a multiple of 4 (the
generator halves the image twice).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn

from stylekit.data.images import load_rgb, pil_to_tensor, tensor_to_pil
from stylekit.device import autocast, resolve_device
from stylekit.errors import BadInput
from stylekit.io.atomic import save_image_atomic
from stylekit.io.limits import parse_json
from stylekit.io.paths import read_regular_text, require_regular_file
from stylekit.io.state_dict import read_state_dict
from stylekit.nets.cyclegan import cycle_generator, infer_junyanz_arch, load_junyanz_state
from stylekit.train.cyclegan import FORMAT, GENERATOR_FILES, META_FILE
from stylekit.weights import weights_path

DIRECTIONS = ("a2b", "b2a")
_KIND_FILES = {"generator.json": "a train-pix2pix run", "style_model.json": "a style model (train-classifier)",
               "G.safetensors": "a training checkpoint"}


def _wrong_kind(folder: Path) -> str | None:
    for name, kind in _KIND_FILES.items():
        if (folder / name).is_file() or any(folder.glob(f"checkpoints/*/{name}")):
            return kind
    return None


def _from_run(folder: Path, direction: str) -> tuple[nn.Module, dict[str, Any]]:
    from safetensors.torch import load_file


    meta_path = folder / META_FILE
    meta = parse_json(read_regular_text(meta_path, "CycleGAN metadata"), str(meta_path))
    arch = meta.get("generator") if isinstance(meta, dict) else None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or not isinstance(arch, dict):
        raise BadInput(f"{meta_path} is not a train-cyclegan export", hint="pass a train-cyclegan run directory")
    try:
        g = cycle_generator(int(arch["size"]), int(arch["ngf"]), int(arch["n_blocks"]), str(arch["norm"]),  # type: ignore[arg-type]
                            bool(arch["dropout"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise BadInput(f"{meta_path}: bad generator description ({exc})", hint="re-export by resuming the run") from None
    weights = require_regular_file(folder / GENERATOR_FILES[direction], "CycleGAN generator")
    try:
        g.load_state_dict(load_file(str(weights)), strict=True)
    except Exception as exc:  # noqa: BLE001 - a damaged or foreign file is bad input
        raise BadInput(f"{weights} does not fit the generator {meta_path} describes: {str(exc).splitlines()[0]}",
                       hint="re-export by resuming the run") from None
    return g, {"source": "run", "run": str(folder), "direction": direction, **arch, "epoch": meta.get("epoch")}


def _from_file(path: Path, label: str) -> tuple[nn.Module, dict[str, Any]]:

    hint = "pass a junyanz CycleGAN generator .pth (e.g. `stylekit download style_monet`) or a train-cyclegan run"
    state = read_state_dict(path, "CycleGAN generator state dict", hint)
    try:
        ngf, n_blocks, dropout = infer_junyanz_arch(state)
    except BadInput as exc:
        raise BadInput(f"{label}: {exc.message}", hint=exc.hint) from None
    g = cycle_generator(256, ngf, n_blocks, "instance", dropout)
    load_junyanz_state(g, state, n_blocks, dropout, label)
    return g, {"source": "junyanz", "file": str(path), "ngf": ngf, "n_blocks": n_blocks, "dropout": dropout}


def load_cyclegan_generator(model: str | Path, direction: str = "a2b",
                            device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """(generator in eval mode on `device`, description) from a run directory, a state-dict file or a
    registry name. BadInput (exit 2) for anything else, naming what the path holds instead."""

    if direction not in DIRECTIONS:
        raise BadInput(f"--direction {direction} is not a2b or b2a", hint="a2b translates A images into B's style")
    text = str(model)
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / META_FILE).is_file():
            kind = _wrong_kind(path)
            what = f"is {kind}, not a CycleGAN" if kind else "holds no CycleGAN generator"
            raise BadInput(f"--model {path} {what} ({META_FILE} missing)",
                           hint="pass a train-cyclegan run directory (exported after its first epoch) or a published name "
                                "such as style_monet")
        g, info = _from_run(path, direction)
    else:
        if direction != "a2b":
            raise BadInput(f"--model {text} is a single published generator: it translates one way only",
                           hint="drop --direction b2a (published style_* models map photos to paintings)")
        g, info = _from_file(weights_path(text), text)
    return g.to(device).eval(), info


def _fit(img: Image.Image, size: int | None) -> Image.Image:
    w, h = img.size
    if size is not None:
        scale = size / max(w, h)
        w, h = max(1, round(w * scale)), max(1, round(h * scale))
    w4, h4 = max(4, w - w % 4), max(4, h - h % 4)
    return img if (w4, h4) == img.size else img.resize((w4, h4), Image.Resampling.BICUBIC)


class CycleGANStylizer:
    """The `Stylizer` protocol of stylekit.transfer for a CycleGAN generator (one forward pass per image)."""

    name = "cyclegan"

    def __init__(self, model: str, direction: str = "a2b", size: int | None = None, device: str = "auto",
                 amp: bool = False) -> None:

        self.device = resolve_device(device)
        self.amp, self.size, self.direction = amp, size, direction
        self.g, self.info = load_cyclegan_generator(model, direction, self.device)

    def describe(self) -> dict[str, Any]:
        return {**self.info, "direction": self.direction, "size": self.size, "device": str(self.device)}

    @torch.no_grad()
    def stylise(self, content_path: Path, out_path: Path) -> dict[str, Any]:

        start = time.perf_counter()
        img = _fit(load_rgb(content_path), self.size)
        x = pil_to_tensor(img)[None].to(self.device) * 2 - 1
        with autocast(self.device, self.amp):
            y = self.g(x)
        save_image_atomic(out_path, tensor_to_pil((y[0].float() + 1) / 2))
        return {"steps": 1, "seconds": round(time.perf_counter() - start, 3), "width": img.width, "height": img.height}
