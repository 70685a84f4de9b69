"""Labelled style images for training and evaluation: splits, decoding checks, style-keeping augmentation.

DATA is either a prepared folder (`manifest.csv` with path,label,split written by `stylekit prepare`)
or class folders (DATA/<style>/*.png), split on the fly by `data.split.split_keys` (stratified:
every class lands in train, val and test in the same proportions; the same split `prepare` writes). A toy-styles folder
(manifest with a `layout` column) is read as class folders without its unstyled `content` folder.

Every image is decoded once up front (threads); undecodable files are skipped and listed in the
report. Training augmentation keeps style: a random resized crop with a mild scale range and a
horizontal flip, and deliberately NO colour jitter — palette and saturation are part of an image's
style, so jittering them would teach the model to ignore exactly what it should read.
Images stay in [0, 1]; the network normalises them itself.
"""

from __future__ import annotations

import csv
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from stylekit.data.images import ImageReport, is_image_name, list_images, load_rgb, pil_to_tensor
from stylekit.data.manifest import read_manifest
from stylekit.data.split import split_keys
from stylekit.errors import BadImage, BadInput
from stylekit.io.console import get_console

SPLITS = ("train", "val", "test")
_SPLIT_ALIASES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
TOY_CONTENT = "content"

Item = tuple[Path, int]


@dataclass
class StyleSplits:
    """Image paths with class indices per split, the class names, and what was skipped."""

    root: Path
    classes: list[str]
    items: dict[str, list[Item]]
    report: ImageReport = field(default_factory=ImageReport)
    source: str = "folders"  # folders | manifest

    def labels(self, split: str) -> list[int]:
        return [c for _, c in self.items[split]]

    def counts(self) -> dict[str, int]:
        return {s: len(v) for s, v in self.items.items()}

    def require(self, *splits: str) -> None:
        """BadInput naming the first empty split among `splits`."""
        for s in splits:
            if not self.items.get(s):
                raise BadInput(
                    f"the {s} split of {self.root} is empty",
                    hint="re-run `stylekit prepare` with a split that gives it images, or pass --split for class folders",
                )


def _read_header(manifest: Path) -> list[str]:
    with open(manifest, newline="", encoding="utf-8", errors="surrogateescape") as fh:
        return [h.strip().lower() for h in next(csv.reader(fh), [])]


def _class_folders(root: Path, exclude: set[str], report: ImageReport) -> dict[str, list[Path]]:
    classes: dict[str, list[Path]] = {}
    for child in sorted(root.iterdir(), key=lambda p: p.name):
        if not child.is_dir() or child.name.startswith(".") or child.name in exclude:
            continue
        files = list_images(child, report=report)
        if files:
            classes[child.name] = files
    loose = [p for p in root.iterdir() if p.is_file() and is_image_name(p)]
    if not classes:
        where = f" ({len(loose)} images directly in it)" if loose else ""
        raise BadInput(
            f"labels missing: {root} has no class folders{where} and no manifest.csv with labels",
            hint="put each style's images in DATA/<style>/ or run `stylekit prepare` on labelled data",
        )
    return classes


def _manifest_rows(root: Path) -> list[tuple[Path, str, str]]:

    rows = read_manifest(root)
    missing = [r for r in rows if not str(getattr(r, "label", "") or "").strip()]
    if missing:
        raise BadInput(
            f"labels missing: {len(missing)} of {len(rows)} rows in {root / 'manifest.csv'} have no label (e.g. {missing[0].path})",
            hint="prepare the data from class folders (DATA/<style>/*.png) so every image has a style label",
        )
    out = []
    for r in rows:
        split = _SPLIT_ALIASES.get(str(r.split).strip().lower())
        if split is None:
            raise BadInput(f"{root / 'manifest.csv'}: unknown split '{r.split}' for {r.path}", hint="use train, val or test")
        out.append((Path(r.path), str(r.label), split))  # read_manifest already resolved it against root
    return out


def check_images(paths: list[Path], report: ImageReport, workers: int = 8) -> set[Path]:
    """Decode every path (threads); return the good ones and record the rest in `report`."""

    def probe(p: Path) -> str | None:
        try:
            load_rgb(p)
        except BadImage as exc:
            return exc.reason
        return None

    good: set[Path] = set()
    with get_console().progress(len(paths), "checking images") as task, ThreadPoolExecutor(max(1, workers)) as pool:
        for p, reason in zip(paths, pool.map(probe, paths), strict=True):
            if reason is None:
                good.add(p)
            else:
                report.skip(p, reason)
            task.advance()
    report.used += len(good)
    return good


