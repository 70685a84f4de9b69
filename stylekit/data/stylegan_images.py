"""The images StyleGAN2 trains on: square RGB of one resolution from a folder or an NVlabs-style zip."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from stylekit.data.imageset import decode_item, open_image_set
from stylekit.errors import BadInput
from stylekit.io.paths import open_regular


def prepare_command(data: str, resolution: int) -> str:
    stem = Path(data).name.removesuffix(".zip") or "data"
    source = "IMAGE_FOLDER" if data.lower().endswith(".zip") else data  # prepare reads folders, not zips
    return f"stylekit prepare {source} {Path(data).with_name(f'{stem}-{resolution}.zip')} --size {resolution} --format stylegan-zip"


class StyleGANImages(Dataset):
    """Square RGB images of one resolution from a folder or an NVlabs-style zip, as uint8 [3, R, R].

    With `mirror` the set doubles: index i >= N is image i - N flipped left-right (NVlabs --mirror).
    """

    def __init__(self, source: str, resolution: int, mirror: bool = False) -> None:

        self.source = source
        self.resolution = resolution
        self.mirror = mirror
        image_set = open_image_set(source)
        self.items = image_set.items
        self.notes = [f"skipped {s.path}: {s.reason}" for s in image_set.skipped]  # the trainer says them
        self.folders = image_set.folder_counts() if Path(source).is_dir() else {".": len(self.items)}
        if not self.items:
            raise BadInput(f"{source}: no images found", hint="give a folder of images or a zip from `stylekit prepare --format stylegan-zip`")
        self._check_sizes()

    def _check_sizes(self) -> None:

        wrong: list[tuple[str, tuple[int, int]]] = []
        zf = None
        try:
            for item in self.items:
                try:
                    if item.member is None:
                        with open_regular(item.file, "image") as fh, Image.open(fh) as img:
                            size = img.size
                    else:
                        if zf is None:
                            zf = zipfile.ZipFile(item.file)
                        with zf.open(item.member) as fh, Image.open(fh) as img:
                            size = img.size
                except (OSError, KeyError, zipfile.BadZipFile) as exc:
                    raise BadInput(f"{item.key_path}: not a readable image ({exc})", hint="remove or replace the file") from None
                if size != (self.resolution, self.resolution):
                    wrong.append((item.rel, size))
        finally:
            if zf is not None:
                zf.close()
        if wrong:
            rel, (w, h) = wrong[0]
            r = self.resolution
            raise BadInput(
                f"{self.source}: {len(wrong)} of {len(self.items)} images are not {r}x{r}, the network's resolution "
                f"(e.g. {rel} is {w}x{h})",
                hint=f"resize and crop them first: {prepare_command(self.source, r)}",
            )

    def __len__(self) -> int:
        return len(self.items) * (2 if self.mirror else 1)

    def __getitem__(self, index: int) -> torch.Tensor:

        n = len(self.items)
        img = decode_item(self.items[index % n])
        arr = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)
        return arr.flip(2) if index >= n else arr
