"""Paired data for pix2pix, with a style label per pair and a sampler of style references.

DATA can be any of three layouts (`LAYOUTS`; detected in this order unless `--layout` names one):

1. toy-styles (`stylekit download toy-styles`): `content/<layout>.png` is A, `<style>/<layout>.png` is B,
   the folder is the label. Pairs sharing a layout share a composition.
2. folders `A/` and `B/` with matching relative names (extensions may differ). B may be nested
   `B/<style>/<name>` with a flat `A/<name>` shared by several styles; the label is B's class
   folder, else the `label` column of `DATA/manifest.csv`, else one label for everything.
3. aligned A|B images side by side (junyanz format, `stylekit prepare --format pairs`): split at
   w/2; label and split from `DATA/manifest.csv` (path,label,split), else from folder names
   (`train/`, `val/`, `test/` give the split, a folder below gives the label). Detected only with
   evidence of pairing (a `prepare --format pairs` report, or every image twice as wide as tall);
   square single images need an explicit `--layout aligned`.

The *group* of a pair is its A image: references for a target are K other B images of the same
label from other groups, so never the target itself and never the same composition ("same style,
different composition"). Everything random is seeded by (seed, epoch, index): identical under any
number of workers or torchrun processes.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from stylekit.data.images import list_images, load_rgb, pil_to_tensor
from stylekit.data.split import split_groups
from stylekit.errors import BadInput

Direction = Literal["AtoB", "BtoA"]
SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "val"}
_AUG, _REFS, _WRONG, _WRONG_STYLE = 0, 1, 2, 3
# junyanz --preprocess: resize to load_size then random crop | random crop of the image as it is | neither
PREPROCESS = ("resize_and_crop", "crop", "none")


def check_preprocess(preprocess: str) -> None:
    if preprocess not in PREPROCESS:
        raise BadInput(f"unknown --preprocess '{preprocess}'", hint=f"use one of: {', '.join(PREPROCESS)}")


@dataclass(frozen=True)
class Pair:
    """One training pair. For aligned files `a == b` (the halves of one image)."""

    a: Path
    b: Path
    label: str
    group: str
    aligned: bool = False
    split: str | None = None


def load_size_for(size: int) -> int:
    """junyanz's load size for a crop: 286 for 256, scaled (572 for 512, 72 for 64)."""
    return int(round(size * 286 / 256))