def load_style_splits(
    root: str | os.PathLike[str],
    split: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    check: bool = True,
    workers: int = 8,
    exclude: tuple[str, ...] = (),
) -> StyleSplits:
    """Read DATA (prepared folder or class folders) into labelled splits; see the module docstring."""
    root = Path(root)
    if not root.exists():
        raise BadInput(f"{root} does not exist", hint="check the DATA path")
    if not root.is_dir():
        raise BadInput(f"{root} is not a folder", hint="give a prepared folder or a folder of class folders")
    if len(split) != 3 or any(f < 0 for f in split) or not math.isclose(sum(split), 1.0, abs_tol=1e-6):
        raise BadInput(f"bad --split {split}", hint="three non-negative fractions that sum to 1, e.g. 0.8,0.1,0.1")
    manifest = root / "manifest.csv"
    header = _read_header(manifest) if manifest.is_file() else []
    rows: list[tuple[Path, str, str]]
    report = ImageReport()

    def readable(paths: list[Path]) -> set[Path]:
        if not check:
            report.used += len(paths)
            return set(paths)
        return check_images(paths, report, workers)

    if "split" in header:
        rows = [r for r in _manifest_rows(root) if r[1] not in exclude]
        all_labels = {label for _, label, _ in rows}
        good = readable([p for p, _, _ in rows])
        rows = [r for r in rows if r[0] in good]
        source = "manifest"
    else:  # decode first, so the split is cut over the images that can be used
        skip = set(exclude) | ({TOY_CONTENT} if "layout" in header else set())
        folders = _class_folders(root, skip, report)
        all_labels = set(folders)
        good = readable([p for paths in folders.values() for p in paths])
        usable = [(p, name) for name, paths in folders.items() for p in paths if p in good]
        names = split_keys([p.relative_to(root).as_posix() for p, _ in usable], split, seed, [n for _, n in usable])
        rows = [(p, name, s) for (p, name), s in zip(usable, names, strict=True)]
        source = "folders"
    classes = sorted({label for _, label, _ in rows})
    empty = sorted(all_labels - set(classes))
    if empty:
        from stylekit.io.console import get_console

        get_console().warn(f"class(es) {', '.join(empty)} have no readable image and are left out (see the skipped list)")
    if len(classes) < 2:
        raise BadInput(
            f"need at least 2 classes to train a style classifier; {root} has {len(classes)}"
            + (f" ({classes[0]})" if classes else "") + (f" with readable images ({len(report.skipped)} skipped)" if report.skipped else ""),
            hint="add a folder per style (DATA/<style>/*.png)",
        )
    index = {c: i for i, c in enumerate(classes)}
    items: dict[str, list[Item]] = {s: [] for s in SPLITS}
    for p, label, s in rows:
        items[s].append((p, index[label]))
    return StyleSplits(root, classes, items, report, source)


# ------------------------------------------------------------------------------------- transforms
def resize_center_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    """[N,3,H,W] or [3,H,W] in [0,1]: shorter side to `size` (antialiased bilinear), centre crop."""
    single = images.dim() == 3
    x = images[None] if single else images
    h, w = x.shape[-2:]
    if (h, w) != (size, size):
        scale = size / min(h, w)
        nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
        if (nh, nw) != (h, w):
            x = F.interpolate(x.float(), size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
        top, left = (nh - size) // 2, (nw - size) // 2
        x = x[..., top : top + size, left : left + size]
    x = x.clamp(0, 1)
    return x[0] if single else x


def random_resized_crop(
    image: torch.Tensor, size: int, g: torch.Generator, scale: tuple[float, float] = (0.6, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> torch.Tensor:
    """A crop covering `scale` of the area with aspect in `ratio`, resized to size x size."""
    _, h, w = image.shape
    area = h * w
    for _ in range(10):
        s = scale[0] + (scale[1] - scale[0]) * float(torch.rand((), generator=g, device="cpu"))
        log_r = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * float(torch.rand((), generator=g, device="cpu"))
        r = math.exp(log_r)
        cw, ch = round(math.sqrt(area * s * r)), round(math.sqrt(area * s / r))
        if 0 < cw <= w and 0 < ch <= h:
            top = int(torch.randint(0, h - ch + 1, (), generator=g, device="cpu"))
            left = int(torch.randint(0, w - cw + 1, (), generator=g, device="cpu"))
            crop = image[:, top : top + ch, left : left + cw]
            return F.interpolate(crop[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0].clamp(0, 1)
    return resize_center_crop(image, size)


class StyleImageDataset(Dataset):
    """(image [3,size,size] in [0,1], class index, item index) for a list of (path, class) items.

    `train=True` applies the style-keeping augmentation, seeded by (seed, epoch, index) so a run is
    reproducible and identical under any number of DDP processes or loader workers.
    """

    def __init__(self, items: list[Item], size: int, train: bool = False, seed: int = 0,
                 crop_scale: tuple[float, float] = (0.6, 1.0), hflip: bool = True) -> None:
        self.items = items
        self.size = size
        self.train = train
        self.seed = seed
        self.crop_scale = crop_scale
        self.hflip = hflip
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def _load(self, index: int) -> torch.Tensor:
        path, label = self.items[index]
        try:
            return pil_to_tensor(load_rgb(path))
        except BadImage as exc:
            # The file went bad after the up-front check: use another image of the same class.
            from stylekit.io.console import get_console

            get_console().warn(f"skipping {path}: {exc.reason}")
            same = [i for i, (_, c) in enumerate(self.items) if c == label and i != index]
            if not same:
                raise
            return pil_to_tensor(load_rgb(self.items[same[index % len(same)]][0]))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        image = self._load(index)
        if self.train:
            g = torch.Generator()
            g.manual_seed(((self.seed * 1_000_003 + self.epoch) * 10_000_019 + index) % (2**63))
            image = random_resized_crop(image, self.size, g, self.crop_scale)
            if self.hflip and float(torch.rand((), generator=g, device="cpu")) < 0.5:
                image = image.flip(-1)
        else:
            image = resize_center_crop(image, self.size)
        return image.contiguous(), self.items[index][1], index
