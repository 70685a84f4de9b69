"""Unpaired data for CycleGAN: two image sets (domains A and B), each split into training and held-out images.

A domain is a folder (recursive), a .zip or a single image (`stylekit.data.imageset.open_image_set`).
Its held-out images are, in this order: the `val/` or `test/` subfolder when there is a `train/` one
beside it (junyanz's trainA/testA, or a `stylekit prepare` output), the rows a `manifest.csv` marks
val/test, else a seeded `val_fraction` of the images (at least one).

Every image is decoded to RGB (all modes: grey, palette, alpha composited on white), so domains of
mixed modes and sizes train as they are: `resize_and_crop` resizes each to load_size x load_size
(286 for 256) before the random crop, as junyanz does. Training items pair A[i] with a B image drawn
from (seed, epoch, index) — junyanz's unaligned dataset —, so the data order is the same under any
number of workers or torchrun processes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from stylekit.data.images import pil_to_tensor, printable
from stylekit.data.imageset import ImageItem, decode_item, open_image_set
from stylekit.data.manifest import read_manifest
from stylekit.data.pairs import load_size_for
from stylekit.errors import BadImage, BadInput

HELD_OUT = {"val", "valid", "validation", "test"}
_AUG = 0


@dataclass
class Domain:
    """One side of the translation: training and held-out images, and what the header scan saw."""

    name: str  # "A" or "B"
    source: Path
    train: list[ImageItem]
    val: list[ImageItem]
    split: str  # "folders", "manifest" or "random"
    modes: set[str] = field(default_factory=set)
    sizes: set[tuple[int, int]] = field(default_factory=set)
    skipped: list[str] = field(default_factory=list)

    @property
    def mixed(self) -> bool:
        return len(self.modes) > 1 or len(self.sizes) > 1


def _header(item: ImageItem) -> tuple[str, tuple[int, int]]:
    """Mode and size of one image from its header (plain files), or by decoding it (zip members)."""
    if item.member is not None:
        img = decode_item(item)
        return "RGB", img.size
    try:
        with Image.open(item.file) as img:
            return img.mode, img.size
    except (OSError, ValueError, SyntaxError) as exc:
        raise BadImage(printable(item.file), f"not a readable image ({exc.__class__.__name__})") from None


def _manifest_splits(root: Path) -> dict[str, str]:
    """{resolved path: split} from ROOT/manifest.csv when it has one, else {}."""
    if not (root / "manifest.csv").is_file():
        return {}

    return {str(Path(r.path).resolve()): r.split for r in read_manifest(root)}


def read_domain(source: str | Path, name: str, val_fraction: float, seed: int) -> Domain:
    """List, scan and split one domain; BadInput (exit 2) naming the folder when it cannot train."""
    source = Path(source)
    image_set = open_image_set(source)
    modes: set[str] = set()
    sizes: set[tuple[int, int]] = set()
    skipped = [f"{s.path}: {s.reason}" for s in image_set.skipped]
    good: list[ImageItem] = []
    for item in image_set.items:
        try:
            mode, size = _header(item)
        except BadImage as exc:
            skipped.append(f"{exc.path}: {exc.reason}")
            continue
        modes.add(mode)
        sizes.add(size)
        good.append(item)
    what = f"domain {name} ({printable(source)})"
    if not good:
        raise BadInput(f"{what} holds no readable images" + (f" ({len(skipped)} skipped, e.g. {skipped[0]})" if skipped else ""),
                       hint=f"put the {name} images (.png, .jpg, ...) in it")
    if len(good) < 2:
        raise BadInput(f"{what} holds a single image; train-cyclegan needs at least 2 per domain (training + held out)",
                       hint="add images of that domain")
    train, val, split = _split(good, source, val_fraction, seed + (0 if name == "A" else 1))
    return Domain(name, source, train, val, split, modes, sizes, skipped)


def _split(items: list[ImageItem], root: Path, val_fraction: float, seed: int) -> tuple[list[ImageItem], list[ImageItem], str]:
    tops = {it.rel.split("/", 1)[0] for it in items if "/" in it.rel}
    if "train" in tops and tops & HELD_OUT:
        train = [it for it in items if it.rel.split("/", 1)[0] == "train"]
        val = [it for it in items if it.rel.split("/", 1)[0] in HELD_OUT]
        if train and val:
            return train, val, "folders"
    splits = _manifest_splits(root) if root.is_dir() else {}
    if splits:
        val = [it for it in items if splits.get(it.key_path) in HELD_OUT]
        train = [it for it in items if splits.get(it.key_path) not in HELD_OUT]
        if train and val:
            return train, val, "manifest"
    order = np.random.default_rng([seed, 7]).permutation(len(items))
    n_val = min(len(items) - 1, max(1, round(len(items) * val_fraction)))
    held = set(order[:n_val].tolist())
    return ([it for i, it in enumerate(items) if i not in held], [it for i, it in enumerate(items) if i in held], "random")


def _check_side(img: Image.Image, size: int, preprocess: str, source: str) -> None:
    w, h = img.size
    if w < size or h < size or (preprocess == "none" and (w, h) != (size, size)):
        need = f"exactly {size}x{size}" if preprocess == "none" else f"at least {size}x{size}"
        raise BadInput(f"{source}: image is {w}x{h}, --preprocess {preprocess} needs {need}",
                       hint="use --preprocess resize_and_crop, or prepare the images at that size")


def _name(item: ImageItem) -> str:
    return printable(item.file if item.member is None else f"{item.file}::{item.member}")


def load_image(item: ImageItem, size: int, preprocess: str, crop: tuple[int, int] | None, flip: bool,
               load_size: int) -> torch.Tensor:
    """One image as [3, size, size] in [-1, 1]: resized to load_size (resize_and_crop), then cropped at
    `crop` (None: the centre) and optionally flipped."""
    img = decode_item(item)
    if preprocess == "resize_and_crop":
        img = img.resize((load_size, load_size), Image.Resampling.BICUBIC)
    else:
        _check_side(img, size, preprocess, _name(item))
    w, h = img.size
    x, y = crop if crop is not None else ((w - size) // 2, (h - size) // 2)
    x, y = min(x, w - size), min(y, h - size)
    if (w, h) != (size, size):
        img = img.crop((x, y, x + size, y + size))
    t = pil_to_tensor(img)
    return (t.flip(-1) if flip else t) * 2 - 1


class UnpairedDataset(Dataset):
    """Training items {"a", "b", "index"}: A[index mod |A|] and a B image drawn from (seed, epoch, index),
    both jittered independently (resize to load_size, random crop, random flip)."""

    def __init__(self, a: list[ImageItem], b: list[ImageItem], size: int, preprocess: str, flip: bool, seed: int) -> None:
        self.a, self.b, self.size, self.preprocess, self.flip, self.seed = a, b, size, preprocess, flip, seed
        self.load_size = load_size_for(size) if preprocess == "resize_and_crop" else size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return max(len(self.a), len(self.b))

    def _jittered(self, item: ImageItem, rng: np.random.Generator) -> torch.Tensor:
        span = self.load_size - self.size
        crop = (int(rng.integers(0, span + 1)), int(rng.integers(0, span + 1))) if self.preprocess == "resize_and_crop" else None
        if self.preprocess == "crop":  # a random crop of the image as it is: its size decides the span
            img_w, img_h = _header(item)[1]
            crop = (int(rng.integers(0, max(0, img_w - self.size) + 1)), int(rng.integers(0, max(0, img_h - self.size) + 1)))
        flip = self.flip and bool(rng.random() < 0.5)
        return load_image(item, self.size, self.preprocess, crop, flip, self.load_size)

    def __getitem__(self, index: int) -> dict[str, Any]:
        rng = np.random.default_rng([self.seed, _AUG, self.epoch, index])
        b_item = self.b[int(rng.integers(len(self.b)))]
        return {"a": self._jittered(self.a[index % len(self.a)], rng), "b": self._jittered(b_item, rng), "index": index}


class HeldOut(Dataset):
    """Held-out images of one domain as [3, size, size] in [-1, 1]: resized to size (resize_and_crop) or
    centre-cropped, never flipped."""

    def __init__(self, items: list[ImageItem], size: int, preprocess: str) -> None:
        self.items, self.size, self.preprocess = items, size, preprocess

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> torch.Tensor:
        return load_image(self.items[index], self.size, self.preprocess, None, False, self.size)


@dataclass
class UnpairedData:
    a: Domain
    b: Domain
    train: UnpairedDataset
    val_a: HeldOut
    val_b: HeldOut


def build_unpaired_data(a: str | Path, b: str | Path, size: int, preprocess: str = "resize_and_crop", flip: bool = True,
                        val_fraction: float = 0.1, seed: int = 0) -> UnpairedData:
    """Read and split both domains (BadInput before anything is written when either cannot train)."""
    dom_a = read_domain(a, "A", val_fraction, seed)
    dom_b = read_domain(b, "B", val_fraction, seed)
    if preprocess != "resize_and_crop":
        for dom in (dom_a, dom_b):
            small = sorted(s for s in dom.sizes if s[0] < size or s[1] < size or (preprocess == "none" and s != (size, size)))
            if small:
                need = f"exactly {size}x{size}" if preprocess == "none" else f"at least {size}x{size}"
                raise BadInput(f"domain {dom.name} ({printable(dom.source)}) has images of {small[0][0]}x{small[0][1]}; "
                               f"--preprocess {preprocess} needs {need}",
                               hint="use --preprocess resize_and_crop (the default), or prepare the images at that size")
    return UnpairedData(dom_a, dom_b, UnpairedDataset(dom_a.train, dom_b.train, size, preprocess, flip, seed),
                        HeldOut(dom_a.val, size, preprocess), HeldOut(dom_b.val, size, preprocess))