def _names(paths: list[Path], limit: int = 8) -> str:
    shown = ", ".join(str(p) for p in paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def _read_manifest(root: Path) -> dict[str, dict[str, str]]:
    """path (relative to DATA, posix) -> row, from DATA/manifest.csv when present."""
    path = root / "manifest.csv"
    if not path.is_file():
        return {}
    try:
        with open(path, newline="", encoding="utf-8", errors="surrogateescape") as fh:  # as prepare writes it
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise BadInput(f"{path}: cannot read the manifest ({exc})", hint="fix or remove manifest.csv") from None
    if rows and "path" not in rows[0]:
        raise BadInput(f"{path} has no 'path' column", hint="expected columns path,label[,split]")
    return {Path(r["path"]).as_posix(): r for r in rows if r.get("path")}


def _split_of(value: str | None) -> str | None:
    return SPLIT_NAMES.get((value or "").strip().lower())


def _toy_pairs(root: Path) -> list[Pair]:
    content = {p.stem: p for p in list_images(root / "content", recursive=False)}
    pairs = []
    for folder in sorted(d for d in root.iterdir() if d.is_dir() and d.name != "content" and not d.name.startswith(".")):
        for b in list_images(folder, recursive=False):
            if b.stem not in content:
                raise BadInput(
                    f"A/B mismatch: {b} has no structure image content/{b.stem}.*",
                    hint="every <style>/<name> needs content/<name> (regenerate with stylekit download toy-styles)",
                )
            pairs.append(Pair(content[b.stem], b, folder.name, f"content/{b.stem}"))
    return pairs


def _folder_pairs(root: Path) -> list[Pair]:
    a_root, b_root = root / "A", root / "B"
    a_files = {p.relative_to(a_root).with_suffix("").as_posix(): p for p in list_images(a_root)}
    manifest = _read_manifest(root)
    used: set[str] = set()
    pairs, unmatched = [], []
    for b in list_images(b_root):
        rel = b.relative_to(b_root).with_suffix("").as_posix()
        key = rel if rel in a_files else b.stem if b.stem in a_files else None
        if key is None:
            unmatched.append(b)
            continue
        used.add(key)
        row = manifest.get(b.relative_to(root).as_posix()) or manifest.get(b.relative_to(b_root).as_posix()) or {}
        parent = b.relative_to(b_root).parent.as_posix()
        label = row.get("label") or (parent if parent != "." else "all")
        pairs.append(Pair(a_files[key], b, label, f"A/{key}", split=_split_of(row.get("split"))))
    missing_b = [a_files[k] for k in sorted(set(a_files) - used)]
    if unmatched or missing_b:
        parts = []
        if unmatched:
            parts.append(f"{len(unmatched)} B image(s) without a matching A: {_names(unmatched)}")
        if missing_b:
            parts.append(f"{len(missing_b)} A image(s) without a matching B: {_names(missing_b)}")
        raise BadInput("A/B mismatch in " + str(root) + ": " + "; ".join(parts),
                       hint="A/<name> and B/<name> (or B/<style>/<name>) must pair up one to one by name")
    return pairs


def _aligned_pairs(root: Path) -> list[Pair]:
    manifest = _read_manifest(root)
    pairs, odd = [], []
    for p in list_images(root):
        rel = p.relative_to(root)
        row = manifest.get(rel.as_posix(), {})
        folders = list(rel.parent.parts)
        split = _split_of(row.get("split"))
        if folders and _split_of(folders[0]):
            split = split or _split_of(folders[0])
            folders = folders[1:]
        label = row.get("label") or ("/".join(folders) if folders else "all")
        if _image_size(p)[0] % 2:
            odd.append(p)
        pairs.append(Pair(p, p, label, rel.as_posix(), aligned=True, split=split))
    if odd:
        raise BadInput(f"{len(odd)} aligned image(s) have an odd width and cannot be split into A|B halves: {_names(odd)}",
                       hint="aligned pairs are A and B side by side, each half w/2 wide (stylekit prepare --format pairs)")
    return pairs


def _image_size(path: Path) -> tuple[int, int]:
    try:
        with Image.open(path) as img:
            return img.size
    except Exception:  # noqa: BLE001 - decoding errors surface as BadImage when loading
        return (0, 0)


def _made_by_prepare_pairs(root: Path) -> bool:
    """DATA/report.json written by `stylekit prepare --format pairs`."""
    try:
        doc = json.loads((root / "report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and isinstance(doc.get("config"), dict) and doc["config"].get("format") == "pairs"


def _check_pairing_evidence(root: Path, pairs: list[Pair]) -> None:
    """Aligned A|B images found by detection, not asked for: refuse unless something says they are pairs.

    Evidence: a `stylekit prepare --format pairs` report, or every image exactly twice as wide as tall
    (junyanz's aligned data sets). A folder of square single images (a classifier's prepared folder, a
    style folder) would otherwise train for hours on meaningless left/right halves.
    """
    if _made_by_prepare_pairs(root):
        return
    for pair in pairs:
        w, h = _image_size(pair.a)
        if w != 2 * h:
            raise BadInput(
                f"DATA {root} does not look like pix2pix pairs: no A/ and B/ folders, no content/ folder (toy-styles), "
                f"no pairs manifest from `stylekit prepare --format pairs`, and {pair.a} is {w}x{h}, not A and B side by side",
                hint=f"pair two folders with `stylekit prepare A_DIR OUT --format pairs --pair-with B_DIR`; if every image "
                     f"in {root} really is A|B side by side, pass --layout aligned",
            )


LAYOUTS: dict[str, Callable[[Path], list[Pair]]] = {
    "toy-styles": _toy_pairs,
    "folders": _folder_pairs,
    "aligned": _aligned_pairs,
}


def detect_layout(root: Path) -> str:
    """toy-styles (content/ folder), folders (A/ and B/), else aligned."""
    if (root / "content").is_dir():
        return "toy-styles"
    if (root / "A").is_dir() and (root / "B").is_dir():
        return "folders"
    return "aligned"


def discover_pairs(root: str | Path, layout: str = "auto") -> tuple[list[Pair], str]:
    """All pairs in DATA and its layout ('toy-styles', 'folders' or 'aligned').

    `layout="auto"` detects it and accepts aligned images only with evidence of pairing; naming a
    layout reads DATA that way without the check.
    """
    root = Path(root)
    if not root.is_dir():
        raise BadInput(f"DATA {root} is not a folder", hint="pass a toy-styles folder, a folder with A/ and B/, or aligned pairs")
    if layout != "auto" and layout not in LAYOUTS:
        raise BadInput(f"unknown --layout '{layout}'", hint=f"choose auto, {', '.join(LAYOUTS)}")
    fmt = detect_layout(root) if layout == "auto" else layout
    pairs = LAYOUTS[fmt](root)
    if not pairs:
        raise BadInput(f"no image pairs found in {root}", hint="see docs/pix2pix.md for the accepted layouts")
    if layout == "auto" and fmt == "aligned":
        _check_pairing_evidence(root, pairs)
    return pairs, fmt


def split_pairs(pairs: list[Pair], val_fraction: float, seed: int) -> tuple[list[Pair], list[Pair]]:
    """(train, val). A split from the manifest/folders wins; else whole groups (compositions) are
    held out by `data.split.split_groups`, so validation images have compositions never seen in training."""
    if any(p.split for p in pairs):
        return [p for p in pairs if p.split in (None, "train")], [p for p in pairs if p.split == "val"]
    if not 0 <= val_fraction < 1:
        raise BadInput(f"--val-fraction {val_fraction} must be in [0, 1)")
    names = split_groups([p.group for p in pairs], (1 - val_fraction, val_fraction), seed)
    return ([p for p, s in zip(pairs, names, strict=True) if s == "train"],
            [p for p, s in zip(pairs, names, strict=True) if s == "val"])


class RefSampler:
    """Draws K reference indices (into `pool`) for a target: same label, other group, seeded.

    `wrong()` draws K references of one different label (the control for val_l1_wrong_refs).
    """

    def __init__(self, pool: list[Pair], k: int, seed: int = 0) -> None:
        self.pool, self.k, self.seed = pool, k, seed
        self.by_label: dict[str, list[int]] = defaultdict(list)
        for i, p in enumerate(pool):
            self.by_label[p.label].append(i)
        self.labels = sorted(self.by_label)
        self._group_count: dict[tuple[str, str], int] = defaultdict(int)
        for p in pool:
            self._group_count[(p.label, p.group)] += 1

    def available(self, target: Pair) -> int:
        """How many pool images may serve as references for `target`."""
        return len(self.by_label.get(target.label, ())) - self._group_count.get((target.label, target.group), 0)

    def check(self, targets: list[Pair], what: str = "training") -> None:
        """BadInput (exit 2) naming the style and the count when a target has fewer than K candidates."""
        if self.k <= 0:
            return
        worst: dict[str, int] = {}
        for t in targets:
            n = self.available(t)
            worst[t.label] = min(worst.get(t.label, n), n)
        short = {label: n for label, n in worst.items() if n < self.k}
        if short:
            label, n = min(short.items(), key=lambda kv: kv[1])
            detail = ", ".join(f"'{lb}': {c}" for lb, c in sorted(short.items()))
            raise BadInput(
                f"style '{label}' has only {n} other image(s) to draw --refs {self.k} references from for "
                f"{what} (need {self.k} of the same style besides the target and its composition; per style: {detail})",
                hint=f"lower --refs to {max(n, 0)} or add images of that style",
            )

    def sample(self, target: Pair, key: tuple[int, ...]) -> list[int]:
        """K distinct references of target's label, never the target's group."""
        cands = [i for i in self.by_label.get(target.label, ()) if self.pool[i].group != target.group]
        if len(cands) < self.k:
            raise BadInput(f"style '{target.label}' has only {len(cands)} other image(s) for --refs {self.k}",
                           hint=f"lower --refs to {len(cands)}")
        rng = np.random.default_rng([self.seed, _REFS, *key])
        return [cands[i] for i in rng.choice(len(cands), size=self.k, replace=False)]

    def wrong(self, target: Pair, key: tuple[int, ...]) -> list[int] | None:
        """K references of one other label (None when the pool has a single label)."""
        others = [lb for lb in self.labels if lb != target.label]
        if not others:
            return None
        rng = np.random.default_rng([self.seed, _WRONG_STYLE, *key])
        cands = self.by_label[others[int(rng.integers(len(others)))]]
        rng = np.random.default_rng([self.seed, _WRONG, *key])
        return [cands[i] for i in rng.choice(len(cands), size=self.k, replace=len(cands) < self.k)]


class PairDataset(Dataset):
    """Items: `a` (input) and `b` (target) [3, S, S] in [-1, 1], `refs` [K, 3, R, R] in [0, 1],
    and for validation `wrong_refs` (refs of another style). Training applies junyanz jitter, the same
    for A and B: `preprocess` resize_and_crop = resize to load_size (286 for 256) and a random S crop;
    crop = a random S crop of the image as it is; none = the image as it is (must be S x S); then a
    random horizontal flip unless `flip=False` (also for the references). Held-out items: resized to S
    (resize_and_crop), centre-cropped (crop) or as they are (none), never flipped. With
    `style_negatives`, training items also carry `ref_style` (the refs' style index in
    `sampler.labels`), `neg_refs` (K refs of one other style) and `neg_style`, for the
    reference-code style losses."""

    def __init__(self, pairs: list[Pair], size: int, refs: int, ref_pool: list[Pair], ref_size: int,
                 direction: Direction = "AtoB", train: bool = True, seed: int = 0, flip: bool = True,
                 preprocess: str = "resize_and_crop", style_negatives: bool = False) -> None:
        if direction not in ("AtoB", "BtoA"):
            raise BadInput(f"unknown --direction '{direction}'", hint="use AtoB or BtoA")
        check_preprocess(preprocess)
        self.pairs, self.size, self.k, self.ref_size = pairs, size, refs, ref_size
        self.direction, self.train, self.seed, self.flip = direction, train, seed, flip
        self.style_negatives = style_negatives
        self.preprocess = preprocess
        self.load_size = load_size_for(size) if train else size
        self.ref_pool = ref_pool
        self.sampler = RefSampler(ref_pool, refs, seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Crops, flips and references are drawn from (seed, epoch, index)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.pairs)

    def _halves(self, pair: Pair) -> tuple[Image.Image, Image.Image]:
        """(input, target) PIL images for this direction."""
        if pair.aligned:
            img = load_rgb(pair.a)
            w, h = img.size
            a, b = img.crop((0, 0, w // 2, h)), img.crop((w // 2, 0, w, h))
        else:
            a, b = load_rgb(pair.a), load_rgb(pair.b)
        return (a, b) if self.direction == "AtoB" else (b, a)

    def _target_image(self, pair: Pair) -> Image.Image:
        return self._halves(pair)[1]

    def _loaded(self, img: Image.Image, pair: Pair) -> Image.Image:
        """The image the crop is taken from: resized to load_size, or as it is (checked against --size)."""
        if self.preprocess == "resize_and_crop":
            return img.resize((self.load_size, self.load_size), Image.Resampling.BICUBIC)
        w, h = img.size
        if w < self.size or h < self.size or (self.preprocess == "none" and (w, h) != (self.size, self.size)):
            need = f"exactly {self.size}x{self.size}" if self.preprocess == "none" else f"at least {self.size}x{self.size}"
            raise BadInput(f"{pair.a}: image is {w}x{h}, --preprocess {self.preprocess} needs {need}",
                           hint="use --preprocess resize_and_crop, or prepare the images at that size")
        return img

    def _prep(self, img: Image.Image, crop: tuple[int, int], flip: bool) -> torch.Tensor:
        if img.size != (self.size, self.size):
            img = img.crop((crop[0], crop[1], crop[0] + self.size, crop[1] + self.size))
        t = pil_to_tensor(img)
        return t.flip(-1) if flip else t

    def _refs(self, indices: list[int], rng: np.random.Generator | None) -> torch.Tensor:
        out = []
        for i in indices:
            img = self._target_image(self.ref_pool[i]).resize((self.ref_size, self.ref_size), Image.Resampling.BICUBIC)
            t = pil_to_tensor(img)
            out.append(t.flip(-1) if rng is not None and self.flip and rng.random() < 0.5 else t)
        return torch.stack(out) if out else torch.zeros(0, 3, self.ref_size, self.ref_size, device="cpu")

    def __getitem__(self, index: int) -> dict[str, Any]:
        pair = self.pairs[index]
        a, b = (self._loaded(img, pair) for img in self._halves(pair))
        if a.size != b.size:
            raise BadInput(f"{pair.a}: input is {a.size[0]}x{a.size[1]} but target is {b.size[0]}x{b.size[1]}",
                           hint="--preprocess crop/none crop both at the same place: use images of one size")
        key = (self.epoch, index) if self.train else (index,)
        span_x, span_y = a.size[0] - self.size, a.size[1] - self.size
        if self.train:
            rng = np.random.default_rng([self.seed, _AUG, *key])
            crop = (int(rng.integers(0, span_x + 1)), int(rng.integers(0, span_y + 1)))
            flip = self.flip and bool(rng.random() < 0.5)
        else:
            rng, crop, flip = None, (span_x // 2, span_y // 2), False
        item: dict[str, Any] = {"a": self._prep(a, crop, flip) * 2 - 1, "b": self._prep(b, crop, flip) * 2 - 1,
                                "index": index}
        if self.k > 0:
            item["refs"] = self._refs(self.sampler.sample(pair, key), rng)
            if not self.train:
                wrong = self.sampler.wrong(pair, key)
                if wrong is not None:  # a single-label data set has no "wrong style"
                    item["wrong_refs"] = self._refs(wrong, None)
            elif self.style_negatives:
                self._add_negatives(item, pair, key, rng)
        return item

    def _add_negatives(self, item: dict[str, Any], pair: Pair, key: tuple[int, ...], rng: np.random.Generator | None) -> None:
        wrong = self.sampler.wrong(pair, key)
        if wrong is None:
            raise BadInput("the reference-code style losses need at least two styles", hint="drop --ref-cls-weight/--ref-metric-weight")
        labels = self.sampler.labels
        item["ref_style"] = torch.tensor(labels.index(pair.label), dtype=torch.long, device="cpu")
        item["neg_refs"] = self._refs(wrong, rng)
        item["neg_style"] = torch.tensor(labels.index(self.ref_pool[wrong[0]].label), dtype=torch.long, device="cpu")


@dataclass
class PairData:
    """Everything the trainer needs: datasets, counts and labels."""

    fmt: str
    train: PairDataset
    val: PairDataset | None
    labels: list[str]
    n_pairs: int


def build_pair_data(root: str | Path, size: int, refs: int, direction: Direction = "AtoB", val_fraction: float = 0.1,
                    seed: int = 0, ref_size: int | None = None, style_negatives: bool = False,
                    layout: str = "auto", preprocess: str = "resize_and_crop", flip: bool = True) -> PairData:
    """Discover, split and validate DATA; BadInput (exit 2) for every unusable layout. (The generator's
    size rule is the trainer's check: data/ imports nothing from nets/.)"""
    check_preprocess(preprocess)
    if refs < 0:
        raise BadInput(f"--refs {refs} must be 0 (plain pix2pix) or more")
    pairs, fmt = discover_pairs(root, layout)
    train, val = split_pairs(pairs, val_fraction, seed)
    if not train:
        raise BadInput(f"no training pairs in {root} (every pair is in the validation split)",
                       hint="lower --val-fraction or mark some manifest rows split=train")
    ref_size = ref_size or min(size, 128)
    train_set = PairDataset(train, size, refs, train, ref_size, direction, train=True, seed=seed, flip=flip,
                            preprocess=preprocess, style_negatives=style_negatives)
    if style_negatives and len(train_set.sampler.labels) < 2:
        raise BadInput(f"{root}: the reference-code style losses need at least two styles in the training pairs",
                       hint="drop --ref-cls-weight/--ref-metric-weight, or train on several styles")
    train_set.sampler.check(train, "training")
    val_set = None
    if val:
        val_set = PairDataset(val, size, refs, train, ref_size, direction, train=False, seed=seed, preprocess=preprocess)
        val_set.sampler.check(val, "validation")
    return PairData(fmt, train_set, val_set, sorted({p.label for p in pairs}), len(pairs))
